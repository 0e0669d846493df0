using System.Globalization;

namespace Vmi.Core.Tests;

public class AddressTests
{
    [Theory]
    [InlineData("0x1000", 0x1000UL)]
    [InlineData("0X1000", 0x1000UL)]
    [InlineData("0xfffff800`00001000", 0xfffff80000001000UL)]
    [InlineData("0xffff_f800_0000_1000", 0xfffff80000001000UL)]
    [InlineData("0xFFFFFFFFFFFFFFFF", ulong.MaxValue)]
    [InlineData("0x000000000000000000001", 1UL)]
    [InlineData("1000h", 0x1000UL)]
    [InlineData("ffH", 0xFFUL)]
    [InlineData("fffff800`00001000h", 0xfffff80000001000UL)]
    [InlineData("4096", 4096UL)]
    [InlineData("0", 0UL)]
    [InlineData("1_000_000", 1000000UL)]
    [InlineData("18446744073709551615", ulong.MaxValue)]
    [InlineData("  0x10  ", 0x10UL)]
    public void Parses_the_spellings_users_type(string text, ulong expected)
    {
        Assert.True(AddressParser.TryParse(text, out ulong v));
        Assert.Equal(expected, v);
        Assert.Equal(expected, Va.Parse(text, CultureInfo.InvariantCulture).Value);
        Assert.Equal(expected, Pa.Parse(text).Value);
        Assert.Equal(expected, Gfn.Parse(text.AsSpan(), null).Value);
    }

