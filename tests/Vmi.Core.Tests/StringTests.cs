using System.Text;

namespace Vmi.Core.Tests;

public class StringTests
{
    private const ulong Base = 0x1_0000_0000;

    /// <summary><paramref name="pages"/> mapped pages from <see cref="Base"/>; the page after them is unmapped.</summary>
    private static (SparseDriver Mem, PageTableBuilder Pt, VmiCore Core) Guest(int pages = 2)
    {
        var mem = new SparseDriver();
        var pt = new PageTableBuilder(mem, PagingMode.Ia32e).MapRange(Base, (ulong)pages * 4096, 0x3000);
        return (mem, pt, new VmiCore(mem) { PagingMode = PagingMode.Ia32e });
    }

    private static void Put(VmiCore core, AccessContext ctx, byte[] bytes) => core.Write(ctx, bytes);

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(4090)]
    [InlineData(4095)]
    [InlineData(4096)]
    public void Utf8_strings_read_to_the_nul_across_pages(int offset)
    {
        var (_, pt, core) = Guest();
        using (core)
        {
            var ctx = AccessContext.Paging(new Va(Base + (ulong)offset), pt.RootPa);
            Put(core, ctx, [.. Encoding.UTF8.GetBytes("ntoskrnl.exe – ü"), 0, (byte)'X']);
            Assert.Equal("ntoskrnl.exe – ü", core.ReadString(ctx, null, out bool truncated));
            Assert.False(truncated);
        }
    }

    [Fact]
    public void A_string_that_ends_before_an_unmapped_page_does_not_touch_it()
    {
        var (_, pt, core) = Guest(1);
        using (core)
        {
            var ctx = AccessContext.Paging(new Va(Base + 4090), pt.RootPa);
            Put(core, ctx, [.. "abcde"u8, 0]);
            Assert.Equal("abcde", core.ReadString(ctx));
        }
    }

    [Fact]
    public void The_limit_stops_the_read_before_an_unmapped_page()
    {
        var (_, pt, core) = Guest(1);
        using (core)
        {
            var ctx = AccessContext.Paging(new Va(Base + 4090), pt.RootPa);
            Put(core, ctx, "ABCDEF"u8.ToArray()); // no NUL before the page ends
            Assert.Equal("ABCDEF", core.ReadString(ctx, 6, out bool t));
            Assert.True(t);
            Assert.Equal("ABC", core.ReadString(ctx, 3, out t));
            Assert.True(t);
            Assert.Equal(string.Empty, core.ReadString(ctx, 0, out _));
            Assert.Throws<PageFaultException>(() => core.ReadString(ctx, 7)); // one byte more reaches the hole
        }
    }

    [Fact]
    public void The_session_limit_applies_when_the_call_gives_none()
    {
        var (_, pt, core) = Guest();
        using (core)
        {
            var ctx = AccessContext.Paging(new Va(Base + 4093), pt.RootPa);
            Put(core, ctx, [.. "0123456789abcdef"u8, 0]);
            core.StringLimit = 10;
            Assert.Equal("0123456789", core.ReadString(ctx, null, out bool t));
            Assert.True(t);
            Assert.Equal("0123456789abcdef", core.ReadString(ctx, 100));
            Assert.Throws<ArgumentOutOfRangeException>(() => core.StringLimit = 0);
            Assert.Throws<ArgumentOutOfRangeException>(() => core.ReadString(ctx, -1));
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(4093)]
    [InlineData(4094)]
    [InlineData(4095)]
    public void Utf16_strings_read_at_any_alignment_across_pages(int offset)
    {
        var (_, pt, core) = Guest();
        using (core)
        {
            var ctx = AccessContext.Paging(new Va(Base + (ulong)offset), pt.RootPa);
            Put(core, ctx, [.. Encoding.Unicode.GetBytes(@"\Device\HarddiskVolume3\Windows"), 0, 0, 0x41, 0]);
            Assert.Equal(@"\Device\HarddiskVolume3\Windows", core.ReadWString(ctx, null, out bool t));
            Assert.False(t);
        }
    }

    [Fact]
    public void The_utf16_terminator_is_aligned_to_the_start_of_the_string()
    {
        var (_, pt, core) = Guest();
        using (core)
        {
            // Units 0x0041, 0x4100, 0x0000: the zero bytes at 1..2 straddle two units and end nothing.
            var ctx = AccessContext.Paging(new Va(Base + 4095), pt.RootPa);
            Put(core, ctx, [0x41, 0x00, 0x00, 0x41, 0x00, 0x00]);
            Assert.Equal("A\u4100", core.ReadWString(ctx));
        }
    }

    [Fact]
    public void A_utf16_read_cut_by_an_odd_limit_keeps_whole_units()
    {
        var (_, pt, core) = Guest();
        using (core)
        {
            var ctx = AccessContext.Paging(new Va(Base + 1), pt.RootPa);
            Put(core, ctx, [.. Encoding.Unicode.GetBytes("abcdef"), 0, 0]);
            Assert.Equal("ab", core.ReadWString(ctx, 5, out bool t));
            Assert.True(t);
            Assert.Equal("abcdef", core.ReadWString(ctx, 14, out t));
            Assert.False(t);
            Assert.Equal("abcdef", core.ReadWString(ctx, 12, out t));
            Assert.True(t); // the limit came before the terminator
        }
    }

    [Fact]
    public void A_string_running_into_a_hole_is_a_page_fault()
    {
        var (_, pt, core) = Guest(1);
        using (core)
        {
            var ctx = AccessContext.Paging(new Va(Base + 4094), pt.RootPa);
            Put(core, ctx, "ab"u8.ToArray());
            var e = Assert.Throws<PageFaultException>(() => core.ReadString(ctx));
            Assert.Equal(new Va(Base + 4096), e.Va);
        }
    }

    [Fact]
    public void A_string_in_the_last_page_of_the_address_space_reads_with_the_default_limit()
    {
        var mem = new SparseDriver();
        var pt = new PageTableBuilder(mem, PagingMode.Ia32e).MapRange(0xffff_ffff_ffff_f000, 4096, 0x3000);
        using var core = new VmiCore(mem) { PagingMode = PagingMode.Ia32e };
        var ctx = AccessContext.Paging(new Va(0xffff_ffff_ffff_ff00), pt.RootPa);
        core.Write(ctx, [.. "top"u8, 0]);
        Assert.Equal("top", core.ReadString(ctx));
        core.Write(AccessContext.Paging(new Va(0xffff_ffff_ffff_fffe), pt.RootPa), "zz"u8);
        Assert.Equal("zz", core.ReadString(AccessContext.Paging(new Va(0xffff_ffff_ffff_fffe), pt.RootPa), null, out bool t));
        Assert.True(t); // the address space ended before a NUL
    }

    [Fact]
    public void A_huge_limit_costs_nothing_for_a_short_string()
    {
        var (_, pt, core) = Guest();
        using (core)
        {
            var ctx = AccessContext.Paging(new Va(Base + 5), pt.RootPa);
            Put(core, ctx, [.. "short"u8, 0]);
            long before = GC.GetAllocatedBytesForCurrentThread();
            Assert.Equal("short", core.ReadString(ctx, int.MaxValue));
            Assert.Equal(3, core.ReadWString(ctx, int.MaxValue).Length); // "sh" "or" "t\0"... read as UTF-16 up to the aligned NUL pair
            Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20, "a short string must not allocate for its limit");
        }
    }

    [Fact]
    public void Long_strings_across_many_pages()
    {
        var (_, pt, core) = Guest(5);
        using (core)
        {
            string s = string.Concat(Enumerable.Range(0, 1500).Select(i => $"{i:x4}|"));
            var ctx = AccessContext.Paging(new Va(Base + 3), pt.RootPa);
            Put(core, ctx, [.. Encoding.UTF8.GetBytes(s), 0]);
            Assert.Equal(s, core.ReadString(ctx));
            Assert.Equal(s[..4097], core.ReadString(ctx, 4097));
        }
    }
}
