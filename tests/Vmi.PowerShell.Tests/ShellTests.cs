using System.Diagnostics;

namespace Vmi.PowerShell.Tests;

/// <summary>The vmi executable, run as a user runs it: -Command, -File with arguments, standard input, exit codes.</summary>
public class ShellTests
{
    private static string ShellDll
    {
        get
        {
#if DEBUG_BUILD
            const string configuration = "Debug";
#else
            const string configuration = "Release";
#endif
            string path = Path.Combine(PowerShellHost.RepoRoot, "src", "Shell", "bin", configuration, "net10.0", "vmi.dll");
            Assert.True(File.Exists(path), "The vmi shell was not built at " + path);
            return path;
        }
    }

    private static (int ExitCode, string Out, string Err) Vmi(string? stdin, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
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
        Assert.True(p.WaitForExit(120_000), "vmi did not exit");
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    [Fact]
    public void CommandRunsWithTheModuleImportedAndFormatsWithItsViews()
    {
        (int code, string output, string err) = Vmi(null, "-Command", "$null = Connect-VmiDomain -Mock; Read-VmiMemory 0xffffffff82000100 -Length 16");
        Assert.True(code == 0, err);
        Assert.Contains("FFFFFFFF82000100    48 65 6C 6C 6F 20 66 72 6F 6D 20 74 68 65 20 56  Hello from the V", output, StringComparison.Ordinal);
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
        (int code, string output, string err) = Vmi(null, "-Command", "$null = Connect-VmiDomain -Mock; Write-VmiMemory 0x1200100 -Physical -Bytes 0; Read-VmiMemory 0x1200100 -Physical -As String");
        Assert.NotEqual(0, code);
        Assert.Contains("-Confirm:$false", output + err, StringComparison.Ordinal);
        Assert.Contains("Hello from the", output, StringComparison.Ordinal); // nothing was written
    }

    [Fact]
    public void AnInteractiveSessionReadsStandardInput()
    {
        (int code, string output, string err) = Vmi("Connect-VmiDomain -Mock | Out-Null\nRead-VmiMemory 0xffffffff82000100 -As String\nexit\n");
        Assert.True(code == 0, err);
        Assert.Contains("Hello from the Vmi.PowerShell demo guest!", output, StringComparison.Ordinal);
        Assert.Contains("VMI [mock]>", output, StringComparison.Ordinal);
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
    public void CtrlCStopsAWaitAndEveryEventIsAnswered()
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(ShellDll);
        using Process p = Process.Start(psi)!;
        var output = new System.Text.StringBuilder();
        p.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        string Output() { lock (output) { return output.ToString(); } }

        p.StandardInput.WriteLine("$s = Connect-VmiDomain -Mock; $g = $s.Guest.GetDriver[Vmi.Mock.MockGuest](); Enable-VmiMonitor Cr3, Breakpoint");
        p.StandardInput.WriteLine("Wait-VmiEvent | ForEach-Object { 'got ' + $_.Reason; while ($true) { $null = 1 } }");
        p.StandardInput.Flush();
        Assert.True(SpinWait.SpinUntil(() => Output().Contains("got ", StringComparison.Ordinal), TimeSpan.FromSeconds(60)), Output());

        using (Process kill = Process.Start("kill", ["-INT", p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!)
        {
            kill.WaitForExit();
        }

        // The shell survives, the pipeline stopped, and no vCPU is left waiting.
        p.StandardInput.WriteLine("'pending=' + $g.EventsPending + ' answered=' + $g.Responses.Count + ' state=' + $s.State");
        p.StandardInput.WriteLine("exit");
        p.StandardInput.Close();
        Assert.True(p.WaitForExit(60_000), Output());
        Assert.Contains("pending=0 answered=2 state=Open", Output(), StringComparison.Ordinal);
        Assert.Equal(0, p.ExitCode);
    }
}
