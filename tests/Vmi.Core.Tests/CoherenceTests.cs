namespace Vmi.Core.Tests;

/// <summary>No stale page and no stale translation after a write, a remap or a flush.</summary>
public class CoherenceTests
{
    [Theory]
    [InlineData(PageKind.Array)]
    [InlineData(PageKind.Pointer)]
    [InlineData(PageKind.Copy)]
    public void A_data_write_is_seen_by_the_next_read_through_every_address(PageKind kind)
    {
        var mem = new SparseDriver { Pages = kind };
        var pt = new PageTableBuilder(mem, PagingMode.Ia32e).MapRange(0x7000_0000, 2 * 4096, 0x900);
        using var core = new VmiCore(mem) { PagingMode = PagingMode.Ia32e };
        var va = AccessContext.Paging(new Va(0x7000_0ffc), pt.RootPa); // crosses into the second page
        var pa = AccessContext.Direct(new Pa(0x901_000));
        Assert.Equal(0UL, core.ReadU64(va));
        Assert.Equal(0U, core.ReadU32(pa));
        core.WriteU64(va, 0x1122334455667788);
        Assert.Equal(0x1122334455667788UL, core.ReadU64(va));
        Assert.Equal(0x11223344U, core.ReadU32(pa));
        Assert.Equal([0x88, 0x77, 0x66, 0x55], mem.Peek(0x900_ffc, 4));
    }

    [Theory]
    [InlineData(PageKind.Array)]
    [InlineData(PageKind.Copy)]
    public void Writing_a_page_table_entry_through_VmiCore_leaves_no_stale_translation(PageKind kind)
    {
        var mem = new SparseDriver { Pages = kind };
        var pt = new PageTableBuilder(mem, PagingMode.Ia32e).Map(0x40_0000, 0xA_0000);
        mem.PokeU64(0xA_0000, 0xAAAA);
        mem.PokeU64(0xB_0000, 0xBBBB);
        using var core = new VmiCore(mem) { PagingMode = PagingMode.Ia32e };
        var ctx = AccessContext.Paging(new Va(0x40_0000), pt.RootPa);
        Assert.Equal(0xAAAAUL, core.ReadU64(ctx));

        // Remap the PTE through VmiCore (physical write): the next read must go to the new frame.
        ulong pte = pt.EntryAddress(0x40_0000, 1);
        core.WriteU64(AccessContext.Direct(new Pa(pte)), 0xB_0000 | Pte.P | Pte.W);
        Assert.Equal(0xBBBBUL, core.ReadU64(ctx));

        // Unmap it at the PD level: the next read faults, naming the level.
        ulong pde = pt.EntryAddress(0x40_0000, 2);
        core.WriteU64(AccessContext.Direct(new Pa(pde)), 0);
        var e = Assert.Throws<PageFaultException>(() => core.ReadU64(ctx));
        Assert.Equal(PagingLevel.Pd, e.Level);
    }

    [Fact]
    public void Writing_a_table_through_a_virtual_alias_leaves_no_stale_translation()
    {
        var mem = new SparseDriver();
        var pt = new PageTableBuilder(mem, PagingMode.Ia32e).Map(0x40_0000, 0xA_0000);
        ulong pte = pt.EntryAddress(0x40_0000, 1);
        pt.Map(0x50_0000, pte & ~0xFFFUL); // the page table itself, mapped at 0x500000
        mem.Frame(0xA0);
        mem.PokeU64(0xB_0000, 0xBBBB);
        using var core = new VmiCore(mem) { PagingMode = PagingMode.Ia32e };
        var ctx = AccessContext.Paging(new Va(0x40_0000), pt.RootPa);
        Assert.Equal(0UL, core.ReadU64(ctx));
        core.WriteU64(AccessContext.Paging(new Va(0x50_0000 + (pte & 0xFFF)), pt.RootPa), 0xB_0000 | Pte.P);
        Assert.Equal(0xBBBBUL, core.ReadU64(ctx));
    }

    [Fact]
    public void A_remap_behind_VmiCores_back_is_seen_after_a_flush()
    {
        var mem = new SparseDriver();
        var pt = new PageTableBuilder(mem, PagingMode.Ia32e).Map(0x40_0000, 0xA_0000);
        mem.PokeU64(0xA_0000, 0xAAAA);
        mem.PokeU64(0xB_0000, 0xBBBB);
        using var core = new VmiCore(mem) { PagingMode = PagingMode.Ia32e };
        var ctx = AccessContext.Paging(new Va(0x40_0000), pt.RootPa);
        Assert.Equal(0xAAAAUL, core.ReadU64(ctx));
        pt.Map(0x40_0000, 0xB_0000); // the guest changes its tables
        Assert.Equal(0xAAAAUL, core.ReadU64(ctx)); // cached, as documented: the TLB-like cache needs a flush
        Assert.True(core.FlushV2PCacheEntry(new AddressContext(new Va(0x40_0000), pt.RootPa)));
        Assert.Equal(0xBBBBUL, core.ReadU64(ctx));
        pt.Map(0x40_0000, 0xA_0000);
        core.FlushV2PCache();
        Assert.Equal(0xAAAAUL, core.ReadU64(ctx));
    }

