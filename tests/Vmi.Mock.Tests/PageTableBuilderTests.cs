using FsCheck.Xunit;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Mock.Tests;

/// <summary>The builder writes real paging structures: VmiCore translates and reads back what was mapped.</summary>
public sealed class PageTableBuilderTests
{
    /// <summary>For each mode and page size: a virtual address high in that mode's range and a physical address to map it to.</summary>
    public static TheoryData<PagingMode, PageSizeKind, ulong, ulong> Cases => new()
    {
        { PagingMode.Legacy32, PageSizeKind.Size4K, 0xC012_3000, 0x0045_6000 },
        { PagingMode.Legacy32, PageSizeKind.Size4M, 0xC040_0000, 0x0080_0000 },
        { PagingMode.Legacy32, PageSizeKind.Size4M, 0x8000_0000, 0x12_0040_0000 }, // PSE-36: above 4 GiB
        { PagingMode.Pae, PageSizeKind.Size4K, 0xB77F_F000, 0x0045_6000 },
        { PagingMode.Pae, PageSizeKind.Size2M, 0xC060_0000, 0x0080_0000 },
        { PagingMode.Pae, PageSizeKind.Size4K, 0x0804_8000, 0x1_2345_6000 }, // PAE reaches above 4 GiB
        { PagingMode.Ia32e, PageSizeKind.Size4K, 0x0000_7FFF_FFFF_E000, 0x0045_6000 },
        { PagingMode.Ia32e, PageSizeKind.Size2M, 0xFFFF_FFFF_8100_0000, 0x0100_0000 },
        { PagingMode.Ia32e, PageSizeKind.Size1G, 0xFFFF_8880_0000_0000, 0x4000_0000 },
        { PagingMode.Ia32eLa57, PageSizeKind.Size4K, 0x00FF_FFFF_FFFF_E000, 0x0045_6000 },
        { PagingMode.Ia32eLa57, PageSizeKind.Size2M, 0xFF11_0000_0020_0000, 0x0080_0000 },
        { PagingMode.Ia32eLa57, PageSizeKind.Size1G, 0xFF80_0000_4000_0000, 0x8000_0000 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Mapped_pages_translate_and_read_back_through_VmiCore(PagingMode mode, PageSizeKind size, ulong va, ulong pa)
    {
        ulong bytes = Amd64.BytesOf(size);
        var builder = new MockGuestBuilder(mode, maxGfn: new Gfn(0xFF_FFFF_FFFF >> 12));
        builder.Map(new Va(va), new Pa(pa), bytes * 2, size);

        // Data at the start, across the page boundary, and at the very end of the range.
        builder.WriteString(new Va(va + 0x10), "first page")
            .WriteString(new Va(va + bytes - 4), "spans two pages")
            .Write(new Va(va + (2 * bytes) - 8), [1, 2, 3, 4, 5, 6, 7, 8]);
        MockGuest guest = builder.Build();
        using var core = new VmiCore(guest);

        Assert.Equal(mode, core.PagingMode);
        Pa root = core.GetTranslationRoot(0);
        Assert.Equal(builder.AddressSpace.Root, root);

        PageWalk walk = core.WalkAddress(new AddressContext(new Va(va + 0x10), root));
        Assert.True(walk.Result.Success, walk.ToString());
        Assert.Equal(size, walk.Result.PageSize);
        Assert.Equal(new Pa(pa + 0x10), walk.Result.Pa);
        Assert.Equal(new Pa(pa + bytes + 0x10), core.TranslateAddress(new AddressContext(new Va(va + bytes + 0x10), root)));

        // Physical placement is exactly where the mapping says.
        byte[] physical = new byte[10];
        guest.ReadPhysical(new Pa(pa + 0x10), physical);
        Assert.Equal("first page"u8.ToArray(), physical);

        Assert.Equal("first page", core.ReadString(AccessContext.Paging(new Va(va + 0x10), root)));
        Assert.Equal("spans two pages", core.ReadString(AccessContext.Paging(new Va(va + bytes - 4), root)));
        Assert.Equal(0x0807060504030201UL, core.ReadU64(AccessContext.Paging(new Va(va + (2 * bytes) - 8), root)));

        // Just past the range is not mapped.
        if (va + (2 * bytes) <= (mode is PagingMode.Legacy32 or PagingMode.Pae ? uint.MaxValue : ulong.MaxValue) && va + (2 * bytes) != 0)
        {
            Va after = Amd64.Canonicalize(new Va(va + (2 * bytes)), mode);
            Assert.False(core.TryTranslateAddress(new AddressContext(after, root)).Success);
        }
    }

    [Theory]
    [InlineData(PagingMode.Legacy32)]
    [InlineData(PagingMode.Pae)]
    [InlineData(PagingMode.Ia32e)]
    [InlineData(PagingMode.Ia32eLa57)]
    public void Registers_match_the_mode(PagingMode mode)
    {
        MockGuest guest = new MockGuestBuilder(mode, vcpuCount: 3).Build();
        for (ushort i = 0; i < 3; i++)
        {
            Registers r = guest.GetRegisters(i);
            Assert.Equal(mode, r.PagingMode);
            Assert.NotEqual(0UL, r.Cr0 & Amd64.Cr0Pg);
            Assert.Equal(mode != PagingMode.Legacy32, (r.Cr4 & Amd64.Cr4Pae) != 0);
            Assert.Equal(mode == PagingMode.Ia32eLa57, (r.Cr4 & Amd64.Cr4La57) != 0);
            Assert.Equal(mode is PagingMode.Ia32e or PagingMode.Ia32eLa57, (r.MsrEfer & (Amd64.EferLme | Amd64.EferLma)) == (Amd64.EferLme | Amd64.EferLma));
            Assert.Equal(mode != PagingMode.Legacy32, (r.MsrEfer & Amd64.EferNxe) != 0);
            Assert.NotEqual(0UL, r.Cr4 & Amd64.Cr4Pse);
            Assert.True(guest.Memory.IsPageTableFrame(Amd64.GfnFromPa(r.TranslationRoot)));
        }
    }

    [Theory]
    [InlineData(PagingMode.Pae)]
    [InlineData(PagingMode.Ia32e)]
    [InlineData(PagingMode.Ia32eLa57)]
    public void Leaf_flags_reach_the_translation(PagingMode mode)
    {
        var b = new MockGuestBuilder(mode);
        b.Map(new Va(0x1000), new Pa(0x20_0000), 0x1000, PageSizeKind.Size4K, PageEntryFlags.None)
            .Map(new Va(0x2000), new Pa(0x20_1000), 0x1000, PageSizeKind.Size4K, PageEntryFlags.Writable | PageEntryFlags.User)
            .Map(new Va(0x3000), new Pa(0x20_2000), 0x1000, PageSizeKind.Size4K, PageEntryFlags.NoExecute | PageEntryFlags.Global | PageEntryFlags.Accessed | PageEntryFlags.Dirty);
        using var core = new VmiCore(b.Build());
        Pa root = core.GetTranslationRoot(0);
        TranslationResult ro = core.WalkAddress(new AddressContext(new Va(0x1000), root)).Result;
        TranslationResult rwu = core.WalkAddress(new AddressContext(new Va(0x2000), root)).Result;
        TranslationResult nx = core.WalkAddress(new AddressContext(new Va(0x3000), root)).Result;
        Assert.False(ro.Writable);
        Assert.False(ro.User);
        Assert.False(ro.NoExecute);
        Assert.True(rwu.Writable);
        Assert.True(rwu.User);
        Assert.True(nx.NoExecute);
        Assert.Equal(PageEntryFlags.Global | PageEntryFlags.Accessed | PageEntryFlags.Dirty, nx.Flags & (PageEntryFlags.Global | PageEntryFlags.Accessed | PageEntryFlags.Dirty));
    }

    [Fact]
    public void Five_level_paging_reaches_beyond_48_bits()
    {
        var b = new MockGuestBuilder(PagingMode.Ia32eLa57);
        b.Map(new Va(0x0001_0000_0000_0000), new Pa(0x30_0000), 0x1000).WriteString(new Va(0x0001_0000_0000_0000), "57-bit");
        using var core = new VmiCore(b.Build());
        PageWalk walk = core.WalkAddress(new AddressContext(new Va(0x0001_0000_0000_0000), core.GetTranslationRoot(0)));
        Assert.Equal(5, walk.Entries.Count);
        Assert.Equal(PagingLevel.Pml5, walk.Entries[0].Level);
        Assert.Equal("57-bit", core.ReadString(AccessContext.Paging(new Va(0x0001_0000_0000_0000), core.GetTranslationRoot(0))));
    }

    [Fact]
    public void Unmap_removes_only_the_named_page()
    {
        var b = new MockGuestBuilder(PagingMode.Ia32e);
        b.Map(new Va(0x40_0000), new Pa(0x50_0000), 0x4000).Unmap(new Va(0x40_2000));
        using var core = new VmiCore(b.Build());
        Pa root = core.GetTranslationRoot(0);
        Assert.True(core.TryTranslateAddress(new AddressContext(new Va(0x40_1000), root)).Success);
        TranslationResult hole = core.TryTranslateAddress(new AddressContext(new Va(0x40_2000), root));
        Assert.Equal(WalkFaultKind.NotPresent, hole.Fault);
        Assert.Equal(PagingLevel.Pt, hole.FaultLevel);
        Assert.True(core.TryTranslateAddress(new AddressContext(new Va(0x40_3000), root)).Success);
    }

    [Fact]
    public void Unmap_of_a_whole_large_page_works_and_of_part_of_one_is_refused()
    {
        var b = new MockGuestBuilder(PagingMode.Ia32e);
        b.Map(new Va(0x20_0000), new Pa(0x20_0000), 0x40_0000, PageSizeKind.Size2M);
        var ex = Assert.Throws<ArgumentException>(() => b.Unmap(new Va(0x20_1000)));
        Assert.Contains("cut", ex.Message, StringComparison.Ordinal);
        Assert.True(b.AddressSpace.Translate(new Va(0x20_1000)).Success);
        b.Unmap(new Va(0x20_0000), 0x20_0000);
        Assert.False(b.AddressSpace.Translate(new Va(0x20_1000)).Success);
        Assert.True(b.AddressSpace.Translate(new Va(0x40_0000)).Success);

        // Unmapping what was never mapped is harmless.
        b.Unmap(new Va(0x7000_0000), 0x1000);
    }

    [Theory]
    [InlineData(PagingMode.Legacy32, PageSizeKind.Size4M)]
    [InlineData(PagingMode.Pae, PageSizeKind.Size2M)]
    [InlineData(PagingMode.Ia32e, PageSizeKind.Size1G)]
    [InlineData(PagingMode.Ia32eLa57, PageSizeKind.Size2M)]
    public void Large_pages_unmap_whole_in_every_mode(PagingMode mode, PageSizeKind size)
    {
        ulong bytes = Amd64.BytesOf(size);
        var b = new MockGuestBuilder(mode);
        b.Map(new Va(bytes), new Pa(bytes * 2), bytes * 2, size);
        Assert.Throws<ArgumentException>(() => b.Unmap(new Va(bytes), bytes / 2));
        b.Unmap(new Va(bytes), bytes);
        TranslationResult gone = b.AddressSpace.Translate(new Va(bytes + 0x123));
        Assert.Equal(WalkFaultKind.NotPresent, gone.Fault);
        Assert.Equal(new Pa((bytes * 3) + 0x123), b.AddressSpace.Translate(new Va((bytes * 2) + 0x123)).Pa);

        // The freed slot can be mapped again, even with small pages.
        b.Map(new Va(bytes), new Pa(0x4000_0000), 0x1000);
        Assert.Equal(new Pa(0x4000_0123), b.AddressSpace.Translate(new Va(bytes + 0x123)).Pa);
    }

    [Fact]
    public void Mapping_over_a_mapping_is_refused_and_leaves_tables_untouched()
    {
        var b = new MockGuestBuilder(PagingMode.Ia32e);
        b.Map(new Va(0x20_0000), new Pa(0x20_0000), 0x20_0000, PageSizeKind.Size2M);
        b.Map(new Va(0x60_0000), new Pa(0x70_0000), 0x1000);
        Assert.Throws<InvalidOperationException>(() => b.Map(new Va(0x20_1000), new Pa(0x90_0000), 0x1000));
        Assert.Throws<InvalidOperationException>(() => b.Map(new Va(0x60_0000), new Pa(0x90_0000), 0x1000));

        // A 2 MiB page over a range that already has a page table is refused too; the first page of the range stays unmapped.
        Assert.Throws<InvalidOperationException>(() => b.Map(new Va(0x40_0000), new Pa(0x100_0000), 0x40_0000, PageSizeKind.Size2M));
        Assert.False(b.AddressSpace.Translate(new Va(0x40_0000)).Success);
        Assert.Equal(new Pa(0x70_0000), b.AddressSpace.Translate(new Va(0x60_0000)).Pa);
    }

    [Theory]
    [InlineData(PagingMode.Legacy32, PageSizeKind.Size2M)]
    [InlineData(PagingMode.Legacy32, PageSizeKind.Size1G)]
    [InlineData(PagingMode.Pae, PageSizeKind.Size4M)]
    [InlineData(PagingMode.Pae, PageSizeKind.Size1G)]
    [InlineData(PagingMode.Ia32e, PageSizeKind.Size4M)]
    public void Page_sizes_the_mode_lacks_are_refused(PagingMode mode, PageSizeKind size)
    {
        var b = new MockGuestBuilder(mode);
        var ex = Assert.Throws<ArgumentException>(() => b.Map(new Va(0), new Pa(0), Amd64.BytesOf(size), size));
        Assert.Contains(mode.ToString(), ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Bad_arguments_get_clear_errors()
    {
        var b = new MockGuestBuilder(PagingMode.Ia32e);
        Assert.Throws<ArgumentException>(() => b.Map(new Va(0x1001), new Pa(0x1000), 0x1000));
        Assert.Throws<ArgumentException>(() => b.Map(new Va(0x20_1000), new Pa(0x20_0000), 0x20_0000, PageSizeKind.Size2M));
        Assert.Throws<ArgumentOutOfRangeException>(() => b.Map(new Va(0x1000), new Pa(0x1000), 0));
        Assert.Throws<NonCanonicalAddressException>(() => b.Map(new Va(0x0000_8000_0000_0000), new Pa(0x1000), 0x1000));
        Assert.Throws<NonCanonicalAddressException>(() => b.Map(new Va(0x0000_7FFF_FFFF_F000), new Pa(0x1000), 0x2000));
        Assert.Throws<ArgumentException>(() => b.Map(new Va(0x1000), new Pa(0x1000), 0x1000, PageSizeKind.Size4K, PageEntryFlags.Present));
        Assert.Throws<ArgumentException>(() => b.Map(new Va(0x1000), new Pa(0x1000), 0x1000, PageSizeKind.Size4K, PageEntryFlags.LargePage));
        Assert.Throws<ArgumentOutOfRangeException>(() => b.Map(new Va(0x1000), new Pa(1UL << 52), 0x1000));
        Assert.Throws<ArgumentException>(() => new MockGuestBuilder(PagingMode.Disabled));

        var legacy = new MockGuestBuilder(PagingMode.Legacy32);
        Assert.Throws<ArgumentException>(() => legacy.Map(new Va(0x1000), new Pa(0x1000), 0x1000, PageSizeKind.Size4K, PageEntryFlags.NoExecute));
        Assert.Throws<ArgumentOutOfRangeException>(() => legacy.Map(new Va(0x1000), new Pa(0x1_0000_0000), 0x1000));
        Assert.Throws<ArgumentOutOfRangeException>(() => legacy.Map(new Va(0xFFFF_F000), new Pa(0x1000), 0x2000));

        // Writing through a mapping that does not exist is a page fault naming the address.
        var fault = Assert.Throws<PageFaultException>(() => b.WriteString(new Va(0x7777_0000), "x"));
        Assert.Equal(new Va(0x7777_0000), fault.Va);
    }

    [Fact]
    public void Data_written_over_a_page_table_is_refused()
    {
        var b = new MockGuestBuilder(PagingMode.Ia32e);
        Pa root = b.AddressSpace.Root;
        b.Map(new Va(0x1000_0000), root, 0x1000); // a (legitimate) mapping of the root table itself
        var ex = Assert.Throws<ArgumentException>(() => b.Write(new Va(0x1000_0000), [1, 2, 3]));
        Assert.Contains("page table", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Address_spaces_share_the_upper_half_only_when_asked()
    {
        var b = new MockGuestBuilder(PagingMode.Ia32e, vcpuCount: 2);
        b.Map(new Va(0xFFFF_8000_0000_0000), new Pa(0x30_0000), 0x1000).WriteString(new Va(0xFFFF_8000_0000_0000), "kernel");
        b.NewAddressSpace(out PageTableBuilder shared).NewAddressSpace(out PageTableBuilder isolated, shareUpperHalf: false);
        shared.Map(new Va(0x1000), new Pa(0x40_0000), 0x1000).WriteString(new Va(0x1000), "user");
        b.WithAddressSpace(1, shared);
        using var core = new VmiCore(b.Build());

        Assert.NotEqual(shared.Root, isolated.Root);
        Assert.Equal(shared.Root, core.GetTranslationRoot(1));
        Assert.Equal("kernel", core.ReadString(AccessContext.Paging(new Va(0xFFFF_8000_0000_0000), shared.Root)));
        Assert.Equal("user", core.ReadString(AccessContext.Paging(new Va(0x1000), shared.Root)));
        Assert.False(core.TryTranslateAddress(new AddressContext(new Va(0xFFFF_8000_0000_0000), isolated.Root)).Success);
        Assert.False(core.TryTranslateAddress(new AddressContext(new Va(0x1000), core.GetTranslationRoot(0))).Success);
    }

    [Theory]
    [InlineData(PagingMode.Legacy32, 0xC000_0000UL)]
    [InlineData(PagingMode.Pae, 0xC000_0000UL)]
    [InlineData(PagingMode.Ia32e, 0xFFFF_8000_0000_0000UL)]
    [InlineData(PagingMode.Ia32eLa57, 0xFF00_0000_0000_0000UL)]
    public void The_upper_half_is_shared_in_every_mode(PagingMode mode, ulong kernelVa)
    {
        var b = new MockGuestBuilder(mode);
        b.Map(new Va(kernelVa), new Pa(0x30_0000), 0x1000).WriteString(new Va(kernelVa), "kernel");
        b.NewAddressSpace(out PageTableBuilder process);
        process.Map(new Va(0x1000), new Pa(0x40_0000), 0x1000).WriteString(new Va(0x1000), "user");
        using var core = new VmiCore(b.Build());
        Assert.Equal("kernel", core.ReadString(AccessContext.Paging(new Va(kernelVa), process.Root)));
        Assert.Equal("user", core.ReadString(AccessContext.Paging(new Va(0x1000), process.Root)));
        Assert.False(core.TryTranslateAddress(new AddressContext(new Va(0x1000), b.AddressSpace.Root)).Success);
    }

    [Theory]
    [InlineData(PagingMode.Legacy32)]
    [InlineData(PagingMode.Pae)]
    public void Thirty_two_bit_modes_keep_their_tables_below_4GiB(PagingMode mode)
    {
        var ex = Assert.Throws<VmiException>(() => new MockGuestBuilder(mode, maxGfn: new Gfn(0xFF_FFFF), tableBase: new Pa(0x1_0000_0000)));
        Assert.Contains("page table", ex.Message, StringComparison.Ordinal);

        // Below 4 GiB the same guest works.
        Assert.True(new MockGuestBuilder(mode, maxGfn: new Gfn(0xFF_FFFF), tableBase: new Pa(0xFFFF_0000)).AddressSpace.Root.Value < 1UL << 32);
    }

    [Fact]
    public void Build_finishes_the_builder()
    {
        var b = new MockGuestBuilder();
        MockGuest guest = b.Build();
        Assert.Same(guest, b.Guest);
        Assert.Throws<InvalidOperationException>(() => b.Map(new Va(0x1000), new Pa(0x1000), 0x1000));
        Assert.Throws<InvalidOperationException>(() => b.Build());

        // The address space is still usable after Build.
        b.AddressSpace.Map(new Va(0x1000), new Pa(0x5000), 0x1000);
        Assert.Equal(new Pa(0x5123), b.AddressSpace.Translate(new Va(0x1123)).Pa);
    }

    /// <summary>Random 4 KiB mappings in IA-32e: each translates through VmiCore to exactly its frame.</summary>
    [Property(MaxTest = 100)]
    public bool Random_mappings_translate_to_their_frames(ulong seed)
    {
        var random = new Random((int)(seed ^ (seed >> 32)));
        var b = new MockGuestBuilder(PagingMode.Ia32e, maxGfn: new Gfn(0xF_FFFF));
        var expected = new Dictionary<ulong, ulong>();
        for (int i = 0; i < 16; i++)
        {
            ulong va = (ulong)random.NextInt64(0, 1L << 35) << 12; // 47-bit user half
            if (random.Next(2) == 1)
            {
                va |= 0xFFFF_8000_0000_0000; // or the kernel half
            }

            ulong pa = (ulong)random.NextInt64(0x200, 0xF_FFFF) << 12;
            if (expected.ContainsKey(va) || b.Guest.Memory.IsPageTableFrame(Amd64.GfnFromPa(new Pa(pa))))
            {
                continue;
            }

            b.Map(new Va(va), new Pa(pa), 0x1000);
            expected[va] = pa;
        }

        using var core = new VmiCore(b.Build());
        Pa root = core.GetTranslationRoot(0);
        foreach ((ulong va, ulong pa) in expected)
        {
            ulong offset = (ulong)random.Next(0, 4096);
            if (core.TranslateAddress(new AddressContext(new Va(va + offset), root)) != new Pa(pa + offset))
            {
                return false;
            }
        }

        return true;
    }
}
