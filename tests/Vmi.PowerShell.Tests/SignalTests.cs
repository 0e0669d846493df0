using System.Diagnostics;

namespace Vmi.PowerShell.Tests;

/// <summary>
/// Issue 10: a signal that ends the process (SIGTERM from kill, SIGHUP from a dropped ssh session, SIGQUIT) restores
/// every session first. (SIGINT is the host's Ctrl+C: it stops the command, see ShellTests.) The vmi shell runs as a user runs it, with the demo
/// guest paused, a frame restricted, a monitor on and a view made; the mock writes its state to a file on every change
/// (VMI_MOCK_STATE_FILE), which this test reads from outside the process after the signal.
/// </summary>
public sealed class SignalTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vmi-signal-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string ShellDll => PowerShellHost.ShellFile("vmi.dll");

    [Theory]
    [InlineData("TERM", 15)]
    [InlineData("HUP", 1)]
    [InlineData("QUIT", 3)]
    public async Task A_signal_that_ends_the_process_restores_the_guest_first(string signal, int number)
    {
        string state = Path.Combine(_dir, "mock.state");
        const string Script = """
            $null = Connect-VmiDomain -Mock
            Suspend-VmiDomain -Confirm:$false
            Set-VmiMemoryAccess -Gfn 0x100 -Access R -Confirm:$false
            Enable-VmiMonitor Cr3 -Confirm:$false
            $null = New-VmiView -Confirm:$false
            $null = Get-VmiRegister -Vcpu 0
            Start-Sleep -Seconds 600
            """;
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(ShellDll);
        psi.ArgumentList.Add("-Command");
        psi.ArgumentList.Add(Script);
        psi.Environment["VMI_MOCK_STATE_FILE"] = state;
        using Process p = Process.Start(psi)!;
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        try
        {
            // Ready when the mock says so (the shell may hold its output until the command ends): poll, with a hang guard.
            const string Ready = "paused=1 restricted=1 monitors=1 views=1 disposed=False";
            var guard = Stopwatch.StartNew();
            while (!(File.Exists(state) && File.ReadAllText(state).Trim() == Ready))
            {
                if (p.HasExited)
                {
                    Assert.Fail("vmi ended before the guest was set up: " + await stderr + await stdout);
                }

                if (guard.Elapsed > TimeSpan.FromMinutes(5))
                {
                    Assert.Fail("vmi did not set the guest up: " + (File.Exists(state) ? File.ReadAllText(state) : "no state written"));
                }

                await Task.Delay(100);
            }

            using (Process kill = Process.Start("kill", ["-" + signal, p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!)
            {
                kill.WaitForExit();
                Assert.Equal(0, kill.ExitCode);
            }

            Assert.True(p.WaitForExit(120_000), $"vmi did not end on SIG{signal}"); // a hang guard, not a time budget
            Assert.Equal("paused=0 restricted=0 monitors=0 views=0 disposed=True", File.ReadAllText(state).Trim());
            if (signal == "QUIT")
            {
                // .NET also raises SIGQUIT as Ctrl+Break to the shell, which may stop the command and exit first (1):
                // either way the guest was restored before the process ended.
                Assert.NotEqual(0, p.ExitCode);
            }
            else
            {
                Assert.Equal(128 + number, p.ExitCode);
            }
        }
        finally
        {
            if (!p.HasExited)
            {
                p.Kill(entireProcessTree: true);
            }
        }
    }
}
