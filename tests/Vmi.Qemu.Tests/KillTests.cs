using System.Diagnostics;
using System.Globalization;

namespace Vmi.Qemu.Tests;

/// <summary>A session in another process, killed while it waits for breakpoint hits: what is left in QEMU afterwards.</summary>
[Collection("live-4level")]
public sealed class KillTests(FourLevelGuest guest)
{
    [Fact]
    public void SIGTERM_mid_wait_removes_the_breakpoints_and_leaves_the_guest_running()
    {
        using Process helper = StartHelper();
        try
        {
            Signal(helper, "TERM");
            Assert.True(helper.WaitForExit(60000), "the helper did not exit on SIGTERM");
        }
        finally
        {
            KillIfRunning(helper);
        }

        AssertGuestRunsFreely();
    }

    [Fact]
    public void After_SIGKILL_a_new_connect_removes_the_stale_breakpoints()
    {
        using (Process helper = StartHelper())
        {
            try
            {
                Signal(helper, "KILL");
                Assert.True(helper.WaitForExit(60000));
            }
            finally
            {
                KillIfRunning(helper);
            }
        }

        // Nothing ran to clean up: the breakpoints are still in QEMU, and the next nanosleep stops the VM with no
        // debugger attached. A new session recognises that state and cleans it up.
        using (QmpClient qmp = QmpClient.Connect(guest.QmpPath))
        {
            DateTime deadline = DateTime.UtcNow + TimeSpan.FromMinutes(1);
            while (qmp.Status() == "running" && DateTime.UtcNow < deadline)
            {
                Thread.Sleep(100);
            }

            Assert.Equal("debug", qmp.Status());
        }

        using (QemuDriver d = QemuDriver.Connect(guest.QmpPath))
        {
            Assert.Contains("removed breakpoints left by a session that was killed", d.Description, StringComparison.Ordinal);
        }

        AssertGuestRunsFreely();
    }

    private Process StartHelper()
    {
        string dll = Path.Combine(AppContext.BaseDirectory.Replace("Vmi.Qemu.Tests", "Vmi.Qemu.Helper", StringComparison.Ordinal), "Vmi.Qemu.Helper.dll");
        Assert.True(File.Exists(dll), $"the helper is not built at {dll}");
        var psi = new ProcessStartInfo("dotnet", [dll, guest.QmpPath,
            guest.Functions["__x64_sys_nanosleep"].ToString("x", CultureInfo.InvariantCulture),
            guest.Functions["__x64_sys_clock_nanosleep"].ToString("x", CultureInfo.InvariantCulture)])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        Process p = Process.Start(psi)!;
        int hits = 0;
        bool ready = false;
        DateTime deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2); // hang guard
        while (hits < 3 && DateTime.UtcNow < deadline)
        {
            Task<string?> line = p.StandardOutput.ReadLineAsync();
            if (!line.Wait(TimeSpan.FromMinutes(1)) || line.Result is null)
            {
                break;
            }

            ready |= line.Result.StartsWith("READY 2", StringComparison.Ordinal);
            hits += line.Result.StartsWith("HIT", StringComparison.Ordinal) ? 1 : 0;
        }

        if (!ready || hits < 3)
        {
            KillIfRunning(p);
            Assert.Fail($"the helper did not reach its wait with hits (ready={ready}, hits={hits}): {p.StandardError.ReadToEnd()}");
        }

        // Keep draining its output so that it never blocks on a full pipe.
        _ = p.StandardOutput.ReadToEndAsync();
        return p;
    }

    private static void Signal(Process p, string signal)
    {
        if (p.HasExited)
        {
            Assert.Fail($"the helper exited early ({p.ExitCode})");
        }

        using Process kill = Process.Start("kill", ["-" + signal, p.Id.ToString(CultureInfo.InvariantCulture)])!;
        kill.WaitForExit();
        Assert.Equal(0, kill.ExitCode);
    }

    private static void KillIfRunning(Process p)
    {
        if (!p.HasExited)
        {
            p.Kill();
            p.WaitForExit(30000);
        }
    }

    private void AssertGuestRunsFreely()
    {
        using QmpClient qmp = QmpClient.Connect(guest.QmpPath);
        Assert.Equal("running", qmp.Status());
        int tick = guest.LastTick();
        DateTime deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        while (guest.LastTick() < tick + 10 && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(200);
        }

        Assert.True(guest.LastTick() >= tick + 10, $"the guest's serial stopped at tick {guest.LastTick()}");
        Assert.Equal("running", qmp.Status());
        Assert.DoesNotContain("gdb.sock", qmp.Execute("query-chardev").ToJsonString(), StringComparison.Ordinal);
    }
}
