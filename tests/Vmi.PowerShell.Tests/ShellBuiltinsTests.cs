using System.Collections;
using System.Collections.ObjectModel;
using System.Diagnostics;
using System.Management.Automation;
using System.Management.Automation.Runspaces;
using System.Reflection;
using System.Runtime.Loader;

namespace Vmi.PowerShell.Tests;

/// <summary>
/// The commands the vmi shell provides itself (src/Shell/Builtins), run through the real engine: a runspace built
/// the way vmi builds it (Core cmdlets, vmi's builtins where missing, the module), and the vmi executable itself.
/// </summary>
public sealed class ShellBuiltinsTests : IDisposable
{
    private static readonly Lazy<Assembly> s_shell = new(() => AssemblyLoadContext.Default.LoadFromAssemblyPath(ShellPath("vmi.dll")));

    private readonly Runspace _runspace;

    public ShellBuiltinsTests()
    {
        InitialSessionState state = InitialSessionState.CreateDefault2();
        AddMissing(state);
        state.ImportPSModule(PowerShellHost.ModuleManifest);
        _runspace = RunspaceFactory.CreateRunspace(state);
        _runspace.Open();
    }

    public void Dispose() => _runspace.Dispose();

    private static string ShellPath(string file)
    {
#if DEBUG_BUILD
        const string configuration = "Debug";
#else
        const string configuration = "Release";
#endif
        string path = Path.Combine(PowerShellHost.RepoRoot, "src", "Shell", "bin", configuration, "net10.0", file);
        Assert.True(File.Exists(path), "The vmi shell was not built at " + path);
        return path;
    }

    /// <summary>Vmi.Shell.Builtins.ShellBuiltins.AddMissing, from the built shell.</summary>
    private static IReadOnlyList<string> AddMissing(InitialSessionState state)
    {
        Type builtins = s_shell.Value.GetType("Vmi.Shell.Builtins.ShellBuiltins", throwOnError: true)!;
        return (IReadOnlyList<string>)builtins.GetMethod("AddMissing")!.Invoke(null, [state])!;
    }

    private Collection<PSObject> Run(string script, out List<ErrorRecord> errors)
    {
        using var ps = System.Management.Automation.PowerShell.Create();
        ps.Runspace = _runspace;
        Collection<PSObject> output = ps.AddScript(script).Invoke();
        errors = ps.Streams.Error.ToList();
        return output;
    }

    private Collection<PSObject> Run(string script)
    {
        Collection<PSObject> output = Run(script, out List<ErrorRecord> errors);
        Assert.True(errors.Count == 0, "Unexpected errors:\n" + string.Join("\n", errors.Select(e => e.FullyQualifiedErrorId + ": " + e)));
        return output;
    }

    private string Text(string script) => string.Concat(Run(script).Select(o => o.BaseObject.ToString()));

    private static object?[] Values(Collection<PSObject> output) => output.Select(o => o?.BaseObject).ToArray();

    private static (int ExitCode, string Out, string Err) Vmi(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(ShellPath("vmi.dll"));
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using Process p = Process.Start(psi)!;
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(120_000), "vmi did not exit");
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    // --- registration -------------------------------------------------------------------------------------------

