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
    public void DocsShellListsEveryBuiltin()
    {
        Type builtins = s_shell.Value.GetType("Vmi.Shell.Builtins.ShellBuiltins", throwOnError: true)!;
        var names = (IReadOnlyList<string>)builtins.GetProperty("Names")!.GetValue(null)!;
        Assert.Equal(names.Count, AddMissing(InitialSessionState.CreateDefault2()).Count); // all of them are missing from the NuGet engine
        string doc = File.ReadAllText(Path.Combine(PowerShellHost.RepoRoot, "docs", "shell.md"));
        Assert.All(names, n => Assert.Contains($"`{n}`", doc, StringComparison.Ordinal));
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
    public void SelectObjectFirstEndsWaitVmiEvent()
    {
        var watch = Stopwatch.StartNew();
        PSObject e = Assert.Single(Run("$null = Connect-VmiDomain -Mock; Enable-VmiMonitor Cr3; Wait-VmiEvent -Timeout 60 | Select-Object -First 1"));
        Assert.Equal("VmiControlRegisterEvent", e.BaseObject.GetType().Name);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), "Wait-VmiEvent went on to its timeout: " + watch.Elapsed);
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

    // --- Measure-Object, Group-Object, Get-Member ----------------------------------------------------------------

    [Fact]
    public void MeasureObjectCountsAndComputesTheStatisticsAskedFor()
    {
        PSObject all = Assert.Single(Run("1..4 | Measure-Object -Sum -Average -Maximum -Minimum"));
        Assert.Equal(4, all.Properties["Count"].Value);
        Assert.Equal(10.0, all.Properties["Sum"].Value);
        Assert.Equal(2.5, all.Properties["Average"].Value);
        Assert.Equal(4.0, all.Properties["Maximum"].Value);
        Assert.Equal(1.0, all.Properties["Minimum"].Value);
        Assert.Null(all.Properties["Property"].Value);

        PSObject count = Assert.Single(Run("'a', 'b' | Measure-Object"));
        Assert.Equal(2, count.Properties["Count"].Value);
        Assert.Null(count.Properties["Sum"].Value); // not asked for

        Collection<PSObject> byProperty = Run("[pscustomobject]@{ A = 2; B = 5 }, [pscustomobject]@{ A = 4 } | Measure-Object A, B -Sum");
        Assert.Equal(new object[] { "A", "B" }, byProperty.Select(m => m.Properties["Property"].Value));
        Assert.Equal(new object[] { 2, 1 }, byProperty.Select(m => m.Properties["Count"].Value));
        Assert.Equal(new object[] { 6.0, 5.0 }, byProperty.Select(m => m.Properties["Sum"].Value));
    }

    [Fact]
    public void MeasureObjectReportsValuesThatAreNotNumbersAndMissingProperties()
    {
        PSObject m = Assert.Single(Run("1, 'x', 3 | Measure-Object -Sum", out List<ErrorRecord> errors));
        Assert.Equal(4.0, m.Properties["Sum"].Value);
        Assert.StartsWith("NotNumeric", Assert.Single(errors).FullyQualifiedErrorId, StringComparison.Ordinal);

        Assert.Empty(Run("[pscustomobject]@{ A = 1 } | Measure-Object Nope", out errors));
        Assert.StartsWith("GenericMeasurePropertyNotFound", Assert.Single(errors).FullyQualifiedErrorId, StringComparison.Ordinal);
    }

    [Fact]
    public void GroupObjectGroupsInOrderOfFirstAppearance()
    {
        Collection<PSObject> groups = Run("'b', 'a', 'B', 'c', 'b' | Group-Object");
        Assert.Equal(new object[] { "b", "a", "c" }, groups.Select(g => g.Properties["Name"].Value));
        Assert.Equal(new object[] { 3, 1, 1 }, groups.Select(g => g.Properties["Count"].Value));
        Assert.Equal(new object[] { "b", "B", "b" }, ((IEnumerable)groups[0].Properties["Group"].Value).Cast<PSObject>().Select(o => o.BaseObject));

        Collection<PSObject> byKeys = Run("[pscustomobject]@{ K = 1; L = 'x' }, [pscustomobject]@{ K = 2; L = 'x' }, [pscustomobject]@{ K = 1; L = 'x' } | Group-Object K, { $_.L.ToUpper() }");
        Assert.Equal(new object[] { "1, X", "2, X" }, byKeys.Select(g => g.Properties["Name"].Value));
        Assert.Equal(new object[] { 1, "X" }, ((IEnumerable)byKeys[0].Properties["Values"].Value).Cast<object>());

        var table = (Hashtable)Assert.Single(Run("1, 2, 1 | Group-Object -AsHashTable")).BaseObject;
        Assert.Equal(2, ((ICollection)table[1]!).Count);
        Assert.Equal(new object[] { 2, 1 }, Run("1, 2, 1 | Group-Object -NoElement").Select(g => g.Properties["Count"].Value));
    }

    [Fact]
    public void GetMemberListsEachTypeOnceWithKindsAndDefinitions()
    {
        Collection<PSObject> members = Run("'a', 'b', 1 | Get-Member");
        Assert.Equal(new object[] { "System.String", "System.Int32" }, members.Select(m => m.Properties["TypeName"].Value).Distinct());
        PSObject length = members.Single(m => (string)m.Properties["Name"].Value == "Length");
        Assert.Equal(PSMemberTypes.Property, length.Properties["MemberType"].Value);
        Assert.Equal("int Length {get;}", length.Properties["Definition"].Value);
        Assert.Contains(members, m => (string)m.Properties["Name"].Value == "Substring" && (PSMemberTypes)m.Properties["MemberType"].Value == PSMemberTypes.Method);
        Assert.DoesNotContain(members, m => (string)m.Properties["Name"].Value is "psobject" or "pstypenames" or "get_Length");

        Assert.Equal(
            new object[] { "Bytes", "Cr3" },
            Run("$null = Connect-VmiDomain -Mock; Read-VmiMemory 0xffffffff82000100 -Length 4 | Get-Member -Name B*, C* -MemberType Property").Select(m => m.Properties["Name"].Value));
    }

    // --- Start-Sleep, Get-Date ----------------------------------------------------------------------------------

    [Fact]
    public void StartSleepWaitsAndCanBeStopped()
    {
        var watch = Stopwatch.StartNew();
        Run("Start-Sleep -Milliseconds 200; Start-Sleep 0.1; Start-Sleep -Duration ([timespan]::FromMilliseconds(100))");
        Assert.True(watch.ElapsedMilliseconds >= 390, watch.ElapsedMilliseconds.ToString(System.Globalization.CultureInfo.InvariantCulture));

        using var ps = System.Management.Automation.PowerShell.Create();
        ps.Runspace = _runspace;
        ps.AddScript("Start-Sleep -Seconds 60");
        watch.Restart();
        IAsyncResult pending = ps.BeginInvoke();
        Thread.Sleep(300);
        ps.Stop();
        Assert.Throws<PipelineStoppedException>(() => ps.EndInvoke(pending));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30));
    }

    [Fact]
    public void GetDateGivesNowAGivenDateOrText()
    {
        var now = (DateTime)Assert.Single(Run("Get-Date")).BaseObject;
        Assert.True(Math.Abs((now - DateTime.Now).TotalMinutes) < 5);
        Assert.Equal("2020-02-29 01:02:03", Text("Get-Date -Year 2020 -Month 2 -Day 29 -Hour 1 -Minute 2 -Second 3 -Format 'yyyy-MM-dd HH:mm:ss'"));
        Assert.Equal("20240105", Text("Get-Date -Date ([datetime]'2024-01-05T10:00:00') -Format FileDate"));
        Assert.Equal(DateTimeKind.Utc, ((DateTime)Assert.Single(Run("Get-Date -AsUTC")).BaseObject).Kind);
    }

    // --- Test-Path, Get-Content, Set-Content ---------------------------------------------------------------------

    [Fact]
    public void FilesAreWrittenReadAndTested()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"vmi-builtins-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            var vars = $"$d = '{dir}'; ";
            Run(vars + "'alpha', 'beta', 42 | Set-Content ($d + '/a.txt'); Set-Content -Path ($d + '/b.txt') -Value 'x' -NoNewline");
            Assert.Equal("alpha\nbeta\n42\n", File.ReadAllText(Path.Combine(dir, "a.txt")));
            Assert.Equal(new byte[] { (byte)'x' }, File.ReadAllBytes(Path.Combine(dir, "b.txt"))); // utf8, no byte order mark

            Assert.Equal(new object[] { "alpha", "beta", "42" }, Values(Run(vars + "Get-Content ($d + '/a.txt')")));
            Assert.Equal("alpha\nbeta\n42\n", Assert.Single(Run(vars + "Get-Content ($d + '/a.txt') -Raw")).BaseObject);
            Assert.Equal(new object[] { "alpha" }, Values(Run(vars + "Get-Content ($d + '/a.txt') -TotalCount 1")));
            Assert.Equal(new object[] { "beta", "42" }, Values(Run(vars + "Get-Content ($d + '/a.txt') -Tail 2")));
            Assert.Equal(4, Run(vars + "Get-Content ($d + '/*.txt')").Count); // wildcards: both files

            Run(vars + "Set-Content ($d + '/u.txt') 'é' -Encoding unicode");
            Assert.Equal(new byte[] { 0xFF, 0xFE, 0xE9, 0x00, (byte)'\n', 0x00 }, File.ReadAllBytes(Path.Combine(dir, "u.txt")));
            Assert.Equal("é", Text(vars + "Get-Content ($d + '/u.txt')")); // the byte order mark is honoured

            Assert.Equal(
                new object[] { true, true, false, false, true, false, true },
                Values(Run(vars + "Test-Path $d; Test-Path ($d + '/a.txt'); Test-Path ($d + '/nope'); Test-Path $d -PathType Leaf; Test-Path $d -PathType Container; Test-Path ''; Test-Path ($d + '/*.txt')")));
            Assert.Equal(new object[] { true, false }, Values(Run(vars + "$ExecutionContext.SessionState.Path.SetLocation($d) | Out-Null; Test-Path ./a.txt -PathType Leaf; Test-Path -LiteralPath '*.txt'")));

            Assert.Empty(Run(vars + "Get-Content ($d + '/missing.txt')", out List<ErrorRecord> errors));
            ErrorRecord error = Assert.Single(errors);
            Assert.StartsWith("PathNotFound", error.FullyQualifiedErrorId, StringComparison.Ordinal);
            Assert.Equal(ErrorCategory.ObjectNotFound, error.CategoryInfo.Category);

            Run(vars + "Set-Content ($d + '/w.txt') 'no' -WhatIf");
            Assert.False(File.Exists(Path.Combine(dir, "w.txt")));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    // --- Export-Clixml, Import-Clixml, ConvertTo-Json -------------------------------------------------------------

    [Fact]
    public void ClixmlRoundTripsEachObjectOfThePipeline()
    {
        string file = Path.Combine(Path.GetTempPath(), $"vmi-builtins-{Guid.NewGuid():N}.xml");
        try
        {
            var v = $"$f = '{file}'; ";
            Run(v + "'text', 42, @(1, 2), [pscustomobject]@{ Name = 'n'; Inner = @{ K = 'v' } } | Export-Clixml $f");
            Collection<PSObject> back = Run(v + "Import-Clixml $f");
            Assert.Equal(4, back.Count);
            Assert.Equal("text", back[0].BaseObject);
            Assert.Equal(42, back[1].BaseObject);
            Assert.Equal(new object[] { 1, 2 }, ((IEnumerable)back[2].BaseObject).Cast<object>().Select(o => o is PSObject p ? p.BaseObject : o));
            Assert.Equal("n", back[3].Properties["Name"].Value);
            Assert.Equal("v", ((Hashtable)((PSObject)back[3].Properties["Inner"].Value).BaseObject)["K"]);

            // The file is what PowerShell's own serializer reads: each input a top-level object.
            Assert.Equal(4, PSSerializer.DeserializeAsList(File.ReadAllText(file)).Length);
            Assert.DoesNotContain("Batch", File.ReadAllText(file), StringComparison.Ordinal);

            Assert.Empty(Run(v + "'again' | Export-Clixml $f -NoClobber", out List<ErrorRecord> errors));
            Assert.StartsWith("NoClobber", Assert.Single(errors).FullyQualifiedErrorId, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void VmiMemoryGoesToClixmlAndComesBackInTheShell()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"vmi-builtins-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            (int code, string output, string err) = Vmi("-Command", $"$null = Connect-VmiDomain -Mock; Read-VmiMemory 0xffffffff82000100 -Length 16 | Export-Clixml '{dir}/x.xml'; Import-Clixml '{dir}/x.xml' | Format-List Address, Length, Bytes, @{{ n = 'Text'; e = {{ [Text.Encoding]::ASCII.GetString($_.Bytes) }} }}");
            Assert.True(code == 0, output + err);
            Assert.True(File.Exists(Path.Combine(dir, "x.xml")));
            Assert.Contains("Address : 18446744071595622656", output, StringComparison.Ordinal);
            Assert.Contains("Length  : 16", output, StringComparison.Ordinal);
            Assert.Contains("Text    : Hello from the V", output, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void ConvertToJsonWritesObjectsArraysAndTruncatesAtDepth()
    {
        Assert.Equal(
            "{\n  \"Name\": \"n\",\n  \"Size\": 4,\n  \"List\": [\n    1,\n    \"two\"\n  ],\n  \"Ok\": true,\n  \"None\": null\n}",
            Text("[pscustomobject]@{ Name = 'n'; Size = 4; List = 1, 'two'; Ok = $true; None = $null } | ConvertTo-Json"));
        Assert.Equal("[1,\"a\"]", Text("1, 'a' | ConvertTo-Json -Compress"));
        Assert.Equal("[5]", Text("5 | ConvertTo-Json -Compress -AsArray"));
        Assert.Equal("{\"D\":\"Monday\",\"N\":1}", Text("[ordered]@{ D = [DayOfWeek]::Monday; N = [DayOfWeek]::Monday } | ForEach-Object { [pscustomobject]@{ D = $_.D; N = [int]$_.N } } | ConvertTo-Json -Compress -EnumsAsStrings"));
        Assert.Equal("{\"A\":{\"B\":\"System.Collections.Hashtable\"}}", Text("@{ A = @{ B = @{ C = 1 } } } | ConvertTo-Json -Depth 1 -Compress"));
        Assert.Equal("\"é <b>\"", Text("'é <b>' | ConvertTo-Json"));
    }

    // --- Get-Location, Set-Location, Join-Path ---------------------------------------------------------------------

    [Fact]
    public void LocationChangesAndRelativePathsFollowIt()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"vmi-builtins-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Path.Combine(dir, "sub"));
        try
        {
            var info = (PathInfo)Assert.Single(Run($"Set-Location '{dir}' -PassThru")).BaseObject;
            Assert.Equal(dir, info.Path);
            Assert.Equal(dir, ((PathInfo)Assert.Single(Run("Get-Location")).BaseObject).Path);
            Run("Set-Location sub; 'here' | Set-Content f.txt; Set-Location ..");
            Assert.True(File.Exists(Path.Combine(dir, "sub", "f.txt")));
            Assert.Equal(new object[] { true }, Values(Run("Test-Path sub/f.txt")));

            Assert.Equal("a/b/c", Text("Join-Path a b c"));
            Assert.Equal(new object[] { "x/y", "z/y" }, Values(Run("'x', 'z' | Join-Path -ChildPath y")));
            Assert.Equal(Path.Combine(dir, "sub", "f.txt"), Text($"Join-Path '{dir}' 'sub/*.txt' -Resolve"));

            Assert.Empty(Run("Set-Location ./does-not-exist", out List<ErrorRecord> errors));
            Assert.StartsWith("PathNotFound", Assert.Single(errors).FullyQualifiedErrorId, StringComparison.Ordinal);
            Assert.Equal(dir, ((PathInfo)Assert.Single(Run("Get-Location")).BaseObject).Path); // unchanged
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
