using Vmi.Core;
using Vmi.Core.Arch.Amd64;
using Vmi.Dump;

namespace Vmi.Dump.Tests;

/// <summary>
/// Our translation and bytes, over every image format of a real Linux guest, against QEMU's own answers
/// (monitor gva2gpa and x) for hundreds of kernel and user addresses; registers come from the image.
/// </summary>
[Collection("RealGuest")]
public sealed class RealGuestTests(RealGuestFixture fixture) : IDisposable
{
    private static readonly Lock s_gate = new();

    public static TheoryData<string, string> Cases()
    {
        var d = new TheoryData<string, string>();
        foreach (string v in new[] { "kaslr", "la57" })
        {
            foreach (string f in new[] { "qemu-elf", "qemu-kdump", "pmemsave-raw", "our-elf", "our-lime", "our-raw", "xen-core" })
            {
                d.Add(v, f);
            }
        }

        return d;
    }

    /// <summary>Opens one format of the guest's memory; derived formats are written by our writer (or the Xen builder) from QEMU's images.</summary>
    internal MemoryImage Open(GuestData g, string format)
    {
        switch (format)
        {
            case "qemu-elf":
                return MemoryImage.Open(g.Image("guest.elf"));
            case "qemu-kdump":
                return MemoryImage.Open(g.Image("guest.kdump"));
            case "pmemsave-raw":
                // a raw image carries no registers: the CR3 comes from the caller (-Cr3), the mode with it
                return MemoryImage.Open(g.Image("guest.raw"), new MemoryImageOptions { Cr3 = g.Cr3, PagingMode = g.Mode });
        }

        string path = Derived(g, format, fixture.DerivedDirectory);
        return format == "our-raw" || format == "our-lime"
            ? MemoryImage.Open(path, new MemoryImageOptions { Cr3 = g.Cr3, PagingMode = g.Mode })
            : MemoryImage.Open(path);
    }

