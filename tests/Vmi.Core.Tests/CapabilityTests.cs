namespace Vmi.Core.Tests;

public class CapabilityTests
{
    public static TheoryData<VmiCapability> All() => new(Enum.GetValues<VmiCapability>());

    private static void Call(VmiCore core, VmiCapability capability)
    {
        switch (capability)
        {
            case VmiCapability.Read: core.ReadU8(AccessContext.Direct(new Pa(0x1000))); break;
            case VmiCapability.Write: core.WriteU8(AccessContext.Direct(new Pa(0x1000)), 1); break;
            case VmiCapability.QueryProtection: core.GetMemoryAccess(new Gfn(1), View.Default); break;
            case VmiCapability.SetProtection: core.SetMemoryAccess(new Gfn(1), View.Default, MemoryAccess.R); break;
            case VmiCapability.QueryRegisters: core.GetRegisters(new VcpuId(0)); break;
            case VmiCapability.SetRegisters: core.SetRegisters(new VcpuId(0), new Registers()); break;
            case VmiCapability.ViewControl: core.CreateView(MemoryAccess.RWX); break;
            case VmiCapability.EventControl: core.EnableMonitor(EventMonitor.Breakpoint); break;
            case VmiCapability.VmControl: core.Pause(); break;
            default: throw new ArgumentOutOfRangeException(nameof(capability));
        }
    }

    [Theory]
    [MemberData(nameof(All))]
    public void A_missing_capability_is_an_error_naming_the_driver_and_the_capability(VmiCapability capability)
    {
        using var core = new VmiCore(new BareDriver());
        Assert.False(core.Supports(capability));
        var e = Assert.Throws<CapabilityNotSupportedException>(() => Call(core, capability));
        Assert.Equal("Bare", e.DriverName);
        Assert.Equal(capability, e.Capability);
        Assert.Contains("Bare", e.Message, StringComparison.Ordinal);
        Assert.Contains(capability.ToString(), e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(All))]
    public void A_present_capability_is_used(VmiCapability capability)
    {
        var driver = new FullDriver();
        driver.Frame(1);
        using var core = new VmiCore(driver);
        Assert.True(core.Supports(capability));
        Call(core, capability);
    }

    [Fact]
    public void Capabilities_lists_what_the_driver_implements()
    {
        using var bare = new VmiCore(new BareDriver());
        Assert.Empty(bare.Capabilities);
        using var sparse = new VmiCore(new SparseDriver());
        Assert.Equal([VmiCapability.Read, VmiCapability.Write], sparse.Capabilities);
        using var full = new VmiCore(new FullDriver());
        Assert.Equal(Enum.GetValues<VmiCapability>(), full.Capabilities);
    }

    [Fact]
    public void A_vcpu_that_does_not_exist_is_a_clear_error()
    {
        using var core = new VmiCore(new FullDriver(vcpus: 2));
        var e = Assert.Throws<VcpuNotFoundException>(() => core.GetRegisters(new VcpuId(2)));
        Assert.Contains("2 vCPU", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_paging_mode_is_detected_from_vcpu_0()
    {
        using var core = new VmiCore(new FullDriver());
        Assert.Equal(PagingMode.Ia32e, core.PagingMode);
        Registers r = core.GetRegisters(new VcpuId(0));
        r.Cr4 |= Amd64.Cr4La57;
        core.SetRegisters(new VcpuId(0), r);
        Assert.Equal(PagingMode.Ia32eLa57, core.PagingMode);
    }

    [Fact]
    public void Dispose_disposes_the_driver_and_later_calls_fail_clearly()
    {
        var driver = new SparseDriver();
        driver.Frame(1);
        var core = new VmiCore(driver);
        core.Dispose();
        Assert.True(driver.Disposed);
        Assert.Throws<ObjectDisposedException>(() => core.ReadU8(AccessContext.Direct(new Pa(0x1000))));
        Assert.Throws<ObjectDisposedException>(() => core.WriteU8(AccessContext.Direct(new Pa(0x1000)), 1));
        core.Dispose(); // twice is harmless
    }

    [Fact]
    public void A_driver_whose_page_size_is_not_the_architectures_is_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => new VmiCore(new OddPageDriver()));
        Assert.Contains("Odd", e.Message, StringComparison.Ordinal);
    }

    private sealed class OddPageDriver : IVmiDriver
    {
        public string Name => "Odd";

        public VmiInfo Info { get; } = new(8192, 13, new Gfn(10), 1);

        public void Dispose()
        {
        }
    }
}
