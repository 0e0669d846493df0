using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Mock.Tests;

/// <summary>What a mock guest tells a VmiCore about MAXPHYADDR, CR4.PSE and EFER.NXE.</summary>
public class PagingFeatureTests
{
    private const ulong HighFrame = 0x10_0000_0000; // physical bit 36

    private static MockGuestBuilder GuestWithAPageAtBit36() =>
        new MockGuestBuilder(PagingMode.Ia32e, maxGfn: new Gfn(0xFF_FFFF_FFFF >> 12))
            .Map(new Va(0x40_0000), new Pa(HighFrame), Amd64.PageSize);

    [Fact]
    public void The_physical_address_width_reaches_VmiCore_and_entry_bits_above_it_are_reserved()
    {
        MockGuest narrow = GuestWithAPageAtBit36().WithPhysicalAddressWidth(36).Build();
        Assert.Equal(36, narrow.Info.PhysicalAddressWidth);
        using var core = new VmiCore(narrow);
        Assert.Equal(36, core.PhysicalAddressWidth);
        var ctx = new AddressContext(new Va(0x40_0000), core.GetTranslationRoot(new VcpuId(0)));
        TranslationResult r = core.TryTranslateAddress(ctx);
        Assert.Equal((WalkFaultKind.ReservedBit, PagingLevel.Pt), (r.Fault, r.FaultLevel));
        PageFaultException e = Assert.Throws<PageFaultException>(() => core.ReadU8(AccessContext.Paging(ctx.Va, ctx.Root)));
        Assert.Equal(WalkFaultKind.ReservedBit, e.Kind);

        using var wide = new VmiCore(GuestWithAPageAtBit36().Build());
        Assert.Equal(Amd64.MaxPhysicalAddressWidth, wide.PhysicalAddressWidth);
        Assert.Equal(new Pa(HighFrame), wide.TranslateAddress(ctx));
    }

    [Fact]
    public void The_width_is_checked_and_fixed_once_built()
    {
        var builder = new MockGuestBuilder();
        Assert.Throws<ArgumentOutOfRangeException>(() => builder.WithPhysicalAddressWidth(31));
        Assert.Throws<ArgumentOutOfRangeException>(() => builder.WithPhysicalAddressWidth(53));
        builder.Build();
        Assert.Throws<InvalidOperationException>(() => builder.WithPhysicalAddressWidth(40));
    }

    [Theory]
    [InlineData(PagingMode.Legacy32, PagingFeatures.Pse)] // NXE means nothing to 32-bit paging; the builder leaves it off
    [InlineData(PagingMode.Pae, PagingFeatures.All)]
    [InlineData(PagingMode.Ia32e, PagingFeatures.All)]
    [InlineData(PagingMode.Ia32eLa57, PagingFeatures.All)]
    public void A_built_guest_has_the_features_its_mode_uses(PagingMode mode, PagingFeatures expected)
    {
        using var core = new VmiCore(new MockGuestBuilder(mode).Build());
        Assert.Equal(expected, core.PagingFeatures);
    }

    [Fact]
    public void A_guest_without_NXE_makes_execute_disable_entries_reserved()
    {
        MockGuest guest = new MockGuestBuilder(PagingMode.Ia32e)
            .Map(new Va(0x40_0000), new Pa(0x20_0000), Amd64.PageSize, flags: PageEntryFlags.Writable | PageEntryFlags.NoExecute)
            .WithRegisters(new VcpuId(0), r => r with { MsrEfer = r.MsrEfer & ~Amd64.EferNxe })
            .Build();
        using var core = new VmiCore(guest);
        Assert.Equal(PagingFeatures.Pse, core.PagingFeatures);
        var ctx = new AddressContext(new Va(0x40_0000), core.GetTranslationRoot(new VcpuId(0)));
        Assert.Equal((WalkFaultKind.ReservedBit, PagingLevel.Pt), (core.TryTranslateAddress(ctx).Fault, core.TryTranslateAddress(ctx).FaultLevel));

        core.SetRegisters(new VcpuId(0), core.GetRegisters(new VcpuId(0)) with { MsrEfer = guest.GetRegisters(new VcpuId(0)).MsrEfer | Amd64.EferNxe });
        Assert.True(core.TryTranslateAddress(ctx).NoExecute);
    }

    [Fact]
    public void The_mock_translates_for_a_vcpu_by_the_same_rules_as_VmiCore()
    {
        MockGuest guest = new MockGuestBuilder(PagingMode.Ia32e)
            .Map(new Va(0x40_0000), new Pa(0x20_0000), Amd64.PageSize, flags: PageEntryFlags.Writable | PageEntryFlags.NoExecute)
            .WithRegisters(new VcpuId(0), r => r with { MsrEfer = r.MsrEfer & ~Amd64.EferNxe })
            .Build();
        using var core = new VmiCore(guest);
        var ctx = new AddressContext(new Va(0x40_0000), core.GetTranslationRoot(new VcpuId(0)));

        TranslationResult mine = guest.TranslateForVcpu(new VcpuId(0), new Va(0x40_0000));
        Assert.Equal(core.TryTranslateAddress(ctx), mine);
        Assert.Equal(WalkFaultKind.ReservedBit, mine.Fault);
    }
}
