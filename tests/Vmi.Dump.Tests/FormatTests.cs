using System.Buffers.Binary;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;
using Vmi.Dump;

namespace Vmi.Dump.Tests;

public sealed class FormatTests
{
    public static TheoryData<string> SeedNames() => new(Seeds.All().Select(s => s.Name));

    private static byte[] Seed(string name) => Seeds.All().First(s => s.Name == name).Bytes;

    [Theory]
    [MemberData(nameof(SeedNames))]
    public void Every_format_opens_by_content_and_translates_with_its_own_registers(string name)
    {
        // the file name says nothing: ".img" for all
        using var file = new TempFile(Seed(name));
        bool raw = name.EndsWith(".raw", StringComparison.Ordinal);
        bool noRegisters = raw || name.EndsWith(".lime", StringComparison.Ordinal); // these formats carry none
        using MemoryImage image = MemoryImage.Open(file.Path, noRegisters ? new MemoryImageOptions { Cr3 = Seeds.Cr3 } : null);
        MemoryImageFormat expected = name switch
        {
            _ when name.EndsWith(".elf", StringComparison.Ordinal) => MemoryImageFormat.ElfCore,
            _ when name.EndsWith(".lime", StringComparison.Ordinal) => MemoryImageFormat.Lime,
            _ when name.EndsWith(".kdump", StringComparison.Ordinal) => MemoryImageFormat.Kdump,
            _ when name.EndsWith(".xen", StringComparison.Ordinal) => MemoryImageFormat.XenCore,
            _ => MemoryImageFormat.Raw,
        };
        Assert.Equal(expected, image.Format);
        using var core = new VmiCore(image);
        Assert.True(core.Supports(VmiCapability.QueryRegisters));
        Registers r = core.GetRegisters(new VcpuId(0));
        Assert.Equal(Seeds.Cr3, r.Cr3);
        Assert.Equal(PagingMode.Ia32e, core.PagingMode);
        if (!raw && expected != MemoryImageFormat.Lime)
        {
            Assert.Equal(0x40_1234UL, r.Rip);
            Assert.Equal(2, image.Registers.Count);
        }

        byte[] buffer = new byte[8192];
        core.Read(AccessContext.Paging(new Va(Seeds.UserVa + 0x800), new Pa(Seeds.Cr3)), buffer);
        Assert.True(buffer.AsSpan(0, 0x800).SequenceEqual(Seeds.Frame(8).AsSpan(0x800)));
        Assert.True(buffer.AsSpan(0x800, 4096).SequenceEqual(Seeds.Frame(9)));

        // frame 6 is a hole everywhere but in the raw image
        Assert.Equal(raw, image.TryMapPage(new Gfn(6), out MappedPage? hole));
        hole?.Dispose();
        if (expected is MemoryImageFormat.ElfCore or MemoryImageFormat.Kdump)
        {
            Assert.Equal("6.1.0-test", image.VmcoreinfoEntries["OSRELEASE"]);
        }
    }

