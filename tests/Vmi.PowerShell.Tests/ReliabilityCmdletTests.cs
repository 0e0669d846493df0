using System.Management.Automation;

namespace Vmi.PowerShell.Tests;

/// <summary>Issue 10: silent wrong answers and raw .NET texts at the cmdlet surface, through the real PowerShell engine.</summary>
public sealed class ReliabilityCmdletTests : MockSessionTest
{
    private const string Hello = "0xffffffff82000100"; // "Hello from the V..." in the demo guest

    [Theory]
    [InlineData("([byte]0x48)", 0)] // 'H': once searched for 0x72 ("72" read as hex), found at 'r' (offset 7)
    [InlineData("0x56", 15)] // 'V'
    [InlineData("$b", 15)] // $b = 0x56, an int
    [InlineData("@(0x6c, 0x6c)", 2)] // "ll"
    [InlineData("'48 65'", 0)] // text stays hex text
    public void A_number_as_a_pattern_is_a_byte_value(string pattern, int offset)
    {
        VmiMemoryMatch m = Host.Get<VmiMemoryMatch>($"$b = 0x56; Find-VmiMemory -Pattern {pattern} -Address {Hello} -Length 16 -First 1");
        Assert.Equal(0xffffffff82000100UL + (ulong)offset, m.Address);
    }

    [Theory]
    [InlineData("300")]
    [InlineData("(-1)")]
    [InlineData("@(1, 256)")]
    public void A_number_that_is_not_a_byte_is_refused_clearly(string pattern)
    {
        ErrorRecord e = Host.RunFailing($"Find-VmiMemory -Pattern {pattern} -Address {Hello} -Length 16");
        Assert.Contains("from 0 to 255", e.Exception.Message, StringComparison.Ordinal);
    }
}

/// <summary>Issue 10: typed addresses keep their meaning or are refused; frame ranges never wrap.</summary>
public sealed class TypedAddressTests : MockSessionTest
{
    [Fact]
    public void A_gfn_is_never_taken_as_a_byte_address()
    {
        // once: frame 0x1200 was read at physical address 0x1200
        ErrorRecord e = Host.RunFailing("Read-VmiMemory ([Vmi.Core.Gfn]0x1200) -Physical -Length 8");
        Assert.Contains("is a frame number, not a byte address", e.Exception.Message, StringComparison.Ordinal);
        Assert.Contains("0x1200000", e.Exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_pa_given_for_a_frame_means_the_frame_that_holds_it_and_a_va_is_refused()
    {
        VmiPageAccess a = Host.Get<VmiPageAccess>("Get-VmiMemoryAccess ([Vmi.Core.Pa]0x1234567)");
        Assert.Equal(0x1234UL, a.Gfn);
        ErrorRecord e = Host.RunFailing("Get-VmiMemoryAccess ([Vmi.Core.Va]::new(4096))");
        Assert.Contains("has no frame until it is translated", e.Exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_frame_range_past_the_last_frame_is_one_error_and_never_wraps()
    {
        var errors = Host.Run("Get-VmiMemoryAccess ([ulong]::MaxValue) -Count 2 -ErrorAction SilentlyContinue -ErrorVariable ev; $ev");
        ErrorRecord e = Assert.Single(errors.Select(o => o.BaseObject).OfType<ErrorRecord>());
        Assert.Contains("run past the guest's last frame", e.Exception.Message, StringComparison.Ordinal);
        ulong max = Session.MaxGfn;
        var many = Host.Run($"Get-VmiMemoryAccess {Hex(max - 1)} -Count 512 -ErrorAction SilentlyContinue -ErrorVariable ev; $ev");
        Assert.Single(many.Select(o => o.BaseObject).OfType<ErrorRecord>()); // once 512 errors, one per frame
        Assert.Empty(many.Select(o => o.BaseObject).OfType<VmiPageAccess>());
    }
}