    [Fact]
    public void EveryBuiltinIsAddedToTheCoreEngineAndIsACmdletWithAnApprovedVerb()
    {
        InitialSessionState state = InitialSessionState.CreateDefault2();
        IReadOnlyList<string> added = AddMissing(state);
        Assert.Contains("Select-Object", added);
        Assert.Contains("Format-Table", added);
        Assert.Contains("Write-Output", added);
        var approved = new HashSet<string>(
            new[] { typeof(VerbsCommon), typeof(VerbsCommunications), typeof(VerbsData), typeof(VerbsDiagnostic), typeof(VerbsLifecycle), typeof(VerbsOther), typeof(VerbsSecurity) }
                .SelectMany(t => t.GetFields()).Select(f => (string)f.GetValue(null)!)
                .Append("Sort"), // Sort-Object: the real cmdlet's name, which scripts use, has no Verbs* constant
            StringComparer.OrdinalIgnoreCase);
        foreach (string name in added)
        {
            var entry = Assert.IsType<SessionStateCmdletEntry>(Assert.Single(state.Commands[name]));
            Assert.Equal("Vmi.Shell.Builtins", entry.ImplementingType.Namespace);
            Assert.True(entry.ImplementingType.IsSealed && entry.ImplementingType.IsPublic, name);
            Assert.Contains(name.Split('-')[0], approved);
            Assert.Equal(name, Assert.Single(Run($"Get-Command {name}")).Properties["Name"].Value);
        }
    }

    [Fact]
    public void ACommandTheEngineAlreadyHasIsNotReplaced()
    {
        InitialSessionState state = InitialSessionState.CreateDefault2();
        state.Commands.Add(new SessionStateFunctionEntry("Sort-Object", "'the engine''s own'"));
        IReadOnlyList<string> added = AddMissing(state);
        Assert.DoesNotContain("Sort-Object", added);
        Assert.Contains("Select-Object", added);
        using Runspace runspace = RunspaceFactory.CreateRunspace(state);
        runspace.Open();
        using var ps = System.Management.Automation.PowerShell.Create();
        ps.Runspace = runspace;
        Assert.Equal("the engine's own", Assert.Single(ps.AddScript("3, 1, 2 | Sort-Object").Invoke()).BaseObject);
    }

    // --- Write-Output, Write-Host -------------------------------------------------------------------------------

    [Fact]
    public void WriteOutputEnumeratesUnlessNoEnumerate()
    {
        Assert.Equal(new object[] { 1, 2, 3 }, Values(Run("Write-Output 1 2 3")));
        Assert.Equal(3, Run("Write-Output @(4, 5, 6)").Count);
        PSObject one = Assert.Single(Run("Write-Output -NoEnumerate @(4, 5, 6)"));
        Assert.Equal(new object[] { 4, 5, 6 }, ((object[])one.BaseObject).ToArray());
        Assert.Equal(new object[] { "a", "b" }, Values(Run("'a', 'b' | Write-Output")));
    }

    [Fact]
    public void WriteHostWritesAnInformationRecordForTheHost()
    {
        Collection<PSObject> records = Run("Write-Host 'a' 1, 2 -Separator '+' -NoNewline -ForegroundColor Green 6>&1");
        var record = (InformationRecord)Assert.Single(records).BaseObject;
        var message = (HostInformationMessage)record.MessageData;
        Assert.Equal("a+1+2", message.Message);
        Assert.True(message.NoNewLine);
        Assert.Equal(ConsoleColor.Green, message.ForegroundColor);
        Assert.Null(message.BackgroundColor);
        Assert.Contains("PSHOST", record.Tags);
        Assert.Empty(Run("Write-Host 'not output'")); // nothing in the success stream
    }

    [Fact]
    public void WriteHostReachesTheTerminalOnceWithNoNewline()
    {
        (int code, string output, string err) = Vmi("-Command", "Write-Host 'one' -NoNewline; Write-Host 'two'; Write-Host a, b -Separator ','");
        Assert.True(code == 0, err);
        Assert.Equal("onetwo\na,b\n", output.Replace("\r\n", "\n", StringComparison.Ordinal));
    }

    // --- Select-Object ------------------------------------------------------------------------------------------

