using Vmi.Core;

namespace Vmi.Qemu.Tests;

public sealed class LayoutTests
{
    // The shape of QEMU 7.2's "info mtree -f" for a pc machine with 6 GiB (RAM split at 3 GiB, the rest above 4 GiB).
    private const string Mtree = """
        FlatView #0
         AS "memory", root: system
         AS "cpu-memory-0", root: system
         Root memory region: system
          0000000000000000-000000000009ffff (prio 0, ram): ram
          00000000000a0000-00000000000bffff (prio 1, i/o): vga-lowmem
          00000000000c0000-00000000000cafff (prio 0, rom): ram @00000000000c0000
          0000000000100000-00000000bfffffff (prio 0, ram): ram @0000000000100000
          00000000fd000000-00000000fdffffff (prio 1, ram): vga.vram
          00000000fffc0000-00000000ffffffff (prio 0, rom): pc.bios
          0000000100000000-000000017fffffff (prio 0, ram): ram @00000000c0000000

        FlatView #1
         AS "cpu-smm-0", root: memory
         Root memory region: memory
          0000000000000000-00000000000bffff (prio 0, ram): ram
        """;

    [Fact]
    public void Mtree_gives_the_RAM_ranges_of_the_backend_with_offsets_and_holes()
    {
        IReadOnlyList<RamRange> r = QemuMemoryLayout.Parse(Mtree, new HashSet<string> { "ram" });
        Assert.Equal(
            [
                new RamRange(0, 0x9ffff, "ram", 0),
                new RamRange(0xc0000, 0xcafff, "ram", 0xc0000),
                new RamRange(0x100000, 0xbfffffff, "ram", 0x100000),
                new RamRange(0x100000000, 0x17fffffff, "ram", 0xc0000000),
            ],
            r);
    }

    [Fact]
    public void Target_description_numbers_registers_and_their_g_offsets_across_includes()
    {
        var files = new Dictionary<string, string>
        {
            // QEMU 7.2's own target.xml, byte for byte: an undeclared "xi:" prefix and a DOCTYPE.
            ["target.xml"] = "<?xml version=\"1.0\"?><!DOCTYPE target SYSTEM \"gdb-target.dtd\"><target><architecture>i386:x86-64</architecture><xi:include href=\"core.xml\"/></target>",
            ["core.xml"] = "<?xml version=\"1.0\"?><!DOCTYPE target SYSTEM \"gdb-target.dtd\"><feature name=\"x\"><reg name=\"rax\" bitsize=\"64\" regnum=\"0\"/><reg name=\"rip\" bitsize=\"64\"/><reg name=\"eflags\" bitsize=\"32\"/><reg name=\"cs\" bitsize=\"32\"/><reg name=\"st0\" bitsize=\"80\"/><reg name=\"cr0\" bitsize=\"64\" regnum=\"27\"/></feature>",
        };
        GdbRegisterLayout l = GdbRegisterLayout.Load(a => files[a]);
        Assert.Equal("i386:x86-64", l.Architecture);
        Assert.Equal(new GdbRegister("eflags", 2, 32, 16), l.Get("eflags"));
        Assert.Equal(new GdbRegister("st0", 4, 80, 24), l.Get("st0"));
        Assert.Equal(new GdbRegister("cr0", 27, 64, 34), l.Get("cr0"));
        Assert.Equal(0x1122334455667788UL, GdbRegisterLayout.ValueFrom("8877665544332211", l.Get("rax")));
        Assert.Null(GdbRegisterLayout.ValueFrom("8877665544332211", l.Get("rip"))); // past the end of 'g': ask with 'p'
        Assert.Contains("no 'cr8'", Assert.Throws<VmiDriverException>(() => l.Get("cr8")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Hmp_info_registers_segments_tables_and_values()
    {
        const string text = """
            RIP=ffffffffa7f4afa5 RFL=00000216 [----AP-] CPL=0 II=0 A20=1 SMM=0 HLT=0
            CS =0010 0000000000000000 ffffffff 00af9b00 DPL=0 CS64 [-RA]
            TR =0040 fffffe0000003000 00004087 00008b00 DPL=0 TSS64-busy
            GDT=     fffffe0000001000 0000007f
            IDT=     fffffe0000000000 00000fff
            CR0=80050033 CR2=00007f7a1e3c1000 CR3=0000000004a9c000 CR4=000006f0
            DR6=00000000ffff0ff0 DR7=0000000000000400
            EFER=0000000000000d01
            """;
        var seg = HmpRegisters.Segments(text);
        Assert.Equal(new Vmi.Core.Arch.Amd64.SegmentRegister(0x10, 0, 0xffffffff, 0xa9b), seg["CS"]);
        Assert.Equal(0xfffffe0000003000UL, seg["TR"].Base);
        Assert.Equal(new Vmi.Core.Arch.Amd64.DescriptorTable(0xfffffe0000000000, 0xfff), HmpRegisters.Tables(text)["IDT"]);
        var v = HmpRegisters.Values(text);
        Assert.Equal(0x4a9c000UL, v["CR3"]);
        Assert.Equal(0xd01UL, v["EFER"]);
        Assert.Equal(0x216UL, v["RFL"]);
    }
}
