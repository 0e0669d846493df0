namespace Vmi.Core.Tests;

/// <summary>CR4.PSE, EFER.NXE and MAXPHYADDR as VmiCore learns them: from vCPU 0, from the caller, from the driver's VmiInfo.</summary>
public class PagingFeatureTests
{
    private const ulong NxPage = 0x40_0000;

    /// <summary>A long-mode guest (FullDriver's registers: EFER.NXE clear) with one execute-disable page.</summary>
    private static (FullDriver Driver, AddressContext Ctx) GuestWithAnNxPage()
    {
        var driver = new FullDriver();
        var pt = new PageTableBuilder(driver, PagingMode.Ia32e).Map(NxPage, 0xA_0000, leafBits: Pte.W | Pte.Xd);
        return (driver, new AddressContext(new Va(NxPage), pt.RootPa));
    }

    private static void SetEfer(VmiCore core, ulong efer)
    {
        core.SetRegisters(new VcpuId(0), core.GetRegisters(new VcpuId(0)) with { MsrEfer = efer });
    }

    [Fact]
    public void Features_come_from_cr4_pse_and_efer_nxe()
    {
        Assert.Equal(PagingFeatures.None, Amd64.GetPagingFeatures(0, 0));
        Assert.Equal(PagingFeatures.Pse, Amd64.GetPagingFeatures(Amd64.Cr4Pse | Amd64.Cr4Pae, Amd64.EferLme));
        Assert.Equal(PagingFeatures.Nxe, Amd64.GetPagingFeatures(Amd64.Cr4Pae, Amd64.EferNxe));
        Assert.Equal(PagingFeatures.All, new Registers { Cr4 = Amd64.Cr4Pse, MsrEfer = Amd64.EferNxe }.PagingFeatures);
        Assert.Throws<ArgumentNullException>(() => Amd64.GetPagingFeatures(null!));
    }

    [Fact]
    public void Without_registers_or_with_paging_off_both_features_are_on()
    {
        using var noRegisters = new VmiCore(new SparseDriver());
        Assert.Equal(PagingFeatures.All, noRegisters.PagingFeatures);

        var driver = new FullDriver();
        driver.SetRegisters(new VcpuId(0), new Registers()); // CR0.PG clear: CR4 and EFER say nothing about a mode the caller picks
        using var pagingOff = new VmiCore(driver) { PagingMode = PagingMode.Ia32e };
        Assert.Equal(PagingFeatures.All, pagingOff.PagingFeatures);
    }

    [Fact]
    public void Nxe_is_detected_from_vcpu0_and_redetected_when_its_registers_change()
    {
        (FullDriver driver, AddressContext ctx) = GuestWithAnNxPage();
        using var core = new VmiCore(driver);
        Assert.Equal(PagingFeatures.None, core.PagingFeatures);
        TranslationResult r = core.TryTranslateAddress(ctx);
        Assert.Equal((WalkFaultKind.ReservedBit, PagingLevel.Pt), (r.Fault, r.FaultLevel));
        Assert.Equal(WalkFaultKind.ReservedBit, Assert.Throws<PageFaultException>(() => core.TranslateAddress(ctx)).Kind);
        Assert.Equal(WalkFaultKind.ReservedBit, core.WalkAddress(ctx).Result.Fault);

        SetEfer(core, Amd64.EferLme | Amd64.EferLma | Amd64.EferNxe);
        Assert.Equal(PagingFeatures.Nxe, core.PagingFeatures);
        r = core.TryTranslateAddress(ctx);
        Assert.True(r.Success, r.ToString());
        Assert.True(r.NoExecute);
        Assert.Equal(1, core.V2PCacheStatistics.Count);

        // Registers that leave CR4.PSE and EFER.NXE alone keep the cache; turning NXE off drops it.
        core.SetRegisters(new VcpuId(0), core.GetRegisters(new VcpuId(0)));
        Assert.Equal(1, core.V2PCacheStatistics.Count);
        core.SetRegisters(new VcpuId(1), new Registers()); // only vCPU 0 counts
        Assert.Equal(1, core.V2PCacheStatistics.Count);
        SetEfer(core, Amd64.EferLme | Amd64.EferLma);
        Assert.Equal(0, core.V2PCacheStatistics.Count);
        Assert.Equal(WalkFaultKind.ReservedBit, core.TryTranslateAddress(ctx).Fault);
    }

