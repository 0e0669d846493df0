using System.Runtime.InteropServices;

namespace Vmi.Core.Tests;

public class ReadTests
{
    private const ulong Base = 0x7fff_0000_0000;

    /// <summary>A virtual range of <paramref name="pages"/> pages over scattered frames, filled with a known pattern; the page after it is unmapped.</summary>
    private static (SparseDriver Mem, PageTableBuilder Pt, VmiCore Core) Guest(int pages, PagingMode mode = PagingMode.Ia32e, ulong va = Base)
    {
        var mem = new SparseDriver();
        var pt = new PageTableBuilder(mem, mode);
        for (int i = 0; i < pages; i++)
        {
            ulong frame = 0x5000 + ((ulong)i * 7 % 13) + ((ulong)i * 16); // not contiguous
            pt.Map(va + ((ulong)i * 4096), frame << 12);
            byte[] f = mem.Frame(frame);
            for (int j = 0; j < 4096; j++)
            {
                f[j] = Pattern(va + ((ulong)i * 4096) + (ulong)j);
            }
        }

        return (mem, pt, new VmiCore(mem) { PagingMode = mode });
    }

    private static byte Pattern(ulong va) => (byte)((va * 31) ^ (va >> 12));

    [Theory]
    [InlineData(0, 1)]
    [InlineData(0, 4096)]
    [InlineData(1, 4096)]
    [InlineData(4095, 2)]
    [InlineData(3, 5 * 4096)]
    [InlineData(4093, (7 * 4096) + 3)]
    [InlineData(0, 8 * 4096)]
    public void Reads_span_any_number_of_pages(int start, int length)
    {
        var (_, pt, core) = Guest(8);
        using (core)
        {
            byte[] buf = core.ReadBytes(AccessContext.Paging(new Va(Base + (ulong)start), pt.RootPa), length);
            for (int i = 0; i < length; i++)
            {
                Assert.Equal(Pattern(Base + (ulong)start + (ulong)i), buf[i]);
            }
        }
    }