    [Fact]
    public void SelectObjectPicksNamedWildcardAndCalculatedProperties()
    {
        PSObject o = Assert.Single(Run("[pscustomobject]@{ Name = 'x'; Size = 4; Sum = 2 } | Select-Object Name, S*, @{ n = 'Double'; e = { $_.Size * 2 } }, @{ Label = 'Copy'; Expression = 'Name' }, Missing"));
        Assert.Equal(new[] { "Name", "Size", "Sum", "Double", "Copy", "Missing" }, o.Properties.Select(p => p.Name));
        Assert.Equal(8, o.Properties["Double"].Value is PSObject d ? d.BaseObject : o.Properties["Double"].Value);
        Assert.Equal("x", o.Properties["Copy"].Value);
        Assert.Null(o.Properties["Missing"].Value);
        Assert.Equal("Selected.System.Management.Automation.PSCustomObject", o.TypeNames[0]);
    }

    [Fact]
    public void SelectObjectPicksByPosition()
    {
        Assert.Equal(new object[] { 1, 2 }, Values(Run("1..10 | Select-Object -First 2")));
        Assert.Equal(new object[] { 9, 10 }, Values(Run("1..10 | Select-Object -Last 2")));
        Assert.Equal(new object[] { 4, 5 }, Values(Run("1..10 | Select-Object -Skip 3 -First 2")));
        Assert.Equal(new object[] { 1, 2, 9, 10 }, Values(Run("1..10 | Select-Object -First 2 -Last 2")));
        Assert.Empty(Run("1..10 | Select-Object -First 0"));
        Assert.Equal(new object[] { 1, 2, 3 }, Values(Run("1, 2, 1, 3, 2 | Select-Object -Unique")));
    }