    [Fact]
    public void Pages_are_copies_that_later_writes_to_the_file_cannot_change()
    {
        // Pages are read (pread) into their own buffers, never pointers into a mapping of the file: two maps of a
        // frame are two buffers, and a page already handed out keeps its bytes whatever happens to the file.
        using var file = new TempFile(Seeds.Raw());
        using MemoryImage image = MemoryImage.Open(file.Path);
        Assert.True(image.TryMapPage(new Gfn(8), out MappedPage? a));
        Assert.True(image.TryMapPage(new Gfn(8), out MappedPage? b));
        using (a)
        using (b)
        {
            Assert.False(a.IsLive);
            Assert.True(a.Span.SequenceEqual(Seeds.Frame(8)));
            unsafe
            {
                fixed (byte* pa = a.Span)
                fixed (byte* pb = b.Span)
                {
                    Assert.True(pa != pb, "each map of a frame is its own copy");
                }
            }

            using (var f = new FileStream(file.Path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
            {
                f.Position = 8 * 4096;
                f.Write(new byte[4096]);
            }

            Assert.True(a.Span.SequenceEqual(Seeds.Frame(8)));
        }
    }

    [Fact]
    public void Pages_outlive_the_image_safely()
    {
        using var file = new TempFile(Seeds.Raw());
        MappedPage? page;
        using (MemoryImage image = MemoryImage.Open(file.Path))
        {
            Assert.True(image.TryMapPage(new Gfn(9), out page));
        }

        using (page)
        {
            Assert.True(page.Span.SequenceEqual(Seeds.Frame(9)));
        }
    }

    [Fact]
    public void Cr3_option_overrides_the_images_registers()
    {
        using var file = new TempFile(Seed("seed.elf"));
        using MemoryImage image = MemoryImage.Open(file.Path, new MemoryImageOptions { Cr3 = 0x5000 });
        Assert.Equal(0x5000UL, image.Registers[0].Cr3);
        Assert.Equal(0x40_1234UL, image.Registers[0].Rip);
        Assert.Equal("the -Cr3 option", image.RegisterSource);
    }

    [Fact]
    public void A_raw_image_without_cr3_offers_no_registers()
    {
        using var file = new TempFile(Seeds.Raw());
        using MemoryImage image = MemoryImage.Open(file.Path);
        using var core = new VmiCore(image);
        Assert.False(core.Supports(VmiCapability.QueryRegisters));
        Assert.Throws<CapabilityNotSupportedException>(() => core.GetRegisters(new VcpuId(0)));
    }

    [Fact]
    public void Raw_memory_map_places_ranges()
    {
        using var file = new TempFile(Seeds.Raw());
        var map = new[] { new RawRegion(new Pa(0x1_0000_0000), 0x2000, 0x8000) };
        using MemoryImage image = MemoryImage.Open(file.Path, new MemoryImageOptions { RawMemoryMap = map });
        Assert.True(image.TryMapPage(new Gfn(0x10_0001), out MappedPage? p));
        using (p)
        {
            Assert.True(p.Span.SequenceEqual(Seeds.Frame(9)));
        }

        Assert.False(image.TryMapPage(new Gfn(0), out _));
    }

    [Theory]
    [InlineData(ImageFormat.ElfCore)]
    [InlineData(ImageFormat.Lime)]
    [InlineData(ImageFormat.Raw)]
    public void Writer_round_trips_every_frame_and_reports_progress(ImageFormat format)
    {
        using var core = new VmiCore(new Seeds.Driver());
        var s = new MemoryStream();
        var reports = new List<ImageWriteProgress>();
        ImageWriter.Write(core, s, format, new SyncProgress(reports.Add), CancellationToken.None);
        Assert.NotEmpty(reports);
        ImageWriteProgress last = reports[^1];
        Assert.Equal(last.PagesTotal, last.PagesDone);
        Assert.Equal(s.Length, last.BytesWritten);
        using var file = new TempFile(s.ToArray());
        using MemoryImage image = MemoryImage.Open(file.Path);
        for (ulong gfn = 0; gfn < Seeds.Frames; gfn++)
        {
            bool has = image.TryMapPage(new Gfn(gfn), out MappedPage? p);
            using (p)
            {
                if (gfn == 6 && format != ImageFormat.Raw)
                {
                    Assert.False(has, "a hole stays a hole");
                    continue;
                }

                Assert.True(has);
                Assert.True(p!.Span.SequenceEqual(gfn == 6 ? new byte[4096] : Seeds.Frame(gfn)));
            }
        }

        if (format == ImageFormat.ElfCore)
        {
            Assert.Equal(2, image.Registers.Count);
            Assert.Equal(1UL, image.Registers[1].Rax);
            Assert.Equal(Seeds.Registers.ShadowGs, image.Registers[0].ShadowGs);
            Assert.Equal(Seeds.Vmcoreinfo, image.Vmcoreinfo);
        }
    }

    [Fact]
    public void Long_mode_survives_an_elf_round_trip_of_registers_made_from_a_cr3()
    {
        // QEMU's note has no EFER: registers synthesised from -Cr3 must still come back as IA-32e.
        using var file = new TempFile(Seeds.Raw());
        using MemoryImage raw = MemoryImage.Open(file.Path, new MemoryImageOptions { Cr3 = Seeds.Cr3 });
        using var core = new VmiCore(raw);
        var s = new MemoryStream();
        ImageWriter.Write(core, s, ImageFormat.ElfCore, null, CancellationToken.None);
        using var elf = new TempFile(s.ToArray());
        using MemoryImage image = MemoryImage.Open(elf.Path);
        Assert.Equal(PagingMode.Ia32e, image.Registers[0].PagingMode);
        using var core2 = new VmiCore(image);
        Assert.Equal(Seeds.Frame(8)[0x10], core2.ReadU8(AccessContext.Paging(new Va(Seeds.UserVa + 0x10), new Pa(Seeds.Cr3))));
    }

    [Fact]
    public void Writer_stops_when_cancelled()
    {
        using var core = new VmiCore(new Seeds.Driver());
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => ImageWriter.Write(core, new MemoryStream(), ImageFormat.Raw, null, cts.Token));
    }

    [Fact]
    public void Elf_with_more_than_65534_segments_uses_PN_XNUM()
    {
        using var core = new VmiCore(new SparseDriver(70_000));
        using var file = new TempFile([]);
        using (var s = new FileStream(file.Path, FileMode.Create))
        {
            ImageWriter.Write(core, s, ImageFormat.ElfCore, null, CancellationToken.None);
        }

        byte[] head = new byte[64];
        using (var r = File.OpenRead(file.Path))
        {
            r.ReadExactly(head);
        }

        Assert.Equal(0xFFFF, BinaryPrimitives.ReadUInt16LittleEndian(head.AsSpan(56)));
        using MemoryImage image = MemoryImage.Open(file.Path);
        Assert.Equal(70_000, image.Ranges.Count);
        Assert.True(image.TryMapPage(new Gfn(2 * 69_999), out MappedPage? p));
        using (p)
        {
            Assert.Equal((byte)(69_999 & 0xFF), p.Span[0]);
        }
    }

    [Fact]
    public void Kdump_lzo_pages_fail_clearly()
    {
        byte[] bytes = KdumpBuilder.Build(Seeds.Pages, Seeds.Frames, [], null, forceFlags: 0x2);
        using var file = new TempFile(bytes);
        using MemoryImage image = MemoryImage.Open(file.Path);
        var e = Assert.Throws<VmiFormatException>(() => image.TryMapPage(new Gfn(3), out _));
        Assert.Contains("LZO", e.Message, StringComparison.Ordinal);
        Assert.Contains("zlib", e.Message, StringComparison.Ordinal);
        Assert.Contains(file.Path, e.Message, StringComparison.Ordinal);
    }

    public static TheoryData<string, string, string> Malformed() => new()
    {
        { "truncated ELF data", "seed.elf", "truncate:-100" },
        { "ELF program header past the end", "seed.elf", "u64@32=0x7fffffff" },
        { "ELF not a core", "seed.elf", "u16@16=2" },
        { "ELF p_filesz > p_memsz", "seed.elf", "phdr1.u64@40=1" },
        { "ELF oversized segment", "seed.elf", "phdr1.u64@24=0xfffffffffffff000" },
        { "ELF overlapping segments", "seed.elf", "phdr2.u64@24=0" },
        { "ELF note too long", "seed.elf", "note.u32@4=0x7fffffff" },
        { "LiME bad magic in second range", "seed.lime", "u32@lime2=0x12345678" },
        { "LiME truncated", "seed.lime", "truncate:-1" },
        { "LiME end before start", "seed.lime", "u64@16=0" },
        { "kdump truncated descriptors", "seed.kdump", "truncate:12800" },
        { "kdump bad block size", "seed.kdump", "u32@428=512" },
        { "kdump max_mapnr beyond bitmap", "seed.kdump", "u64@4192=0xffffffffff" },
        { "flattened record past end", "seed-flattened.kdump", "be64@4104=0x7fffffffffff" },
        { "Xen missing pages", "seed.xen", "xenpages=1000000" },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public void Malformed_input_is_a_clear_error_naming_file_and_offset(string what, string seed, string edit)
    {
        byte[] bytes = Apply(Seed(seed), edit);
        using var file = new TempFile(bytes);
        var e = Assert.Throws<VmiFormatException>(() =>
        {
            using MemoryImage image = MemoryImage.Open(file.Path);
            foreach (PhysicalRange r in image.Ranges)
            {
                for (ulong pa = r.Start.Value; pa < r.End.Value && pa < 0x100000; pa += 4096)
                {
                    if (image.TryMapPage(new Gfn(pa >> 12), out MappedPage? p))
                    {
                        p.Dispose();
                    }
                }
            }
        });
        Assert.Equal(file.Path, e.SourceName);
        Assert.Contains(file.Path, e.Message, StringComparison.Ordinal);
        Assert.True(e.Offset >= 0, $"{what}: the error names an offset: {e.Message}");
    }

    private static byte[] Apply(byte[] b, string edit)
    {
        b = (byte[])b.Clone();
        if (edit.StartsWith("truncate:", StringComparison.Ordinal))
        {
            int n = int.Parse(edit[9..], System.Globalization.CultureInfo.InvariantCulture);
            return b[..(n < 0 ? b.Length + n : n)];
        }

        if (edit.StartsWith("xenpages=", StringComparison.Ordinal))
        {
            // the header note's page count
            int at = b.AsSpan().IndexOf((ReadOnlySpan<byte>)[4, 0, 0, 0, 32, 0, 0, 0, 1, 0, 0, 2, (byte)'X', (byte)'e', (byte)'n', 0]) + 16 + 16;
            BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(at), ulong.Parse(edit[9..], System.Globalization.CultureInfo.InvariantCulture));
            return b;
        }

        string[] parts = edit.Split('=');
        ulong value = Convert.ToUInt64(parts[1], parts[1].StartsWith("0x", StringComparison.Ordinal) ? 16 : 10);
        string target = parts[0];
        int baseOffset = 0;
        if (target.StartsWith("phdr", StringComparison.Ordinal))
        {
            int index = target[4] - '0';
            baseOffset = 64 + (index * 56);
            target = target[6..];
        }
        else if (target.StartsWith("note.", StringComparison.Ordinal))
        {
            baseOffset = (int)BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(64 + 8));
            target = target[5..];
        }

        string[] f = target.Split('@');
        int offset = f[1] == "lime2" ? 32 + (int)(BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(16)) - BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(8)) + 1) : baseOffset + int.Parse(f[1], System.Globalization.CultureInfo.InvariantCulture);
        switch (f[0])
        {
            case "u16": BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(offset), (ushort)value); break;
            case "u32": BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(offset), (uint)value); break;
            case "u64": BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(offset), value); break;
            case "be64": BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan(offset), value); break;
        }

        return b;
    }

    private sealed class SyncProgress(Action<ImageWriteProgress> report) : IProgress<ImageWriteProgress>
    {
        public void Report(ImageWriteProgress value) => report(value);
    }

    /// <summary>Every other frame readable: one PT_LOAD per frame.</summary>
    private sealed class SparseDriver(int count) : IVmiDriver, IVmiRead
    {
        private static readonly byte[][] Pages = Enumerable.Range(0, 256).Select(i => Enumerable.Repeat((byte)i, 4096).ToArray()).ToArray();

        public string Name => "sparse";

        public VmiInfo Info => new(4096, 12, new Gfn((ulong)(2 * count) - 1), 1);

        public bool TryMapPage(Gfn gfn, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out MappedPage? page)
        {
            page = gfn.Value % 2 == 0 ? new MappedPage(gfn, Pages[(int)(gfn.Value / 2) & 0xFF]) : null;
            return page is not null;
        }

        public void Dispose()
        {
        }
    }
}
