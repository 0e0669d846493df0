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
        core.SetRegisters(new VcpuId(0), r with { Cr4 = r.Cr4 | Amd64.Cr4La57 });
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

public class ViewAndVmControlTests
{
    [Fact]
    public void An_explicit_paging_mode_survives_a_register_write()
    {
        using var core = new VmiCore(new FullDriver()) { PagingMode = PagingMode.Pae };
        core.SetRegisters(new VcpuId(0), core.GetRegisters(new VcpuId(0)));
        Assert.Equal(PagingMode.Pae, core.PagingMode);
    }

    [Fact]
    public void View_remaps_and_freed_frames_leave_no_stale_page_or_translation()
    {
        var driver = new FullDriver();
        var pt = new PageTableBuilder(driver, PagingMode.Ia32e).Map(0x40_0000, 0xA_0000);
        driver.PokeU64(0xA_0000, 1);
        using var core = new VmiCore(driver);
        var ctx = AccessContext.Paging(new Va(0x40_0000), pt.RootPa);
        Assert.Equal(1UL, core.ReadU64(ctx));
        core.ChangeViewGfn(new View(1), new Gfn(0xA0), new Gfn(0xB0));
        Assert.Equal(0, core.GfnCacheStatistics.Count);
        Assert.Equal(0, core.V2PCacheStatistics.Count);
        Assert.Equal(1UL, core.ReadU64(ctx));
        core.FreeGfn(new Gfn(0xA0));
        Assert.Throws<GfnNotPresentException>(() => core.ReadU64(ctx));
        core.ResetState();
        core.DestroyView(new View(1));
        core.ResetViewGfn(new View(1), new Gfn(0xA0));
        Assert.Equal(0, core.GfnCacheStatistics.Count);
    }

    [Fact]
    public void Memory_access_flags_combine()
    {
        Assert.Equal(MemoryAccess.RWX, MemoryAccess.R | MemoryAccess.W | MemoryAccess.X);
        Assert.Equal(MemoryAccess.RX, MemoryAccess.RWX & ~MemoryAccess.W);
        var driver = new FullDriver();
        using var core = new VmiCore(driver);
        core.SetMemoryAccess(new Gfn(5), 2, View.Default, MemoryAccess.RX);
        Assert.Equal(MemoryAccess.RX, core.GetMemoryAccess(new Gfn(6), View.Default));
        Assert.Equal(MemoryAccess.RWX, core.GetMemoryAccess(new Gfn(7), View.Default));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => core.SetMemoryAccess(new Gfn(0xFFFFF), 2, View.Default, MemoryAccess.R));
        Assert.Contains("0xfffff", e.Message, StringComparison.Ordinal);
        core.SetMemoryAccess(new Gfn(1), 0, View.Default, MemoryAccess.None); // nothing to do
    }
}
