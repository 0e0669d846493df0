using Vmi.Core;
using Vmi.Core.Arch.Amd64;
using Vmi.Dump;

namespace Vmi.Os.Linux.Tests;

/// <summary>
/// The guests were stopped with vCPU 0 running one of the busy shells in user mode: the page-table root QEMU
/// reported for vCPU 0 must be that shell's own root as we derive it from mm->pgd (its user half with PTI).
/// </summary>
[Collection("RealGuest")]
public sealed class RealGuestCr3Tests(RealGuestFixture fixture)
{
    [Theory]
    [InlineData("kaslr", "elf")]
    [InlineData("kaslr", "kdump")]
    [InlineData("la57", "elf")]
    [InlineData("la57", "kdump")]
    [InlineData("pti", "elf")]
    [InlineData("pti", "raw")]
    public void The_vcpu_root_is_a_busy_shells_own_page_table(string variant, string format)
    {
        RealGuest g = fixture.Get(variant);
        using MemoryImage image = g.Open(format);
        using var core = new VmiCore(image);
        LinuxKernel k = LinuxKernel.Open(new CoreGuestMemory(core, image.Vmcoreinfo));
        ulong root = Amd64.RootFromCr3(g.Cr3, g.Mode).Value;
        List<LinuxProcess> owners = k.GetProcesses().Where(p => p.UserCr3 == root).ToList();
        LinuxProcess owner = Assert.Single(owners);
        Assert.Equal(("sh", 1), (owner.Name, owner.Ppid));
        Assert.Equal("sh -c while :; do :; done", owner.CommandLine);
        // with PTI the user half is the kernel half + 4 KiB; without, they are one table
        Assert.Equal(k.Info.PtiEnabled ? owner.Cr3 | 0x1000 : owner.Cr3, owner.UserCr3);
        Assert.Equal(k.Info.PtiEnabled, (root & 0x1000) != 0);
        Assert.Equal(variant == "pti", k.Info.PtiEnabled);
    }
}
