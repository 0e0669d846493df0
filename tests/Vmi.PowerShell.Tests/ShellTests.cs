using System.Diagnostics;

namespace Vmi.PowerShell.Tests;

/// <summary>
/// The vmi executable, run as a user runs it: pwsh's console host with the module loaded. -Command, -File with
/// arguments, standard input, exit codes, profiles, completion and the SDK's own cmdlets.
/// </summary>
public class ShellTests
{
    private static string ShellDll => PowerShellHost.ShellFile("vmi.dll");

    private static (int ExitCode, string Out, string Err) Vmi(string? stdin, params string[] args) => VmiIn(null, stdin, args);

    /// <summary>Runs vmi with HOME set to <paramref name="home"/> (its profile lives there), or a fresh temp folder.</summary>
    private static (int ExitCode, string Out, string Err) VmiIn(string? home, string? stdin, params string[] args)
    {
        ProcessStartInfo psi = NewVmi(home);
        psi.ArgumentList.Add(ShellDll);
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using Process p = Process.Start(psi)!;
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        if (stdin is not null)
        {
            p.StandardInput.Write(stdin);
        }

        p.StandardInput.Close();
        // A hang guard, not a budget: build.ps1 running every Pester suite took over 2 minutes at load 75 on 2 cores.
        Assert.True(p.WaitForExit(900_000), "vmi did not exit in 15 minutes");
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>A vmi process with plain output (NO_COLOR, as pwsh writes colours into pipes too) and its own HOME.</summary>
    private static ProcessStartInfo NewVmi(string? home)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        psi.Environment["NO_COLOR"] = "1";
        // The NuGet cache (Pester's package) stays where this process's HOME has it.
        psi.Environment["NUGET_PACKAGES"] = Environment.GetEnvironmentVariable("NUGET_PACKAGES") ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        psi.Environment["HOME"] = home ?? Path.Combine(Path.GetTempPath(), "vmi-test-home");
        psi.Environment.Remove("PSModulePath");
        return psi;
    }

    [Fact]
    public void CommandRunsWithTheModuleImportedAndFormatsWithItsViews()
    {
        (int code, string output, string err) = Vmi(null, "-Command", "$null = Connect-VmiDomain -Mock; Read-VmiMemory 0xffffffff82000100 -Length 16 | Out-String -Width 120");
        Assert.True(code == 0, err);
        Assert.Contains("FFFFFFFF82000100  4865 6C6C 6F20 6672 6F6D 2074 6865 2056  Hello from the V", output, StringComparison.Ordinal);
        Assert.DoesNotContain("\x1b[", output, StringComparison.Ordinal); // redirected output is plain text
    }

    [Fact]
    public void ErrorsGoToStandardErrorAndTheExitCodeSaysSo()
    {
        (int code, string output, string err) = Vmi(null, "-Command", "$null = Connect-VmiDomain -Mock; Read-VmiMemory 0xffffffff82005000");
        Assert.Equal(1, code);
        Assert.Contains("Page fault at 0xffffffff82005000", output + err, StringComparison.Ordinal);
    }

