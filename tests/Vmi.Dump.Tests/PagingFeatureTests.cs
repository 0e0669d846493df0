using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Dump.Tests;

/// <summary>
/// Images rarely carry EFER: the registers we infer or make up must let translation honour NX the way the guest did.
/// Without NXE, bit 63 of a PAE or IA-32e entry is a reserved bit, so inferring NXE off would fail every no-execute
/// mapping of a real kernel.
/// </summary>
public sealed class PagingFeatureTests
{
    [Theory]
    [InlineData(PagingMode.Pae)]
    [InlineData(PagingMode.Ia32e)]
    [InlineData(PagingMode.Ia32eLa57)]
    public void Registers_made_from_a_cr3_enable_nx(PagingMode mode)
    {
        Registers r = MemoryImage.Synthesize(0x1000, mode);
        Assert.Equal(mode, r.PagingMode);
        Assert.True((r.PagingFeatures & PagingFeatures.Nxe) != 0, $"{mode}: EFER 0x{r.MsrEfer:x}");
    }

    [Fact]
    public void Legacy_registers_made_from_a_cr3_enable_pse()
    {
        Registers r = MemoryImage.Synthesize(0x1000, PagingMode.Legacy32);
        Assert.Equal(PagingMode.Legacy32, r.PagingMode);
        Assert.True((r.PagingFeatures & PagingFeatures.Pse) != 0);
    }

    [Fact]
    public void A_pae_guest_from_a_qemu_note_keeps_nx()
    {
        var pae = new Registers { Cr0 = Amd64.Cr0Pg | 1, Cr4 = Amd64.Cr4Pae, Rip = 0xc100_0000 };
        Assert.Equal(Amd64.EferNxe, ElfNotes.InferEfer(pae));

        var longMode = pae with { Rip = 0xffff_ffff_8100_0000 };
        ulong efer = ElfNotes.InferEfer(longMode);
        Assert.Equal(Amd64.EferLme | Amd64.EferLma | Amd64.EferNxe, efer);

        Assert.Equal(0UL, ElfNotes.InferEfer(new Registers { Cr0 = 1 }));
    }
}