    [Fact]
    public void Explicit_features_are_kept_and_a_change_drops_cached_translations()
    {
        (FullDriver driver, AddressContext ctx) = GuestWithAnNxPage();
        using var core = new VmiCore(driver) { PagingFeatures = PagingFeatures.All };
        Assert.True(core.TryTranslateAddress(ctx).NoExecute);
        Assert.Equal(1, core.V2PCacheStatistics.Count);

        SetEfer(core, Amd64.EferLme | Amd64.EferLma); // NXE still off in the registers: the explicit setting stays
        Assert.Equal(PagingFeatures.All, core.PagingFeatures);
        Assert.Equal(1, core.V2PCacheStatistics.Count);

        core.PagingFeatures = PagingFeatures.All; // no change, no flush
        Assert.Equal(1, core.V2PCacheStatistics.Count);
        core.PagingFeatures = PagingFeatures.Pse;
        Assert.Equal(0, core.V2PCacheStatistics.Count);
        Assert.Equal(WalkFaultKind.ReservedBit, core.TryTranslateAddress(ctx).Fault);

        Assert.Throws<ArgumentOutOfRangeException>(() => core.PagingFeatures = (PagingFeatures)4);
    }

    [Fact]
    public void Pse_off_makes_a_legacy_pde_with_bit_7_point_at_a_page_table()
    {
        // The reviewer's case: CR0.PG=1, CR4=0, PDE[0]=0x2083, PTE[0]=0x3003: VA 0x5 is PA 0x3005, not a 4 MiB page at 0x1_0000_0000.
        var driver = new FullDriver();
        driver.SetRegisters(new VcpuId(0), new Registers { Cr0 = Amd64.Cr0Pg, Cr3 = 0x1000 });
        driver.PokeU32(0x1000, 0x2083);
        driver.PokeU32(0x2000, 0x3003);
        using var core = new VmiCore(driver);
        Assert.Equal(PagingMode.Legacy32, core.PagingMode);
        Assert.Equal(PagingFeatures.None, core.PagingFeatures);
        var ctx = new AddressContext(new Va(5), core.GetTranslationRoot(new VcpuId(0)));
        TranslationResult r = core.TryTranslateAddress(ctx);
        Assert.Equal((new Pa(0x3005), PageSizeKind.Size4K), (r.Pa, r.PageSize));
        PageWalk walk = core.WalkAddress(ctx);
        Assert.Equal(2, walk.Entries.Count);
        Assert.Equal(PagingFeatures.None, walk.Features);

        core.PagingFeatures = PagingFeatures.Pse;
        r = core.TryTranslateAddress(ctx);
        Assert.Equal((new Pa(0x1_0000_0005), PageSizeKind.Size4M), (r.Pa, r.PageSize));
    }

    [Fact]
    public void The_physical_address_width_starts_from_the_drivers_info()
    {
        var driver = new SparseDriver(physicalAddressWidth: 36);
        var pt = new PageTableBuilder(driver, PagingMode.Ia32e).Map(0x40_0000, 0x10_0000_0000); // frame bit 36
        using var core = new VmiCore(driver) { PagingMode = PagingMode.Ia32e };
        Assert.Equal(36, core.PhysicalAddressWidth);
        var ctx = new AddressContext(new Va(0x40_0000), pt.RootPa);
        TranslationResult r = core.TryTranslateAddress(ctx);
        Assert.Equal((WalkFaultKind.ReservedBit, PagingLevel.Pt), (r.Fault, r.FaultLevel));

        core.PhysicalAddressWidth = 40;
        Assert.Equal(new Pa(0x10_0000_0000), core.TranslateAddress(ctx));
    }

    [Fact]
    public void VmiInfo_has_a_52_bit_width_unless_told_and_checks_it()
    {
        var info = new VmiInfo(4096, 12, new Gfn(0xFFFF), 1);
        Assert.Equal(52, info.PhysicalAddressWidth);
        Assert.Equal(39, (info with { PhysicalAddressWidth = 39 }).PhysicalAddressWidth);
        Assert.NotEqual(info, info with { PhysicalAddressWidth = 39 });
        Assert.Equal(info, info with { PhysicalAddressWidth = 52 });
        Assert.Throws<ArgumentOutOfRangeException>(() => info with { PhysicalAddressWidth = 31 });
        Assert.Throws<ArgumentOutOfRangeException>(() => info with { PhysicalAddressWidth = 53 });
    }
}