    [Fact]
    public void Integers_are_little_endian_and_may_cross_pages()
    {
        var (_, pt, core) = Guest(2);
        using (core)
        {
            for (ulong off = 4088; off < 4097; off++)
            {
                var ctx = AccessContext.Paging(new Va(Base + off), pt.RootPa);
                ulong expected = 0;
                for (int i = 7; i >= 0; i--)
                {
                    expected = (expected << 8) | Pattern(Base + off + (ulong)i);
                }

                Assert.Equal(expected, core.ReadU64(ctx));
                Assert.Equal((uint)expected, core.ReadU32(ctx));
                Assert.Equal((ushort)expected, core.ReadU16(ctx));
                Assert.Equal((byte)expected, core.ReadU8(ctx));
                Assert.Equal(expected, core.ReadUInt(ctx, 8));
                Assert.Equal((uint)expected, core.ReadUInt(ctx, 4));
                Assert.Equal((ushort)expected, core.ReadUInt(ctx, 2));
                Assert.Equal((byte)expected, core.ReadUInt(ctx, 1));
                Assert.Equal((uint)expected, core.ReadAddress(ctx, 4));
                Assert.Equal(expected, core.ReadAddress(ctx, 8));
                Assert.Equal(new Va(expected), core.ReadVa(ctx, 8));
                Assert.Equal(new Va(expected), core.ReadVa64(ctx));
                Assert.Equal(new Va((uint)expected), core.ReadVa32(ctx));
            }
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(16)]
    [InlineData(-4)]
    public void An_address_width_other_than_4_or_8_is_a_clear_error(int width)
    {
        var (_, pt, core) = Guest(1);
        using (core)
        {
            var ctx = AccessContext.Paging(new Va(Base), pt.RootPa);
            var e = Assert.Throws<InvalidAddressWidthException>(() => core.ReadAddress(ctx, width));
            Assert.Equal(width, e.Width);
            Assert.Contains("4 or 8", e.Message, StringComparison.Ordinal);
            Assert.Throws<InvalidAddressWidthException>(() => core.ReadVa(ctx, width));
        }
    }

    [Fact]
    public void ReadUInt_takes_1_2_4_or_8()
    {
        var (_, pt, core) = Guest(1);
        using (core)
        {
            Assert.Throws<ArgumentOutOfRangeException>(() => core.ReadUInt(AccessContext.Paging(new Va(Base), pt.RootPa), 3));
        }
    }

    [StructLayout(LayoutKind.Sequential, Pack = 1)]
    private struct ListEntry
    {
        public ulong Flink;
        public ulong Blink;
        public uint Tag;
        public ushort Size;
        public byte Kind;
    }

    [Fact]
    public void Structs_round_trip_across_a_page_boundary()
    {
        var (mem, pt, core) = Guest(2);
        using (core)
        {
            var ctx = AccessContext.Paging(new Va(Base + 4090), pt.RootPa);
            var value = new ListEntry { Flink = 0xffff_8000_1234_5678, Blink = 0xffff_8000_8765_4321, Tag = 0x656c6946, Size = 0x1234, Kind = 7 };
            core.WriteStruct(ctx, value);
            Assert.Equal(value, core.ReadStruct<ListEntry>(ctx));
            Assert.Equal(0xffff_8000_1234_5678UL, core.ReadU64(ctx));
            Assert.Equal((byte)7, core.ReadU8(ctx + 22));
            Assert.Equal(2, mem.WriteCalls); // one driver write per page
        }
    }

    [Fact]
    public void Writes_of_every_width_land_where_reads_find_them()
    {
        var (_, pt, core) = Guest(2);
        using (core)
        {
            var ctx = AccessContext.Paging(new Va(Base + 4095), pt.RootPa);
            core.WriteU8(ctx, 0xAB);
            Assert.Equal(0xAB, core.ReadU8(ctx));
            core.WriteU16(ctx, 0xBEEF);
            Assert.Equal(0xBEEF, core.ReadU16(ctx));
            core.WriteU32(ctx, 0xDEADBEEF);
            Assert.Equal(0xDEADBEEFu, core.ReadU32(ctx));
            core.WriteU64(ctx, 0x0123456789ABCDEF);
            Assert.Equal(0x0123456789ABCDEFUL, core.ReadU64(ctx));
        }
    }

    [Fact]
    public void A_strict_read_throws_at_the_first_unreadable_page_naming_it()
    {
        var (_, pt, core) = Guest(3);
        using (core)
        {
            var ctx = AccessContext.Paging(new Va(Base + 100), pt.RootPa);
            var e = Assert.Throws<PageFaultException>(() => core.ReadBytes(ctx, 4 * 4096));
            Assert.Equal(new Va(Base + (3 * 4096)), e.Va);
            Assert.Equal(pt.RootPa, e.Root);
            Assert.Equal(PagingLevel.Pt, e.Level);
            Assert.Equal(WalkFaultKind.NotPresent, e.Kind);
            Assert.Contains("0x7fff00003000", e.Message, StringComparison.Ordinal);
            Assert.Contains(pt.RootPa.ToString(), e.Message, StringComparison.Ordinal);
            Assert.Contains("Pt", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void UntilFault_returns_the_bytes_before_the_fault_and_where_it_was()
    {
        var (_, pt, core) = Guest(3);
        using (core)
        {
            byte[] buf = new byte[4 * 4096];
            ReadResult r = core.Read(AccessContext.Paging(new Va(Base + 100), pt.RootPa), buf, ReadMode.UntilFault);
            Assert.Equal((3 * 4096) - 100, r.BytesRead);
            Assert.Equal(Base + (3 * 4096), r.FaultAddress);
            Assert.False(r.Complete);
            Assert.Equal(Pattern(Base + 100), buf[0]);
            Assert.Equal(Pattern(Base + (3 * 4096) - 1), buf[r.BytesRead - 1]);

            ReadResult whole = core.Read(AccessContext.Paging(new Va(Base), pt.RootPa), new byte[3 * 4096], ReadMode.UntilFault);
            Assert.True(whole.Complete);
            Assert.Equal(3 * 4096, whole.BytesRead);

            ReadResult none = core.Read(AccessContext.Paging(new Va(Base + (5 * 4096) + 1), pt.RootPa), buf, ReadMode.UntilFault);
            Assert.Equal(0, none.BytesRead);
            Assert.Equal(Base + (5 * 4096) + 1, none.FaultAddress);
        }
    }

    [Fact]
    public void ZeroFill_zeroes_unreadable_pages_and_names_them()
    {
        var (mem, pt, core) = Guest(6);
        using (core)
        {
            pt.SetEntry(Base + (1 * 4096), 1, 0);                  // not present
            mem.RemoveFrame(pt.Entry(Base + (3 * 4096), 1) >> 12);  // present, but no backing
            core.FlushV2PCache();
            core.FlushGfnCache();
            byte[] buf = Enumerable.Repeat((byte)0xCC, (5 * 4096) + 8).ToArray();
            ReadResult r = core.Read(AccessContext.Paging(new Va(Base + 8), pt.RootPa), buf, ReadMode.ZeroFill);
            Assert.Equal(buf.Length, r.BytesRead);
            Assert.Equal([Base + 4096, Base + (3 * 4096)], r.UnreadablePages);
            Assert.Null(r.FaultAddress);
            Assert.False(r.Complete);
            for (int i = 0; i < buf.Length; i++)
            {
                ulong va = Base + 8 + (ulong)i;
                ulong page = (va - Base) >> 12;
                Assert.Equal(page is 1 or 3 ? (byte)0 : Pattern(va), buf[i]);
            }

            // Strict names the same first page; a GFN without backing is its own error.
            Assert.Throws<PageFaultException>(() => core.ReadBytes(AccessContext.Paging(new Va(Base + 4096), pt.RootPa), 8));
            var g = Assert.Throws<GfnNotPresentException>(() => core.ReadBytes(AccessContext.Paging(new Va(Base + (3 * 4096)), pt.RootPa), 8));
            Assert.Contains("0x7fff00003000", g.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Physical_reads_of_missing_or_out_of_range_frames_are_errors()
    {
        var mem = new SparseDriver(maxGfn: 0xFF);
        mem.Frame(0x10);
        using var core = new VmiCore(mem);
        Assert.Equal(0, core.ReadU8(AccessContext.Direct(new Pa(0x10_000))));
        var e = Assert.Throws<GfnNotPresentException>(() => core.ReadU8(AccessContext.Direct(new Pa(0x11_000))));
        Assert.Equal(new Gfn(0x11), e.Gfn);
        Assert.Throws<GfnNotPresentException>(() => core.ReadU8(AccessContext.Direct(new Pa(0x1000_000))));
        Assert.Throws<GfnNotPresentException>(() => core.WriteU8(AccessContext.Direct(new Pa(0x1000_000)), 1));
        Assert.False(core.TryReadPage(new Gfn(0x11), new byte[4096]));
        Assert.True(core.TryReadPage(new Gfn(0x10), new byte[4096]));
        Assert.Throws<ArgumentException>(() => core.TryReadPage(new Gfn(0x10), new byte[100]));
    }

    [Fact]
    public void A_read_that_would_wrap_the_address_space_is_refused()
    {
        using var core = new VmiCore(new SparseDriver());
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => core.Read(AccessContext.Direct(new Pa(ulong.MaxValue - 7)), new byte[16]));
        Assert.Contains("end of the address space", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => core.ReadBytes(AccessContext.Direct(new Pa(0)), -1));
    }

    [Fact]
    public void Non_canonical_addresses_are_their_own_error_and_suggest_the_canonical_form()
    {
        var (_, pt, core) = Guest(1);
        using (core)
        {
            var e = Assert.Throws<NonCanonicalAddressException>(() => core.ReadU64(AccessContext.Paging(new Va(0x0000_8000_0000_0000), pt.RootPa)));
            Assert.Equal(new Va(0x0000_8000_0000_0000), e.Va);
            Assert.Contains("0xffff800000000000", e.Message, StringComparison.Ordinal);
            Assert.Contains("bit 47", e.Message, StringComparison.Ordinal);
        }

        var (_, pt32, core32) = Guest(1, PagingMode.Pae, 0x1000_0000);
        using (core32)
        {
            var e = Assert.Throws<NonCanonicalAddressException>(() => core32.ReadU8(AccessContext.Paging(new Va(0x1_0000_0000), pt32.RootPa)));
            Assert.Contains("32-bit", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Scans_get_results_not_exceptions()
    {
        var (_, pt, core) = Guest(2);
        using (core)
        {
            int present = 0;
            for (ulong va = Base - (16 * 4096); va < Base + (16 * 4096); va += 4096)
            {
                if (core.TryTranslateAddress(new AddressContext(new Va(va), pt.RootPa)).Success)
                {
                    present++;
                }
            }

            Assert.Equal(2, present);
            Assert.Equal(WalkFaultKind.NonCanonical, core.TryTranslateAddress(new AddressContext(new Va(0x1234_0000_0000_0000), pt.RootPa)).Fault);
        }
    }

    [Theory]
    [InlineData(PagingMode.Legacy32)]
    [InlineData(PagingMode.Pae)]
    [InlineData(PagingMode.Ia32e)]
    [InlineData(PagingMode.Ia32eLa57)]
    public void Reads_work_in_every_paging_mode(PagingMode mode)
    {
        ulong va = mode is PagingMode.Legacy32 or PagingMode.Pae ? 0xC000_0000UL : 0xffff_f800_0000_0000UL;
        var (_, pt, core) = Guest(3, mode, va);
        using (core)
        {
            byte[] buf = core.ReadBytes(AccessContext.Paging(new Va(va + 10), pt.RootPa), 3 * 4096 - 10);
            Assert.Equal(Pattern(va + 10), buf[0]);
            Assert.Equal(Pattern(va + (3 * 4096) - 1), buf[^1]);
        }
    }

    [Fact]
    public void The_detailed_walk_lists_every_level()
    {
        var (_, pt, core) = Guest(1);
        using (core)
        {
            PageWalk w = core.WalkAddress(new AddressContext(new Va(Base + 0x123), pt.RootPa));
            Assert.Equal([PagingLevel.Pml4, PagingLevel.Pdpt, PagingLevel.Pd, PagingLevel.Pt], w.Entries.Select(e => e.Level));
            Assert.Equal(pt.RootPa, w.Entries[0].TableAddress);
            Assert.Equal(pt.EntryAddress(Base, 1), w.Entries[3].EntryAddress.Value);
            Assert.True(w.Entries.All(e => e.IsPresent));
            Assert.True(w.Result.Success);
            Assert.Equal(core.TranslateAddress(new AddressContext(new Va(Base + 0x123), pt.RootPa)), w.Result.Pa);
            Assert.DoesNotContain(PageEntryFlags.LargePage, new[] { w.Entries[3].Flags & PageEntryFlags.LargePage }.Where(f => f != 0));
        }
    }
}
