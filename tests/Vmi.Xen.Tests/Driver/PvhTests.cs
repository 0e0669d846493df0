using Vmi.Core;
using Vmi.Core.Arch.Amd64;
using Vmi.Xen.Native;
using Vmi.Xen.Tests.Events;

namespace Vmi.Xen.Tests.Driver;

/// <summary>
/// A PVH guest (type = "pvh"): an HVM container without a device model. The driver makes no call that needs one, so a
/// PVH domain gets every capability an HVM domain gets on the same CPU; a PV domain is refused, naming both kinds it takes.
/// </summary>
public sealed class PvhTests : IDisposable
{
    private const uint PvhId = 12;
    private readonly SimulatedXenHost _xen = new();
    private XenDriver? _driver;

    public PvhTests() => _xen.Domains.Add(new XenDomainInfo(PvhId, "pvh-guest", 2, 1UL << 30, XenDomainState.Running) { IsPvh = true });

    public void Dispose() => _driver?.Dispose();

    [Theory]
    [InlineData(XenCpuVendor.Intel)]
    [InlineData(XenCpuVendor.Amd)]
    public void A_pvh_guest_is_read_monitored_and_restored_as_an_hvm_guest_is(XenCpuVendor vendor)
    {
        _xen.CpuVendor = vendor;
        _xen.Memory[0x10] = new byte[4096];
        _xen.Memory[0x10][0x40] = 0x11;
        _driver = XenDriver.Connect(_xen, XenDomainSelector.ByName("pvh-guest"), XenConnectOptions.Default, hookProcessExit: false);

        Assert.True(_driver.Domain.IsPvh);
        Assert.Contains("PVH", _driver.Domain.ToString(), StringComparison.Ordinal);
        Assert.True(_driver.TryMapPage(new Gfn(0x10), out MappedPage? page));
        using (page)
        {
            Assert.Equal(0x11, page.Span[0x40]);
        }

        Assert.Equal(0x1aa000UL, _driver.GetRegisters(new VcpuId(0)).Cr3);
        _driver.Pause();
        _driver.Resume();
        _driver.EnableMonitor(EventMonitor.ControlRegisterWrite(ControlRegister.Cr3));
        _xen.Channel!.Put(XenRingSimulator.Request(0, VmEventAbi.ReasonWriteCtrlreg));
        Assert.Equal(1, _driver.WaitForEvents(TimeSpan.FromSeconds(5), _ => VmiEventResponse.Continue));

        _driver.ResetState();

        Assert.Empty(_xen.Monitors);
        Assert.Null(_xen.Channel);
        Assert.Empty(_xen.WaitingVcpus);
        Assert.Equal(0, _xen.PauseCount);
    }

    [Fact]
    public void A_pv_guest_is_refused_naming_the_kinds_the_driver_takes()
    {
        var ex = Assert.Throws<VmiDriverException>(() => XenDriver.Connect(_xen, XenDomainSelector.ById(9), XenConnectOptions.Default, hookProcessExit: false));
        Assert.Contains("PV guest", ex.Message, StringComparison.Ordinal);
        Assert.Contains("type = \"pvh\"", ex.Message, StringComparison.Ordinal);
    }
}
