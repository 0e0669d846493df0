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