    [Fact]
    public void Copied_pages_are_refreshed_after_a_flush()
    {
        var mem = new SparseDriver { Pages = PageKind.Copy };
        mem.Frame(5);
        using var core = new VmiCore(mem);
        var ctx = AccessContext.Direct(new Pa(0x5000));
        Assert.Equal(0, core.ReadU8(ctx));
        mem.Poke(0x5000, [7]);
        core.FlushGfnCacheEntry(new Gfn(5));
        Assert.Equal(7, core.ReadU8(ctx));
    }

    [Fact]
    public void Changing_the_physical_address_width_drops_translations_made_under_the_old_one()
    {
        var mem = new SparseDriver();
        var pt = new PageTableBuilder(mem, PagingMode.Ia32e).Map(0x40_0000, 0x10_0000_5000); // bit 36 set
        using var core = new VmiCore(mem) { PagingMode = PagingMode.Ia32e };
        var ctx = new AddressContext(new Va(0x40_0000), pt.RootPa);
        Assert.True(core.TryTranslateAddress(ctx).Success);
        core.PhysicalAddressWidth = 36;
        TranslationResult r = core.TryTranslateAddress(ctx);
        Assert.Equal(WalkFaultKind.ReservedBit, r.Fault);
        Assert.Throws<ArgumentOutOfRangeException>(() => core.PhysicalAddressWidth = 53);
        Assert.Throws<ArgumentOutOfRangeException>(() => core.PhysicalAddressWidth = 31);
    }

    [Fact]
    public void A_write_that_faults_part_way_writes_nothing()
    {
        var mem = new SparseDriver();
        var pt = new PageTableBuilder(mem, PagingMode.Ia32e).Map(0x40_0000, 0xA_0000); // 0x401000 unmapped
        using var core = new VmiCore(mem) { PagingMode = PagingMode.Ia32e };
        var e = Assert.Throws<PageFaultException>(() => core.Write(AccessContext.Paging(new Va(0x40_0ffe), pt.RootPa), [1, 2, 3, 4]));
        Assert.Equal(new Va(0x40_1000), e.Va);
        Assert.Equal([0, 0], mem.Peek(0xA_0ffe, 2));
        Assert.Equal(0, mem.WriteCalls);
    }
}

public class WalkShortcutTests
{
    [Fact]
    public void Two_address_spaces_sharing_a_shortcut_slot_do_not_mix()
    {
        var mem = new SparseDriver();
        var a = new PageTableBuilder(mem, PagingMode.Ia32e, firstTableFrame: 0x100); // root frame 0x100
        var b = new PageTableBuilder(mem, PagingMode.Ia32e, firstTableFrame: 0x140); // root frame 0x140: same slot (frames differ by 64)
        a.Map(0x40_0000, 0xA_0000).Map(0x40_1000, 0xA_1000);
        b.Map(0x40_0000, 0xB_0000).Map(0x40_1000, 0xB_1000);
        using var core = new VmiCore(mem) { PagingMode = PagingMode.Ia32e };
        for (int round = 0; round < 2; round++)
        {
            Assert.Equal(new Pa(0xA_0000), core.TranslateAddress(new AddressContext(new Va(0x40_0000), a.RootPa)));
            Assert.Equal(new Pa(0xB_1000), core.TranslateAddress(new AddressContext(new Va(0x40_1000), b.RootPa)));
            Assert.Equal(new Pa(0xA_1000), core.TranslateAddress(new AddressContext(new Va(0x40_1000), a.RootPa)));
            Assert.Equal(new Pa(0xB_0000), core.TranslateAddress(new AddressContext(new Va(0x40_0000), b.RootPa)));
            core.FlushV2PCache();
        }
    }

    [Fact]
    public void A_pde_changed_behind_VmiCores_back_is_seen_after_flushing_one_entry()
    {
        var mem = new SparseDriver();
        var pt = new PageTableBuilder(mem, PagingMode.Ia32e).Map(0x40_0000, 0xA_0000).Map(0x40_1000, 0xA_1000);
        using var core = new VmiCore(mem) { PagingMode = PagingMode.Ia32e };
        Assert.Equal(new Pa(0xA_0000), core.TranslateAddress(new AddressContext(new Va(0x40_0000), pt.RootPa)));

        // The guest points the PDE at another page table, in which 0x401000 maps elsewhere.
        ulong newPt = pt.AllocateTable();
        mem.PokeU64((newPt << 12) + 8, 0xC_1000 | Pte.P);
        pt.SetEntry(0x40_0000, 2, (newPt << 12) | Pte.P | Pte.W);
        Assert.True(core.FlushV2PCacheEntry(new AddressContext(new Va(0x40_0000), pt.RootPa)));
        Assert.Equal(new Pa(0xC_1000), core.TranslateAddress(new AddressContext(new Va(0x40_1000), pt.RootPa)));
    }
}
