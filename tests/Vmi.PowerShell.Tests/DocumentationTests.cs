using System.Management.Automation;
using System.Text.RegularExpressions;

namespace Vmi.PowerShell.Tests;

/// <summary>
/// docs/cmdlets is the source of help: every exported cmdlet has a page, each page documents every parameter and
/// has the real syntax, and every ```powershell example runs against the demo guest without errors.
/// An example that cannot run on the mock (Xen only) is marked with &lt;!-- not on mock --&gt; just above its block.
/// </summary>
public partial class DocumentationTests
{
    private static readonly string DocsDir = Path.Combine(PowerShellHost.RepoRoot, "docs", "cmdlets");

    private static readonly HashSet<string> CommonParameters = new(StringComparer.OrdinalIgnoreCase)
    {
        "Verbose", "Debug", "ErrorAction", "WarningAction", "InformationAction", "ProgressAction", "ErrorVariable", "WarningVariable",
        "InformationVariable", "OutVariable", "OutBuffer", "PipelineVariable",
    };

    private static string[] ExportedCmdlets()
    {
        using var host = new PowerShellHost();
        return host.Run("(Get-Module Vmi).ExportedCmdlets.Keys").Select(o => o.ToString()).ToArray();
    }

    public static TheoryData<string> Cmdlets()
    {
        var data = new TheoryData<string>();
        foreach (string c in ExportedCmdlets().Order(StringComparer.Ordinal))
        {
            data.Add(c);
        }

        return data;
    }

    [GeneratedRegex(@"^### -(\w+)\s*$", RegexOptions.Multiline)]
    private static partial Regex ParameterHeading();

    [GeneratedRegex(@"(<!--\s*not on mock[^>]*-->\s*)?```powershell\n(.*?)```", RegexOptions.Singleline)]
    private static partial Regex PowerShellBlock();

    [GeneratedRegex(@"## SYNTAX\s*(.*?)## DESCRIPTION", RegexOptions.Singleline)]
    private static partial Regex SyntaxSection();

    [Theory]
    [MemberData(nameof(Cmdlets))]
    public void EveryCmdletHasAPageDocumentingEachParameter(string cmdlet)
    {
        string path = Path.Combine(DocsDir, cmdlet + ".md");
        Assert.True(File.Exists(path), $"{cmdlet} has no page: write docs/cmdlets/{cmdlet}.md");
        string page = File.ReadAllText(path);
        Assert.Contains("# " + cmdlet + "\n", page, StringComparison.Ordinal);
        foreach (string section in new[] { "## SYNOPSIS", "## SYNTAX", "## DESCRIPTION", "## EXAMPLES", "## PARAMETERS", "## INPUTS", "## OUTPUTS" })
        {
            Assert.Contains(section, page, StringComparison.Ordinal);
        }

        using var host = new PowerShellHost();
        string[] parameters = host.Run($"(Get-Command {cmdlet}).Parameters.Keys").Select(o => o.ToString()).Where(p => !CommonParameters.Contains(p)).ToArray();
        HashSet<string> documented = ParameterHeading().Matches(page).Select(m => m.Groups[1].Value).ToHashSet(StringComparer.Ordinal);
        foreach (string p in parameters)
        {
            Assert.True(documented.Contains(p), $"docs/cmdlets/{cmdlet}.md does not document -{p}");
        }

        foreach (string d in documented)
        {
            Assert.True(parameters.Contains(d, StringComparer.Ordinal), $"docs/cmdlets/{cmdlet}.md documents -{d}, which {cmdlet} does not have");
        }

        // The syntax on the page is the cmdlet's real syntax.
        string syntax = SyntaxSection().Match(page).Groups[1].Value;
        foreach (PSObject set in host.Run($"(Get-Command {cmdlet}).ParameterSets | ForEach-Object {{ '{cmdlet} ' + $_.ToString() }}"))
        {
            Assert.Contains(set.ToString(), syntax, StringComparison.Ordinal);
        }

        Assert.NotEmpty(PowerShellBlock().Matches(page));
    }

