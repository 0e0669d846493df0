using System.Globalization;
using Vmi.PowerShell.Tests;

namespace Vmi.Qemu.Tests;

/// <summary>The cmdlets on the live guest, through the built module in a real PowerShell runspace: the same path a user's pwsh takes.</summary>
[Collection("live-4level")]
public sealed class CmdletLiveTests(FourLevelGuest guest)
{
    [Fact]
    public void Connect_Qmp_registers_memory_breakpoints_events_and_disconnect()
    {
        string nanosleep = "0x" + guest.Functions["__x64_sys_clock_nanosleep"].ToString("x", CultureInfo.InvariantCulture);
        using (var host = new PowerShellHost())
        {
            host.RunClean($"$s = Connect-VmiDomain -Qmp '{guest.QmpPath}'");
            Assert.Equal("QEMU", host.Get<string>("$s.Driver"));
            Assert.Contains("zero copy", host.Get<string>("$s.Source"), StringComparison.Ordinal);

            // Registers and a read of the kernel function's bytes, with the guest paused for a consistent view.
            host.RunClean("Suspend-VmiDomain");
            ulong cr3 = host.Get<ulong>("(Get-VmiRegister -Vcpu 0).Cr3");
            Assert.NotEqual(0UL, cr3);
            byte[] bytes = host.Get<byte[]>($", (Read-VmiMemory {nanosleep} -Length 16 -Cr3 0x{cr3:x}).Bytes");
            Assert.Equal(16, bytes.Length);
            string x = host.Get<string>($"$s.Guest.GetDriver[Vmi.Qemu.QemuDriver]().Qmp.Hmp('x /2gx {nanosleep}', 0)");
            Assert.Equal(LiveTests<FourLevelGuest>.QemuBytes(x), bytes); // QEMU's own read of the same bytes
            host.RunClean("Resume-VmiDomain");

            // Breakpoint hits through Wait-VmiEvent, counted by Get-VmiBreakpoint.
            host.RunClean($"$bp = Set-VmiBreakpoint {nanosleep}");
            var rips = host.RunClean("Wait-VmiEvent -Count 3 -Timeout 180 | ForEach-Object { $_.Registers.Rip }").Select(o => (ulong)o.BaseObject).ToArray();
            Assert.Equal(3, rips.Length);
            Assert.All(rips, r => Assert.Equal(guest.Functions["__x64_sys_clock_nanosleep"], r));
            Assert.Equal(3L, host.Get<long>("(Get-VmiBreakpoint -Id $bp.Id).Hits"));
            host.RunClean("Get-VmiBreakpoint | Remove-VmiBreakpoint");
            Assert.Empty(host.RunClean("Get-VmiBreakpoint"));

            host.RunClean($"$null = Set-VmiBreakpoint {nanosleep}"); // left set: Disconnect removes it
            host.RunClean("Disconnect-VmiDomain");
        }

        using QmpClient qmp = QmpClient.Connect(guest.QmpPath);
        int tick = guest.LastTick();
        DateTime deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        while (guest.LastTick() < tick + 10 && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(200);
        }

        Assert.True(guest.LastTick() >= tick + 10, $"the guest's serial stopped at tick {guest.LastTick()}");
        Assert.Equal("running", qmp.Status());
    }
}
