namespace Vmi.Core.Tests;

public class SmokeTests
{
    [Fact]
    public void Maps_and_reads_a_virtual_page()
    {
        var mem = new SparseDriver();
        var pt = new PageTableBuilder(mem, PagingMode.Ia32e).Map(0xffff_8000_0000_1000, 0x5000);
        mem.PokeU64(0x5008, 0x1122334455667788);
        using var core = new VmiCore(mem);
        Assert.Equal(0x1122334455667788UL, core.ReadU64(AccessContext.Paging(new Va(0xffff_8000_0000_1008), pt.RootPa)));
    }
}