    public static TheoryData<string, int> Examples()
    {
        var data = new TheoryData<string, int>();
        foreach (string file in Directory.GetFiles(DocsDir, "*-Vmi*.md").Order(StringComparer.Ordinal))
        {
            int count = PowerShellBlock().Matches(File.ReadAllText(file)).Count;
            for (int i = 0; i < count; i++)
            {
                data.Add(Path.GetFileNameWithoutExtension(file), i + 1);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Examples))]
    public void EveryExampleRunsOnTheDemoGuest(string cmdlet, int example)
    {
        Match block = PowerShellBlock().Matches(File.ReadAllText(Path.Combine(DocsDir, cmdlet + ".md")))[example - 1];
        if (block.Groups[1].Success)
        {
            return; // marked "not on mock" (Xen only): nothing here can run it
        }

        using var host = new PowerShellHost();
        host.RunClean("$null = Connect-VmiDomain -Mock");
        try
        {
            host.Run(block.Groups[2].Value);
        }
        catch (RuntimeException e)
        {
            Assert.Fail($"{cmdlet} example {example} failed: {e.ErrorRecord}");
        }

        Assert.True(host.LastErrors.Count == 0, $"{cmdlet} example {example} wrote errors:\n" + string.Join("\n", host.LastErrors));
    }

    [GeneratedRegex(@"## SYNOPSIS\s*\n(.*?)\n")]
    private static partial Regex SynopsisLine();

    [Theory]
    [MemberData(nameof(Cmdlets))]
    public void GetHelpShowsThePage(string cmdlet)
    {
        // The build turns docs/cmdlets into en-US/Vmi.PowerShell.dll-Help.xml: Get-Help works without platyPS.
        string page = File.ReadAllText(Path.Combine(DocsDir, cmdlet + ".md"));
        using var host = new PowerShellHost();
        Assert.Equal(SynopsisLine().Match(page).Groups[1].Value.Trim(), host.Get<string>($"(Get-Help {cmdlet}).Synopsis"));
        Assert.NotEmpty(host.Run($"(Get-Help {cmdlet}).Examples.Example"));
        string[] parameterHelp = host.Run($"(Get-Help {cmdlet}).Parameters.Parameter | ForEach-Object {{ $_.name + '=' + (($_.description | ForEach-Object Text) -join ' ') }}")
            .Select(o => o.ToString()).ToArray();
        Assert.NotEmpty(parameterHelp);
        Assert.All(parameterHelp, h => Assert.True(h.Length > h.IndexOf('=', StringComparison.Ordinal) + 10, $"{cmdlet}: no help text in '{h}'"));
    }