    [Fact]
    public void FileRunsAScriptWithArguments()
    {
        string script = Path.Combine(Path.GetTempPath(), $"vmi-test-{Guid.NewGuid():N}.ps1");
        File.WriteAllText(script, "param([string] $Address, [switch] $Wide)\n$null = Connect-VmiDomain -Mock\nRead-VmiMemory $Address -As ($Wide ? 'WString' : 'String')\nexit 3\n");
        try
        {
            (int code, string output, string err) = Vmi(null, "-File", script, "-Address", "0xffffffff82000200", "-Wide");
            Assert.Equal(3, code);
            Assert.Contains(@"C:\Windows\System32\ntoskrnl.exe", output, StringComparison.Ordinal);
            Assert.DoesNotContain("rror", err, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(script);
        }
    }

    [Fact]
    public void HighImpactChangesAreNeverConfirmedWithoutATerminal()
    {
        (int code, string output, string err) = Vmi(null, "-NonInteractive", "-Command", "$null = Connect-VmiDomain -Mock; Write-VmiMemory 0x1200100 -Physical -Bytes 0; Read-VmiMemory 0x1200100 -Physical -As String");
        Assert.Equal(0, code); // pwsh's rule: -Command exits 1 only when its last statement failed
        Assert.Contains("NonInteractive mode", err, StringComparison.Ordinal); // pwsh's own answer to a prompt it cannot show
        Assert.Contains("Hello from the", output, StringComparison.Ordinal); // nothing was written
    }

    [Fact]
    public void AnInteractiveSessionReadsStandardInput()
    {
        (int code, string output, string err) = Vmi("Connect-VmiDomain -Mock | Out-Null\nRead-VmiMemory 0xffffffff82000100 -As String\nexit\n");
        Assert.True(code == 0, err);
        Assert.Contains("Hello from the Vmi.PowerShell demo guest!", output, StringComparison.Ordinal);
        Assert.Matches(@"VMI /\S*> Connect-VmiDomain", output); // the prompt before a session: no empty brackets
        Assert.Contains("VMI [mock] ", output, StringComparison.Ordinal); // and after: the default session's name
    }

    [Fact]
    public void TheDemoScriptPrintsEveryStep()
    {
        string demo = Path.Combine(PowerShellHost.RepoRoot, "examples", "demo.ps1");
        (int code, string output, string err) = Vmi(null, "-File", demo);
        Assert.True(code == 0, output + err);
        Assert.Contains("0xffffffff81000100", output, StringComparison.Ordinal); // registers
        Assert.Contains("=> PA 0x1200100", output, StringComparison.Ordinal); // the page walk
        Assert.Contains("Hello from the V", output, StringComparison.Ordinal); // the hex dump
        Assert.Contains("Hello from the Vmi.PowerShell demo guest!", output, StringComparison.Ordinal); // the string
        Assert.Contains("0x1203456", output, StringComparison.Ordinal); // the pattern
        Assert.Contains("Deny", output, StringComparison.Ordinal); // the answered event
        Assert.Contains("CR3 after the denied write: 0x100000", output, StringComparison.Ordinal);
        Assert.Contains("done", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CtrlCStopsAWaitAndEveryEventIsAnswered()
    {
        ProcessStartInfo psi = NewVmi(null);
        psi.ArgumentList.Add(ShellDll);
        using Process p = Process.Start(psi)!;
        var output = new System.Text.StringBuilder();
        var outputEnded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        p.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                outputEnded.TrySetResult(); // the end of standard output: every line before it has been appended
                return;
            }

            lock (output)
            {
                output.AppendLine(e.Data);
            }
        };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        string Output() { lock (output) { return output.ToString(); } }

        p.StandardInput.WriteLine("$s = Connect-VmiDomain -Mock; $g = $s.Guest.GetDriver[Vmi.Mock.MockGuest](); Enable-VmiMonitor Cr3, Breakpoint");
        p.StandardInput.WriteLine("Wait-VmiEvent | ForEach-Object { 'got ' + $_.Reason; while ($true) { $null = 1 } }");
        p.StandardInput.Flush();
        // A line that starts with "got " is the handler's output (the host echoes the input line, after its prompt).
        // A hang guard, not a budget: on a loaded 2-core machine the shell's start and the first event took most of the 60 s once allowed.
        Assert.True(SpinWait.SpinUntil(() => Output().Contains("\ngot ", StringComparison.Ordinal), TimeSpan.FromMinutes(5)), Output());

        using (Process kill = Process.Start("kill", ["-INT", p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!)
        {
            kill.WaitForExit();
        }

        // The shell survives, the pipeline stopped, and no vCPU is left waiting.
        p.StandardInput.WriteLine("'pending=' + $g.EventsPending + ' answered=' + $g.Responses.Count + ' state=' + $s.State");
        p.StandardInput.WriteLine("exit");
        p.StandardInput.Close();
        Assert.True(p.WaitForExit(300_000), Output()); // a hang guard
        // WaitForExit with a timeout returns when the process has ended, not when its output has been read (.NET does not
        // wait for redirected streams then): the reader may still hold the last lines, and "pending=..." is the last line
        // vmi writes. That was the ~1-in-10 failure under load. So the check waits for the end of the output itself.
        await outputEnded.Task.WaitAsync(TimeSpan.FromMinutes(5)); // a hang guard (TimeoutException)
        Assert.True(Output().Contains("pending=0 answered=2 state=Open", StringComparison.Ordinal), Output());
        Assert.Equal(0, p.ExitCode);
    }

    [Fact]
    public void TheUtilityCmdletsAreThePowerShellSdksOwn()
    {
        (int code, string output, string err) = Vmi(null, "-NoProfile", "-Command",
            "(Get-Command Select-Object, Format-Table, ConvertTo-Json, Measure-Object, Get-Member).ModuleName | Sort-Object -Unique; " +
            "'cmdlets in vmi itself: ' + @(Get-Command -CommandType Cmdlet | Where-Object { $_.ImplementingType.Assembly.GetName().Name -eq 'vmi' }).Count; " +
            "$null = Connect-VmiDomain -Mock; Get-VmiRegister -Vcpu 0 | Select-Object -First 1 Cr3 | ConvertTo-Json -Compress");
        Assert.True(code == 0, output + err);
        Assert.Equal(["Microsoft.PowerShell.Utility", "cmdlets in vmi itself: 0"], output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)[..2]);
        Assert.Contains("\"Cr3\":", output, StringComparison.Ordinal);
    }

    [Fact]
    public void ProfilesRunUnlessNoProfileAsInPwsh()
    {
        string home = Path.Combine(Path.GetTempPath(), $"vmi-home-{Guid.NewGuid():N}");
        string profileDir = Path.Combine(home, ".config", "powershell");
        Directory.CreateDirectory(profileDir);
        File.WriteAllText(Path.Combine(profileDir, "Microsoft.PowerShell_profile.ps1"), "$global:FromProfile = 'profile ran'\n");
        try
        {
            (int code, string output, string err) = VmiIn(home, null, "-Command", "'[' + $FromProfile + ']'");
            Assert.True(code == 0, err);
            Assert.Contains("[profile ran]", output, StringComparison.Ordinal);
            (code, output, err) = VmiIn(home, null, "-NoProfile", "-Command", "'[' + $FromProfile + ']'");
            Assert.True(code == 0, err);
            Assert.Contains("[]", output, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }

    [Fact]
    public void TabCompletionUsesTheModulesCompleters()
    {
        (int code, string output, string err) = Vmi(null, "-NoProfile", "-Command",
            "function Complete($line) { (TabExpansion2 $line $line.Length).CompletionMatches.CompletionText -join ',' }; " +
            "'cmd=' + (Complete 'Get-VmiSess'); 'reg=' + (Complete 'Set-VmiRegister -Name Rs'); " +
            "$null = Connect-VmiDomain -Mock; $null = Connect-VmiDomain -Mock -SessionName second; " +
            "'name=' + (Complete 'Get-VmiSession -Name '); 'id=' + (Complete 'Get-VmiSession -Id ')");
        Assert.True(code == 0, output + err);
        Assert.Contains("cmd=Get-VmiSession", output, StringComparison.Ordinal);
        Assert.Contains("reg=Rsp,Rsi", output, StringComparison.Ordinal);
        Assert.Contains("name=mock,second", output, StringComparison.Ordinal);
        Assert.Contains("id=1,2", output, StringComparison.Ordinal); // session ids, not file names
    }

    [Theory]
    [InlineData("Read-VmiMemory (", "An expression was expected after '('.")]
    [InlineData("if ($true) {", "Missing closing '}'")]
    public void AParseErrorInACommandIsPrintedWithItsPosition(string command, string message)
    {
        (int code, string output, string err) = Vmi(null, "-NoProfile", "-Command", command);
        Assert.Equal(1, code);
        Assert.Contains("ParserError: line 1", err, StringComparison.Ordinal);
        Assert.Contains(message, err, StringComparison.Ordinal);
        Assert.Contains(command, err, StringComparison.Ordinal);
        Assert.True(string.IsNullOrWhiteSpace(output), output);
    }

    [Fact]
    public void TheMocksTypesAreUsableRightAfterImportBeforeAnyConnect()
    {
        // What a Pester suite's BeforeAll does first (RequiredAssemblies in the manifest loads Vmi.Mock at import).
        (int code, string output, string err) = Vmi(null, "-NoProfile", "-Command", "[Vmi.Mock.DemoGuestLayout]::AsciiString; [Vmi.Core.VmiException].Name");
        Assert.True(code == 0, output + err);
        Assert.Contains("Hello from the Vmi.PowerShell demo guest!", output, StringComparison.Ordinal);
        Assert.Contains("VmiException", output, StringComparison.Ordinal);
    }

    [Fact]
    public void BuildPs1RunsThePesterSuitesUnderVmi()
    {
        string build = Path.Combine(PowerShellHost.RepoRoot, "build.ps1");
        (int code, string output, string err) = Vmi(null, "-NoProfile", "-NonInteractive", "-File", build, "-Task", "Test", "-Suite", "Pester", "-Configuration", "Release");
        Assert.True(code == 0, output + err);
        System.Text.RegularExpressions.Match m = System.Text.RegularExpressions.Regex.Match(output, @"pester: (\d+) passed, 0 failed, 0 skipped \(Pester 5\.9\.1\)");
        Assert.True(m.Success, output);
        Assert.True(int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) >= 30, output);
    }

    [Fact]
    public void AFailingPesterTestFailsTheRunner()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"vmi-pester-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "Failing.Tests.ps1"), """
            Describe 'a suite with one failure' {
                It 'passes' { Read-VmiMemory ([Vmi.Mock.DemoGuestLayout]::AsciiStringVa) -As String -Session (Connect-VmiDomain -Mock) | Should -Be 'Hello from the Vmi.PowerShell demo guest!' }
                It 'fails' { 1 | Should -Be 2 }
                It 'is skipped' -Skip { }
            }
            """);
        try
        {
            string runner = Path.Combine(PowerShellHost.RepoRoot, "tests", "pester", "Invoke-VmiPester.ps1");
            (int code, string output, string err) = Vmi(null, "-NoProfile", "-NonInteractive", "-File", runner, "-Path", dir);
            Assert.Equal(1, code);
            Assert.Contains("pester: 1 passed, 1 failed, 1 skipped", output, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