    [Theory]
    [InlineData("")]
    [InlineData("  ")]
    [InlineData("0x")]
    [InlineData("h")]
    [InlineData("ff00")]
    [InlineData("0xg")]
    [InlineData("0x10h")]
    [InlineData("12a")]
    [InlineData("-1")]
    [InlineData("+1")]
    [InlineData("1 000")]
    [InlineData("0x``")]
    [InlineData("__")]
    [InlineData("0x1_0000_0000_0000_0000")]
    [InlineData("0x10000000000000000")]
    [InlineData("18446744073709551616")]
    [InlineData("99999999999999999999999")]
    [InlineData("1.5")]
    [InlineData("0b101")]
    [InlineData("١٢٣")]
    public void Rejects_garbage_and_overflow_with_a_message_that_shows_the_fix(string text)
    {
        Assert.False(AddressParser.TryParse(text, out _));
        Assert.False(Va.TryParse(text, null, out _));
        var e = Assert.Throws<FormatException>(() => Va.Parse(text));
        Assert.Contains("0x", e.Message, StringComparison.Ordinal);
        Assert.Contains("virtual address", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Null_is_an_argument_error_for_Parse_and_false_for_TryParse()
    {
        Assert.Throws<ArgumentNullException>(() => Va.Parse(null!));
        Assert.False(Va.TryParse((string?)null, null, out _));
    }

    [Fact]
    public void Formats_as_0x_hex_by_default_and_honours_format_strings()
    {
        Assert.Equal("0xfffff80000001000", new Va(0xfffff80000001000).ToString());
        Assert.Equal("0x0", new Pa(0).ToString());
        Assert.Equal("0x1234", new Gfn(0x1234).ToString());
        Assert.Equal("0000000000001000", new Pa(0x1000).ToString("x16", CultureInfo.InvariantCulture));
        Assert.Equal("FF", string.Format(CultureInfo.InvariantCulture, "{0:X}", new Gfn(255)));
        Assert.Equal("0x10", $"{new Va(16)}");
        Assert.Equal("3", new VcpuId(3).ToString());
        Assert.Equal("2", new View(2).ToString());
    }

    [Fact]
    public void Format_and_parse_round_trip()
    {
        foreach (ulong v in new[] { 0UL, 1UL, 0xfffUL, 0x7fffffffffffUL, 0xffff800000000000UL, ulong.MaxValue })
        {
            Assert.Equal(new Va(v), Va.Parse(new Va(v).ToString()));
            Assert.Equal(new Pa(v), Pa.Parse(new Pa(v).ToString()));
            Assert.Equal(new Gfn(v), Gfn.Parse(new Gfn(v).ToString()));
        }
    }

    [Fact]
    public void Vcpu_and_view_parse_and_range_check()
    {
        Assert.Equal(new VcpuId(3), VcpuId.Parse("3"));
        Assert.Equal(new VcpuId(16), VcpuId.Parse("0x10"));
        Assert.Equal(new View(2), View.Parse("2", null));
        Assert.False(VcpuId.TryParse("65536", null, out _));
        Assert.False(View.TryParse("x", null, out _));
        var e = Assert.Throws<FormatException>(() => VcpuId.Parse("70000"));
        Assert.Contains("vCPU", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Arithmetic_and_ordering()
    {
        Assert.Equal(new Va(0x1010), new Va(0x1000) + 0x10);
        Assert.Equal(0x10UL, new Va(0x1010) - new Va(0x1000));
        Assert.True(new Pa(1) < new Pa(2));
        Assert.True(new Gfn(3) >= new Gfn(3));
        Assert.Equal(new Gfn(0x12345), Amd64.GfnFromPa(new Pa(0x12345678)));
        Assert.Equal(0x678u, Amd64.PaOffset(new Pa(0x12345678)));
        Assert.Equal(new Pa(0x12345000), Amd64.PaFromGfn(new Gfn(0x12345)));
    }

    [Fact]
    public void Contexts_describe_themselves_and_a_missing_root_is_a_clear_error()
    {
        AccessContext direct = AccessContext.Direct(new Pa(0x1000));
        Assert.Equal(TranslationKind.Direct, direct.Mechanism.Kind);
        Assert.Equal(TranslationMechanism.Direct, default(AccessContext).Mechanism);
        AccessContext paging = new AddressContext(new Va(0x2000), new Pa(0x5000));
        Assert.Equal(new Pa(0x5000), paging.Mechanism.Root);
        Assert.Equal(0x2010UL, (paging + 0x10).Address);
        Assert.Contains("root=none", TranslationMechanism.Paging().ToString(), StringComparison.Ordinal);

        using var core = new VmiCore(new SparseDriver());
        var noRoot = new AccessContext(0x2000, TranslationMechanism.Paging());
        var e = Assert.Throws<RootNotPresentException>(() => core.ReadU64(noRoot));
        Assert.Contains("CR3", e.Message, StringComparison.Ordinal);
        Assert.Throws<RootNotPresentException>(() => core.TranslateAccessContext(noRoot));
        Assert.Throws<RootNotPresentException>(() => core.Read(noRoot, new byte[4], ReadMode.ZeroFill));
        Assert.Throws<RootNotPresentException>(() => core.ReadString(noRoot));
    }

    [Fact]
    public void Paging_modes_come_from_cr0_cr4_and_efer()
    {
        Assert.Equal(PagingMode.Disabled, Amd64.GetPagingMode(0, Amd64.Cr4Pae, Amd64.EferLme));
        Assert.Equal(PagingMode.Legacy32, Amd64.GetPagingMode(Amd64.Cr0Pg, 0, 0));
        Assert.Equal(PagingMode.Pae, Amd64.GetPagingMode(Amd64.Cr0Pg, Amd64.Cr4Pae, 0));
        Assert.Equal(PagingMode.Ia32e, Amd64.GetPagingMode(Amd64.Cr0Pg, Amd64.Cr4Pae, Amd64.EferLme | Amd64.EferLma));
        Assert.Equal(PagingMode.Ia32eLa57, Amd64.GetPagingMode(Amd64.Cr0Pg, Amd64.Cr4Pae | Amd64.Cr4La57, Amd64.EferLme | Amd64.EferLma));
        Assert.Equal(new Pa(0x1234000), Amd64.RootFromCr3(0x8000_0000_0123_4fffUL, PagingMode.Ia32e)); // PCID and no-flush bit masked
        Assert.Equal(new Pa(0x1234fe0), Amd64.RootFromCr3(0x1234fff, PagingMode.Pae));
        Assert.Equal(new Pa(0x1234000), Amd64.RootFromCr3(0x1234fff, PagingMode.Legacy32));
        Assert.True(Amd64.IsCanonical(new Va(0xffff800000000000), PagingMode.Ia32e));
        Assert.False(Amd64.IsCanonical(new Va(0x0000800000000000), PagingMode.Ia32e));
        Assert.True(Amd64.IsCanonical(new Va(0x0000800000000000), PagingMode.Ia32eLa57));
        Assert.Equal(new Va(0xffff800000000000), Amd64.Canonicalize(new Va(0x0000800000000000), PagingMode.Ia32e));
    }
}
