using System.Buffers.Binary;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;
using Vmi.Dump;

namespace Vmi.Dump.Tests;

/// <summary>
/// Issue 10: files that change under an open session, hostile sizes. Each test reproduces a finding of the issue and
/// fails without its fix (before, the first crashed the whole test host with SIGBUS).
/// </summary>
public sealed class HostileInputTests
{
    [Theory]
    [InlineData("seed.raw")]
    [InlineData("seed.elf")]
    [InlineData("seed.lime")]
    [InlineData("seed.kdump")]
    [InlineData("seed-flattened.kdump")]
    [InlineData("seed.xen")]
    public void An_image_truncated_under_an_open_session_gives_a_clear_error_and_keeps_cached_pages(string seed)
    {
        using var file = new TempFile(Seeds.All().First(s => s.Name == seed).Bytes);
        using MemoryImage image = MemoryImage.Open(file.Path, new MemoryImageOptions { Cr3 = Seeds.Cr3 });
        using var core = new VmiCore(image);
        byte[] before = new byte[4096];
        core.Read(AccessContext.Direct(new Pa(8 * 4096)), before); // cached now
        using (var f = new FileStream(file.Path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
        {
            f.SetLength(100); // another program truncates the file
        }

        byte[] again = new byte[4096];
        core.Read(AccessContext.Direct(new Pa(8 * 4096)), again);
        Assert.True(again.AsSpan().SequenceEqual(Seeds.Frame(8)), "a page read before the file changed stays valid");
        var e = Assert.Throws<ImageChangedException>(() => image.TryMapPage(new Gfn(9), out _));
        Assert.Contains(file.Path, e.Message, StringComparison.Ordinal);
        Assert.Contains("changed after it was opened", e.Message, StringComparison.Ordinal);
        Assert.Contains("100 bytes", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_image_rewritten_in_place_is_reported_as_changed()
    {
        using var file = new TempFile(Seeds.Raw());
        using MemoryImage image = MemoryImage.Open(file.Path);
        Assert.True(image.TryMapPage(new Gfn(3), out MappedPage? p));
        p.Dispose();
        File.WriteAllBytes(file.Path, new byte[Seeds.Raw().Length]); // same length, other bytes
        File.SetLastWriteTimeUtc(file.Path, DateTime.UtcNow.AddMinutes(1)); // as a later write would leave it, on any clock granularity
        var e = Assert.Throws<ImageChangedException>(() => image.TryMapPage(new Gfn(4), out _));
        Assert.Contains("modified in place", e.Message, StringComparison.Ordinal);
    }

    /// <summary>A raw image of <paramref name="frames"/> frames of seeded bytes (frame 0 starts with zeros: no format's magic).</summary>
    private static byte[] RawPattern(int frames)
    {
        byte[] b = new byte[frames * 4096];
        new Random(8).NextBytes(b);
        b.AsSpan(0, 64).Clear();
        return b;
    }

    [Theory]
    [InlineData(4096)]
    [InlineData(1000)]
    [InlineData(3)]
    [InlineData(40_000)]
    public void Small_sequential_streaming_reads_return_the_file_s_bytes_across_read_ahead_windows(int chunk)
    {
        // 100 frames = 400 KiB: more than three read-ahead windows, ending inside one.
        byte[] bytes = RawPattern(100);
        using var file = new TempFile(bytes);
        using MemoryImage image = MemoryImage.Open(file.Path);
        using var core = new VmiCore(image);
        byte[] got = new byte[bytes.Length];
        for (int done = 0; done < got.Length; done += chunk)
        {
            int n = Math.Min(chunk, got.Length - done);
            core.ReadStreaming(AccessContext.Direct(new Pa((ulong)done)), got.AsSpan(done, n));
        }

        Assert.True(got.AsSpan().SequenceEqual(bytes), "every byte as the file holds it");

        // Out of order and backwards: no window reuse may hand out another offset's bytes.
        var random = new Random(9);
        byte[] one = new byte[4096];
        for (int i = 0; i < 200; i++)
        {
            int at = random.Next(bytes.Length - one.Length);
            core.ReadStreaming(AccessContext.Direct(new Pa((ulong)at)), one);
            Assert.True(one.AsSpan().SequenceEqual(bytes.AsSpan(at, one.Length)), $"4 KiB at 0x{at:x}");
        }
    }

    [Fact]
    public void A_file_truncated_under_a_small_read_stream_gives_a_clear_error_past_what_was_read_ahead()
    {
        byte[] bytes = RawPattern(100);
        using var file = new TempFile(bytes);
        using MemoryImage image = MemoryImage.Open(file.Path);
        using var core = new VmiCore(image);
        byte[] page = new byte[4096];
        core.ReadStreaming(AccessContext.Direct(new Pa(0)), page);
        core.ReadStreaming(AccessContext.Direct(new Pa(4096)), page); // sequential: the next window is read ahead
        using (var f = new FileStream(file.Path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
        {
            f.SetLength(8192); // another program truncates the file
        }

        // What was read ahead before the change stays what the file held then, as a cached page does ...
        core.ReadStreaming(AccessContext.Direct(new Pa(8192)), page);
        Assert.True(page.AsSpan().SequenceEqual(bytes.AsSpan(8192, 4096)));

        // ... and the stream's first read past it is a clear error naming the file, not a crash or stale bytes.
        ulong past = 4096 + Vmi.Dump.RunSource.AheadSize;
        var e = Assert.Throws<ImageChangedException>(() => core.ReadStreaming(AccessContext.Direct(new Pa(past)), page));
        Assert.Contains(file.Path, e.Message, StringComparison.Ordinal);
        Assert.Contains("8192 bytes", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_file_rewritten_in_place_under_a_small_read_stream_is_reported_at_the_next_window()
    {
        byte[] bytes = RawPattern(100);
        using var file = new TempFile(bytes);
        using MemoryImage image = MemoryImage.Open(file.Path);
        using var core = new VmiCore(image);
        byte[] page = new byte[4096];
        core.ReadStreaming(AccessContext.Direct(new Pa(0)), page);
        core.ReadStreaming(AccessContext.Direct(new Pa(4096)), page);
        File.WriteAllBytes(file.Path, new byte[bytes.Length]); // same length, other bytes
        File.SetLastWriteTimeUtc(file.Path, DateTime.UtcNow.AddMinutes(1));
        ulong past = 4096 + Vmi.Dump.RunSource.AheadSize;
        var e = Assert.Throws<ImageChangedException>(() => core.ReadStreaming(AccessContext.Direct(new Pa(past)), page));
        Assert.Contains("modified in place", e.Message, StringComparison.Ordinal);
    }

    /// <summary>A version-6 kdump whose sub-header says max_mapnr = <paramref name="maxMapnr"/>, as a small file.</summary>
    private static byte[] KdumpWithMaxMapnr(ulong maxMapnr)
    {
        byte[] b = Seeds.Kdump();
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(4096 + 96), maxMapnr);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(436), 1u << 27); // bitmap_blocks large enough to "fit" it
        return b;
    }

    [Theory]
    [InlineData(1UL << 35)] // was: 4.3 GB allocated, 22-41 s
    [InlineData(1UL << 37)] // was: System.OverflowException
    [InlineData(1UL << 38)] // was: IndexOutOfRangeException
    public void A_huge_kdump_max_mapnr_in_a_small_file_is_a_format_error_before_any_allocation(ulong maxMapnr)
    {
        using var file = new TempFile(KdumpWithMaxMapnr(maxMapnr));
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<VmiFormatException>(() => MemoryImage.Open(file.Path));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Contains("max_mapnr", e.Message, StringComparison.Ordinal);
        Assert.Contains(file.Path, e.Message, StringComparison.Ordinal);
        Assert.True(allocated < 16 << 20, $"{allocated} bytes allocated to refuse it");
    }

    [Fact]
    public void A_huge_kdump_bitmap_in_a_sparse_file_opens_with_memory_bounded_by_what_is_stored()
    {
        // max_mapnr 2^35 with the bitmap really in the file: 4 GiB of bitmap that is all hole except the seed's
        // first bytes. The seed's frames must still read, and opening must not cost memory per mapped frame.
        byte[] seed = Seeds.Kdump();
        ulong maxMapnr = 1UL << 35;
        long bitmapBytes = (long)(maxMapnr / 8);
        int subBlocks = BinaryPrimitives.ReadInt32LittleEndian(seed.AsSpan(432));
        uint seedBitmapBlocks = BinaryPrimitives.ReadUInt32LittleEndian(seed.AsSpan(436));
        long oldBitmapAt = (1L + subBlocks) * 4096;
        long oldHalf = seedBitmapBlocks * 4096L / 2;
        long oldDescriptors = oldBitmapAt + (2 * oldHalf);
        long newDescriptors = oldBitmapAt + (2 * bitmapBytes);
        string path = Path.Combine(Path.GetTempPath(), $"vmi-{Environment.ProcessId}-sparse-kdump.img");
        try
        {
            using (var f = new FileStream(path, FileMode.Create, FileAccess.Write))
            {
                byte[] head = seed[..(int)oldBitmapAt];
                BinaryPrimitives.WriteUInt32LittleEndian(head.AsSpan(436), (uint)(2 * bitmapBytes / 4096));
                BinaryPrimitives.WriteUInt64LittleEndian(head.AsSpan(4096 + 96), maxMapnr);
                f.Write(head);
                f.Position = oldBitmapAt + bitmapBytes; // the second bitmap: the seed's bits, then hole
                f.Write(seed.AsSpan((int)(oldBitmapAt + oldHalf), (int)oldHalf));
                f.Position = newDescriptors;
                byte[] rest = seed[(int)oldDescriptors..];
                for (int i = 0; i + 24 <= (Seeds.Frames - 1) * 24; i += 24)
                {
                    long o = BinaryPrimitives.ReadInt64LittleEndian(rest.AsSpan(i));
                    BinaryPrimitives.WriteInt64LittleEndian(rest.AsSpan(i), o - oldDescriptors + newDescriptors);
                }

                f.Write(rest);
            }

            long before = GC.GetAllocatedBytesForCurrentThread();
            using MemoryImage image = MemoryImage.Open(path);
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.True(allocated < 16 << 20, $"{allocated} bytes allocated to open it");
            Assert.Equal(new Gfn(maxMapnr - 1), image.Info.MaxGfn);
            Assert.True(image.TryMapPage(new Gfn(9), out MappedPage? p));
            using (p)
            {
                Assert.True(p.Span.SequenceEqual(Seeds.Frame(9)));
            }

            Assert.False(image.TryMapPage(new Gfn(1UL << 34), out _));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_kdump_zlib_bomb_names_the_problem_in_words()
    {
        // a page whose zlib stream inflates past a page: the text once read "inflates to more than bytes"
        byte[] big = new byte[8192];
        var z = new MemoryStream();
        using (var zs = new System.IO.Compression.ZLibStream(z, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true))
        {
            zs.Write(big);
        }

        var pages = Seeds.Pages.Where(p => p.Pfn != 6).ToList();
        byte[] dump = KdumpBuilder.Build(pages, Seeds.Frames, Seeds.Notes(), Seeds.Vmcoreinfo);
        // point frame 0's descriptor at a bomb appended to the file
        int subBlocks = BinaryPrimitives.ReadInt32LittleEndian(dump.AsSpan(432));
        uint bitmapBlocks = BinaryPrimitives.ReadUInt32LittleEndian(dump.AsSpan(436));
        int desc = (1 + subBlocks + (int)bitmapBlocks) * 4096;
        byte[] bomb = z.ToArray();
        BinaryPrimitives.WriteInt64LittleEndian(dump.AsSpan(desc), dump.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(dump.AsSpan(desc + 8), (uint)bomb.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(dump.AsSpan(desc + 12), KdumpParser.CompressedZlib);
        using var file = new TempFile([.. dump, .. bomb]);
        using MemoryImage image = MemoryImage.Open(file.Path);
        var e = Assert.Throws<VmiFormatException>(() => image.TryMapPage(new Gfn(0), out _));
        Assert.Contains("inflates to more than a page (4096 bytes)", e.Message, StringComparison.Ordinal);
    }
}

/// <summary>Issue 10: damaged and foreign files are errors that name the format, never a silent "raw image" or an empty "ELF core".</summary>
public sealed class ForeignFormatTests
{
    private static byte[] Seed(string name) => Seeds.All().First(s => s.Name == name).Bytes;

    private static VmiFormatException Refused(byte[] bytes)
    {
        using var file = new TempFile(bytes);
        var e = Assert.Throws<VmiFormatException>(() => MemoryImage.Open(file.Path).Dispose());
        Assert.Contains(file.Path, e.Message, StringComparison.Ordinal);
        return e;
    }

    [Fact]
    public void A_gzip_file_made_by_gzip_is_refused_with_what_to_do()
    {
        // the real gzip (an essential Debian package), not our own compressor
        using var raw = new TempFile(Seeds.Raw(), ".raw");
        var psi = new System.Diagnostics.ProcessStartInfo("gzip", ["-c", raw.Path]) { RedirectStandardOutput = true };
        using var gzip = System.Diagnostics.Process.Start(psi)!;
        var compressed = new MemoryStream();
        gzip.StandardOutput.BaseStream.CopyTo(compressed);
        gzip.WaitForExit();
        Assert.Equal(0, gzip.ExitCode);
        var e = Refused(compressed.ToArray());
        Assert.Contains("gzip-compressed", e.Message, StringComparison.Ordinal);
        Assert.Contains("gunzip", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("PAGEDU64", "Windows 64-bit crash dump")]
    [InlineData("PAGEDUMP", "Windows 32-bit crash dump")]
    [InlineData("QFI\u00fb", "qcow2")]
    [InlineData("MDMP", "minidump")]
    public void A_foreign_format_is_refused_by_name(string magic, string named)
    {
        byte[] b = Seeds.Raw();
        System.Text.Encoding.Latin1.GetBytes(magic).CopyTo(b, 0);
        Assert.Contains(named, Refused(b).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("seed.elf", 1, "ELF core")] // "\x7fFLF"
    [InlineData("seed.elf", 3, "ELF core")]
    [InlineData("seed.kdump", 0, "kdump")] // "LDUMP   "
    [InlineData("seed.kdump", 4, "kdump")]
    [InlineData("seed.lime", 2, "LiME")]
    public void A_damaged_magic_is_not_taken_for_a_raw_image(string seed, int at, string named)
    {
        byte[] b = Seed(seed);
        b[at] ^= 0x01;
        var e = Refused(b);
        Assert.Contains(named, e.Message, StringComparison.Ordinal);
        Assert.Contains("magic is damaged", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_elf_core_with_its_class_byte_flipped_is_refused()
    {
        byte[] b = Seed("seed.elf");
        b[4] = 1; // ELFCLASS32 over a 64-bit header
        var e = Refused(b);
        Assert.Contains("class byte (offset 4) is damaged", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_xen_dump_core_with_a_bad_e_shstrndx_is_refused()
    {
        byte[] b = Seed("seed.xen");
        ushort shnum = BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(60));
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(62), (ushort)(shnum + 3));
        Assert.Contains("e_shstrndx", Refused(b).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_image_with_no_memory_is_an_error()
    {
        byte[] b = Seed("seed.elf");
        ulong phoff = BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(32));
        int phnum = BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(56));
        for (int i = 0; i < phnum; i++)
        {
            int p = (int)phoff + (i * 56);
            if (BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(p)) == 1)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(p), 0); // PT_LOAD -> PT_NULL
            }
        }

        Assert.Contains("describes no memory", Refused(b).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_raw_image_with_a_memory_map_is_not_second_guessed_by_magic()
    {
        byte[] b = Seeds.Raw();
        "PAGEDU64"u8.CopyTo(b);
        using var file = new TempFile(b);
        using MemoryImage image = MemoryImage.Open(file.Path, new MemoryImageOptions { RawMemoryMap = [new RawRegion(new Pa(0), (ulong)b.Length, 0)] });
        Assert.Equal(MemoryImageFormat.Raw, image.Format);
    }
}
