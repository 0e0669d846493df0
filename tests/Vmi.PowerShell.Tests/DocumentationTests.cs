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
}