    private static string Derived(GuestData g, string format, string directory)
    {
        lock (s_gate)
        {
            Directory.CreateDirectory(directory);
            string path = Path.Combine(directory, $"{g.Variant}.{format}");
            if (File.Exists(path))
            {
                return path;
            }

            string source = format is "our-elf" ? g.Image("guest.kdump") : g.Image("guest.elf");
            using var image = MemoryImage.Open(source);
            using var core = new VmiCore(image);
            string tmp = path + ".tmp";
            using (var f = new FileStream(tmp, FileMode.Create))
            {
                if (format == "xen-core")
                {
                    var pages = new List<ulong>();
                    foreach (PhysicalRange r in image.Ranges)
                    {
                        for (ulong pa = r.Start.Value; pa < r.End.Value; pa += 4096)
                        {
                            pages.Add(pa >> 12);
                        }
                    }

                    XenCoreBuilder.Write(f, pages.Count, i =>
                    {
                        byte[] page = new byte[4096];
                        Assert.True(core.TryReadPage(new Gfn(pages[i]), page));
                        return (pages[i], page);
                    }, image.Registers);
                }
                else
                {
                    ImageFormat fmt = format switch { "our-elf" => ImageFormat.ElfCore, "our-lime" => ImageFormat.Lime, _ => ImageFormat.Raw };
                    ImageWriter.Write(core, f, fmt, null, CancellationToken.None);
                }
            }

            File.Move(tmp, path);
            return path;
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Translation_and_bytes_equal_QEMUs_answers(string variant, string format)
    {
        GuestData g = fixture.Get(variant);
        using MemoryImage image = Open(g, format);
        using var core = new VmiCore(image);

        // Registers from the image alone: CR3 and the paging mode QEMU reported.
        Registers regs = core.GetRegisters(new VcpuId(0));
        Assert.Equal(g.Cr3, regs.Cr3);
        Assert.Equal(g.Mode, core.PagingMode);
        Pa root = regs.TranslationRoot;

        // What is RAM: QEMU's ELF core lists exactly the guest's RAM blocks (not the VGA window or ROMs, where
        // QEMU's "x" reads device memory, e.g. 0xff bytes at 0xa0000-0xbffff, and a raw image holds zeros).
        IReadOnlyList<PhysicalRange> ram;
        using (MemoryImage qemuElf = MemoryImage.Open(g.Image("guest.elf")))
        {
            ram = qemuElf.Ranges;
        }

        int mapped = 0, unmapped = 0, user = 0, kernel = 0;
        byte[] buffer = new byte[32];
        foreach (QemuAnswer a in g.Answers)
        {
            TranslationResult r = core.TryTranslateAddress(new AddressContext(new Va(a.Va), root));
            if (a.Gpa is not { } gpa)
            {
                Assert.False(r.Success, $"{format}: QEMU says {a.Va:x} is unmapped; we translated it to {r.Pa}");
                unmapped++;
                continue;
            }

            Assert.True(r.Success, $"{format}: QEMU translates {a.Va:x} to {gpa:x}; we fault: {r}");
            Assert.Equal(gpa, r.Pa.Value);
            if (!ram.Any(x => gpa >= x.Start.Value && gpa < x.End.Value))
            {
                continue; // device memory (the VGA window, the APIC page): not RAM, not in a memory image
            }

            core.Read(AccessContext.Paging(new Va(a.Va), root), buffer);
            Assert.True(a.Bytes.AsSpan().SequenceEqual(buffer), $"{format}: bytes at {a.Va:x} (pa {gpa:x}) differ: QEMU {Convert.ToHexString(a.Bytes)}, ours {Convert.ToHexString(buffer)}");
            mapped++;
            if (a.Va < 0x8000_0000_0000_0000UL)
            {
                user++;
            }
            else
            {
                kernel++;
            }
        }

        Assert.True(mapped >= 150, $"only {mapped} mapped addresses were compared");
        Assert.True(user >= 10 && kernel >= 100, $"user {user}, kernel {kernel}: the sample must cover both");
        Assert.True(unmapped >= 10, $"only {unmapped} unmapped addresses were compared");
    }

    [Theory]
    [InlineData("kaslr", "guest.elf")]
    [InlineData("kaslr", "guest.kdump")]
    [InlineData("la57", "guest.elf")]
    [InlineData("la57", "guest.kdump")]
    public void Registers_equal_QEMUs_info_registers(string variant, string file)
    {
        GuestData g = fixture.Get(variant);
        using MemoryImage image = MemoryImage.Open(g.Image(file));
        Assert.Equal(file.EndsWith("elf", StringComparison.Ordinal) ? MemoryImageFormat.ElfCore : MemoryImageFormat.Kdump, image.Format);
        Assert.Equal(variant == "la57" ? 2 : 1, image.Registers.Count);
        Registers r = image.Registers[0];
        Assert.Equal(g.Register("RIP"), r.Rip);
        Assert.Equal(g.Register("RSP"), r.Rsp);
        Assert.Equal(g.Register("RAX"), r.Rax);
        Assert.Equal(g.Register("R15"), r.R15);
        Assert.Equal(g.Register("CR0"), r.Cr0);
        Assert.Equal(g.Register("CR3"), r.Cr3);
        Assert.Equal(g.Register("CR4"), r.Cr4);
        Assert.Equal(g.Register("IDT"), r.Idtr.Base);
        Assert.Equal(g.Register("GDT"), r.Gdtr.Base);
        Assert.Equal(g.Register("CS") >> 0, (ulong)r.Cs.Selector);
        Assert.Equal(g.Register("FS") >> 0, (ulong)r.Fs.Selector);
        // EFER is not in the note: long mode is inferred and must agree with QEMU's EFER.LMA.
        Assert.Equal(g.Register("EFER") & Amd64.EferLma, r.MsrEfer & Amd64.EferLma);
        Assert.True((r.Cs.Attributes & 0x200) != 0 || r.Rip < 0x1_0000_0000, "CS.L from the note's segment flags");
        Assert.Contains("OSRELEASE=6.", image.Vmcoreinfo ?? "", StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("kaslr")]
    [InlineData("la57")]
    public void Every_format_holds_the_same_bytes_as_pmemsave(string variant)
    {
        GuestData g = fixture.Get(variant);
        using MemoryImage raw = MemoryImage.Open(g.Image("guest.raw"));
        Assert.Equal(MemoryImageFormat.Raw, raw.Format);
        foreach (string format in new[] { "qemu-elf", "qemu-kdump", "our-elf", "our-lime", "xen-core" })
        {
            using MemoryImage other = Open(g, format);
            ulong pages = 0;
            foreach (PhysicalRange range in other.Ranges)
            {
                for (ulong pa = range.Start.Value; pa < range.End.Value && pa < (ulong)new FileInfo(g.Image("guest.raw")).Length; pa += 4096)
                {
                    var gfn = new Gfn(pa >> 12);
                    Assert.True(raw.TryMapPage(gfn, out MappedPage? a));
                    Assert.True(other.TryMapPage(gfn, out MappedPage? b), $"{format} lacks frame {gfn}");
                    using (a)
                    using (b)
                    {
                        Assert.True(a.Span.SequenceEqual(b.Span), $"{format}: frame {gfn} differs from pmemsave's");
                    }

                    pages++;
                }
            }

            Assert.True(pages >= 32000, $"{format}: only {pages} frames compared");
        }
    }

    [Fact]
    public void La57_guest_really_uses_5_level_paging()
    {
        GuestData g = fixture.Get("la57");
        Assert.NotEqual(0UL, g.Cr4 & Amd64.Cr4La57);
        using MemoryImage image = MemoryImage.Open(g.Image("guest.elf"));
        using var core = new VmiCore(image);
        Assert.Equal(PagingMode.Ia32eLa57, core.PagingMode);
        // kernel addresses above the 48-bit canonical range (the LA57 direct map and vmemmap) are only reachable with 5 levels
        int above48 = g.Answers.Count(a => a.Gpa is not null && a.Va >= 0xff00_0000_0000_0000UL && a.Va < 0xffff_8000_0000_0000UL);
        Assert.True(above48 >= 100, $"only {above48} QEMU answers lie above the 48-bit range");
    }

    [Fact]
    public void Kaslr_moves_the_kernel()
    {
        GuestData g = fixture.Get("kaslr");
        using MemoryImage image = MemoryImage.Open(g.Image("guest.elf"));
        IReadOnlyDictionary<string, string> info = image.VmcoreinfoEntries;
        Assert.True(info.TryGetValue("KERNELOFFSET", out string? offset), "VMCOREINFO has KERNELOFFSET");
        Assert.NotEqual(0UL, Convert.ToUInt64(offset, 16));
    }

    [Theory]
    [InlineData("kaslr")]
    [InlineData("la57")]
    public void Vmcoreinfo_alone_gives_a_kernel_root(string variant)
    {
        // A raw image has no registers; an ELF with VMCOREINFO but no CPU notes derives the kernel's CR3 from swapper_pg_dir.
        GuestData g = fixture.Get(variant);
        using MemoryImage elf = MemoryImage.Open(g.Image("guest.elf"));
        string path = Path.Combine(Path.GetTempPath(), $"vmi-vmcoreinfo-{variant}-{Environment.ProcessId}.elf");
        try
        {
            using (var f = new FileStream(path, FileMode.Create))
            using (var core = new VmiCore(new NoRegisters(elf)))
            {
                ImageWriter.Write(core, f, ImageFormat.ElfCore, null, CancellationToken.None);
            }

            using MemoryImage image = MemoryImage.Open(path);
            Assert.StartsWith("VMCOREINFO", image.RegisterSource, StringComparison.Ordinal);
            using var kcore = new VmiCore(image);
            Assert.Equal(g.Mode, kcore.PagingMode);
            Pa root = kcore.GetRegisters(new VcpuId(0)).TranslationRoot;
            int checkedKernel = 0;
            foreach (QemuAnswer a in g.Answers.Where(a => a.Gpa is not null && a.Va >= 0xffff_ffff_8000_0000UL))
            {
                TranslationResult r = kcore.TryTranslateAddress(new AddressContext(new Va(a.Va), root));
                Assert.True(r.Success, $"kernel text/data {a.Va:x} must translate under swapper_pg_dir");
                Assert.Equal(a.Gpa, r.Pa.Value);
                checkedKernel++;
            }

            Assert.True(checkedKernel >= 20, $"only {checkedKernel} kernel-image addresses");
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>Hides the registers of an image (the driver offers reading only), keeping its VMCOREINFO via the writer's image check.</summary>
    private sealed class NoRegisters(MemoryImage inner) : IVmiDriver, IVmiRead, IVmcoreinfoSource
    {
        public string? Vmcoreinfo => inner.Vmcoreinfo;

        public string Name => inner.Name;

        public VmiInfo Info => inner.Info with { VcpuCount = 1 };

        public bool TryMapPage(Gfn gfn, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out MappedPage? page) => inner.TryMapPage(gfn, out page);

        public void Dispose()
        {
        }
    }

    public void Dispose()
    {
    }
}