    [Fact]
    public void SelectObjectFirstStopsAnEndlessProducer()
    {
        var watch = Stopwatch.StartNew();
        Assert.Equal(new object[] { 1, 2, 3 }, Values(Run("& { $i = 0; while ($true) { $i++; $i } } | Select-Object -First 3")));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30));
        Assert.Equal("after", Text("1..5 | Select-Object -First 1 | Out-Null; 'after'")); // the rest of the script goes on
    }

    [Fact]
    public void SelectObjectExpandsAPropertyAndReportsAMissingOne()
    {
        Assert.Equal(new object[] { 1, 2, 3 }, Values(Run("[pscustomobject]@{ List = 1, 2, 3 } | Select-Object -ExpandProperty List")));
        Assert.Equal(new object[] { "x" }, Values(Run("[pscustomobject]@{ Name = 'x' } | Select-Object -ExpandProperty Name")));
        PSObject element = Assert.Single(Run("[pscustomobject]@{ Inner = [pscustomobject]@{ A = 1 }; Tag = 't' } | Select-Object -ExpandProperty Inner -Property Tag"));
        Assert.Equal("t", element.Properties["Tag"].Value);
        Assert.Equal(1, element.Properties["A"].Value);

        Assert.Empty(Run("[pscustomobject]@{ Name = 'x' } | Select-Object -ExpandProperty Nope", out List<ErrorRecord> errors));
        Assert.StartsWith("ExpandPropertyNotFound", Assert.Single(errors).FullyQualifiedErrorId, StringComparison.Ordinal);
    }

    [Fact]
    public void SelectObjectExcludesAndRejectsABadCalculatedProperty()
    {
        PSObject o = Assert.Single(Run("[pscustomobject]@{ A = 1; B = 2; C = 3 } | Select-Object -ExcludeProperty B"));
        Assert.Equal(new[] { "A", "C" }, o.Properties.Select(p => p.Name));
        Assert.Empty(Run("1 | Select-Object -Property @{ n = 'x'; Oops = 1 }", out List<ErrorRecord> errors));
        Assert.StartsWith("IllegalKey", Assert.Single(errors).FullyQualifiedErrorId, StringComparison.Ordinal);
    }

    // --- Sort-Object --------------------------------------------------------------------------------------------

    [Fact]
    public void SortObjectOrdersNumbersAsNumbersStablyAndUniquely()
    {
        Assert.Equal(new object[] { 2, 10, 33 }, Values(Run("10, 2, 33 | Sort-Object")));
        Assert.Equal(new object[] { 33, 10, 2 }, Values(Run("10, 2, 33 | Sort-Object -Descending")));
        Assert.Equal(new object[] { "a", "B", "c" }, Values(Run("'c', 'a', 'B', 'b', 'A' | Sort-Object -Unique")));
        Assert.Equal(
            new object[] { "b1", "a2", "b2", "a3" },
            Values(Run("[pscustomobject]@{ N = 'a2'; K = 2 }, [pscustomobject]@{ N = 'b1'; K = 1 }, [pscustomobject]@{ N = 'b2'; K = 2 }, [pscustomobject]@{ N = 'a3'; K = 3 } | Sort-Object K | ForEach-Object N")));
    }

    [Fact]
    public void SortObjectTakesSeveralKeysWithTheirOwnOrder()
    {
        const string Input = "[pscustomobject]@{ G = 'x'; V = 1 }, [pscustomobject]@{ G = 'y'; V = 5 }, [pscustomobject]@{ G = 'x'; V = 3 }";
        Assert.Equal(new object[] { "x3", "x1", "y5" }, Values(Run(Input + " | Sort-Object G, @{ Expression = 'V'; Descending = $true } | ForEach-Object { $_.G + $_.V }")));
        Assert.Equal(new object[] { "y5", "x3", "x1" }, Values(Run(Input + " | Sort-Object { $_.V * -1 } | ForEach-Object { $_.G + $_.V }")));
    }

    // --- Format-Table, Format-List, Out-String -------------------------------------------------------------------

    [Fact]
    public void FormatTableAndListUseTheEngineFormatter()
    {
        string table = Text("[pscustomobject]@{ Name = 'alpha'; Size = 12 }, [pscustomobject]@{ Name = 'b'; Size = 3 } | Format-Table | Out-String");
        string[] lines = table.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd()).ToArray();
        Assert.Equal(new[] { "Name  Size", "----  ----", "alpha   12", "b        3" }, lines);

        string list = Text("[pscustomobject]@{ Name = 'alpha'; Size = 12 } | Format-List | Out-String");
        Assert.Equal(new[] { "Name : alpha", "Size : 12" }, list.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd()));

        // -Property with a calculated column, and a list of an object that would otherwise be a table
        string custom = Text("[pscustomobject]@{ A = 255 } | Format-Table @{ n = 'Hex'; e = { '0x{0:x}' -f $_.A } } -HideTableHeaders | Out-String");
        Assert.Equal("0xff", custom.Trim());
    }

    [Fact]
    public void OutStringStreamsLinesAndHonoursWidth()
    {
        Assert.Equal(new object[] { "Name : alpha", "Size : 12" }, Values(Run("[pscustomobject]@{ Name = 'alpha'; Size = 12 } | Format-List | Out-String -Stream | Where-Object { $_ }")));
        Assert.Equal("hello\n", Text("'hello' | Out-String"));
        Assert.Equal("ab", Text("'a', 'b' | Out-String -NoNewline"));
        string narrow = Text($"[pscustomobject]@{{ Text = '{new string('x', 60)}' }} | Format-Table -Wrap | Out-String -Width 20");
        Assert.All(narrow.Split('\n'), l => Assert.True(l.Length <= 20, l));
    }

    [Fact]
    public void AVmiScriptSelectsSortsAndFormatsRegistersInTheShell()
    {
        (int code, string output, string err) = Vmi("-Command", "Connect-VmiDomain -Mock | Out-Null; Get-VmiRegister | Select-Object Vcpu, Rip | Sort-Object Rip -Descending | Format-Table");
        Assert.True(code == 0, output + err);
        string[] lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim()).ToArray();
        Assert.Equal("Vcpu                  Rip", lines[0]);
        Assert.Equal(new[] { "1", "0", "3", "2" }, lines.Skip(2).Select(l => l.Split(' ')[0]));
        Assert.Equal("1 18446744071578845856", System.Text.RegularExpressions.Regex.Replace(lines[2], " +", " "));
    }
}