    /// <summary>
    /// Compares what Get-Help says of a cmdlet with the cmdlet itself; writes one line per difference. Per syntax item
    /// (matched to its parameter set by its parameters): each parameter's required, position and pipeline input. In
    /// the PARAMETERS section: the same facts, as in one of the parameter's sets (all of them where they agree).
    /// </summary>
    private const string HelpFactsScript = """
        param($Name)
        $common = [System.Management.Automation.Cmdlet]::CommonParameters   # -WhatIf and -Confirm are documented
        $command = Get-Command $Name
        $help = Get-Help $Name -Full
        function Facts($metadata) {
            $pipeline = @(if ($metadata.ValueFromPipeline) { 'ByValue' }; if ($metadata.ValueFromPipelineByPropertyName) { 'ByPropertyName' })
            '{0}|{1}|{2}' -f $metadata.IsMandatory.ToString().ToLowerInvariant(),
                $(if ($metadata.Position -eq [int]::MinValue) { 'named' } else { $metadata.Position }),
                $(if ($pipeline) { 'True (' + ($pipeline -join ', ') + ')' } else { 'False' })
        }
        function HelpFacts($p) { '{0}|{1}|{2}' -f $p.required, $p.position, $p.pipelineInput }

        $items = @($help.syntax.syntaxItem)
        if ($items.Count -ne $command.ParameterSets.Count) { "SYNTAX has $($items.Count) item(s) for $($command.ParameterSets.Count) parameter set(s)" }
        foreach ($set in $command.ParameterSets) {
            $names = @($set.Parameters.Name | Where-Object { $_ -notin $common } | Sort-Object)
            $item = $items | Where-Object { (@($_.parameter.name | Sort-Object) -join ',') -eq ($names -join ',') } | Select-Object -First 1
            if (-not $item) { "no SYNTAX item for parameter set $($set.Name) ($($names -join ', '))"; continue }
            foreach ($p in $set.Parameters | Where-Object Name -notin $common) {
                $documented = $item.parameter | Where-Object name -eq $p.Name
                $expected = Facts $p
                $actual = HelpFacts $documented
                if ($expected -ne $actual) { "SYNTAX $($set.Name) -$($p.Name): help says $actual, the cmdlet $expected" }
            }
        }

        foreach ($p in $command.Parameters.Values | Where-Object Name -notin $common) {
            $documented = $help.parameters.parameter | Where-Object name -eq $p.Name
            if (-not $documented) { "PARAMETERS lacks -$($p.Name)"; continue }
            $all = @($p.ParameterSets.Values | ForEach-Object { Facts $_ } | Sort-Object -Unique)
            $actual = HelpFacts $documented
            if ($actual -notin $all) { "PARAMETERS -$($p.Name): help says $actual, the cmdlet $($all -join ' or ')" }
            if ("$($documented.type.name)" -match 'Nullable|`') { "PARAMETERS -$($p.Name): unreadable type $($documented.type.name)" }
        }
        """;

    [Theory]
    [MemberData(nameof(Cmdlets))]
    public void GetHelpFullHasEverySectionAndTheCmdletsRealParameterFacts(string cmdlet)
    {
        using var host = new PowerShellHost();
        string full = string.Join("\n", host.Run($"Get-Help {cmdlet} -Full | Out-String -Width 250").Select(o => o.ToString()));

        // Every section is there and has content (the line after its heading is indented text, not the next heading).
        foreach (string section in new[] { "NAME", "SYNOPSIS", "SYNTAX", "DESCRIPTION", "PARAMETERS", "INPUTS", "OUTPUTS", "RELATED LINKS" })
        {
            Match m = Regex.Match(full, "^" + section + "\\s*\\n(.*)$", RegexOptions.Multiline);
            Assert.True(m.Success, $"Get-Help {cmdlet} -Full has no {section} section:\n{full}");
            Assert.True(m.Groups[1].Value.StartsWith("    ", StringComparison.Ordinal) && m.Groups[1].Value.Trim().Length > 0, $"Get-Help {cmdlet} -Full: {section} is empty:\n{full}");
        }

        Assert.Contains("EXAMPLE", full, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("Nullable", full, StringComparison.Ordinal);

        // One SYNTAX line per parameter set, each starting with the cmdlet's name.
        string syntax = Regex.Match(full, @"^SYNTAX\s*\n(.*?)^DESCRIPTION", RegexOptions.Multiline | RegexOptions.Singleline).Groups[1].Value;
        int sets = host.Get<int>($"(Get-Command {cmdlet}).ParameterSets.Count");
        Assert.Equal(sets, Regex.Matches(syntax, "^    " + Regex.Escape(cmdlet) + " ", RegexOptions.Multiline).Count);

        using var ps = System.Management.Automation.PowerShell.Create();
        ps.Runspace = host.Runspace;
        string[] differences = ps.AddScript(HelpFactsScript).AddArgument(cmdlet).Invoke().Select(o => o.ToString()).ToArray();
        Assert.True(ps.Streams.Error.Count == 0, string.Join("\n", ps.Streams.Error));
        Assert.True(differences.Length == 0, $"Get-Help {cmdlet} disagrees with the cmdlet:\n" + string.Join("\n", differences));
    }
}
