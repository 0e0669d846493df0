using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.IO.Compression;
using System.Numerics;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Dump;

/// <summary>
/// The file as the kdump reader sees it: either the file itself, or the logical file that makedumpfile's
/// "flattened" format (what QEMU before 8.2 writes for kdump-*) describes as (offset, size, data) records.
/// </summary>
internal abstract class LogicalFile
{
    protected LogicalFile(MappedImageFile file) => File = file;

    public MappedImageFile File { get; }

    public abstract long Length { get; }

    /// <summary>The bytes at a logical offset; a span into the mapping when they lie in one piece, else copied into <paramref name="scratch"/>.</summary>
    public abstract ReadOnlySpan<byte> Get(long offset, int length, string what, Span<byte> scratch);

    public byte[] ReadArray(long offset, long length, string what)
    {
        if (length < 0 || length > Array.MaxLength || offset < 0 || offset > Length || length > Length - offset)
        {
            throw new VmiFormatException($"{what} ({length} bytes at logical offset 0x{offset:x}) runs past the end of the dump ({Length} bytes): the file is truncated or the header is corrupt.", File.Path, offset);
        }

        byte[] a = new byte[length];
        ReadOnlySpan<byte> s = Get(offset, (int)length, what, a);
        if (!s.Overlaps(a))
        {
            s.CopyTo(a);
        }

        return a;
    }
}

internal sealed class FlatFile(MappedImageFile file) : LogicalFile(file)
{
    public override long Length => File.Length;

    public override ReadOnlySpan<byte> Get(long offset, int length, string what, Span<byte> scratch) => File.Span(offset, length, what);
}

/// <summary>makedumpfile's flattened format: a 4096-byte header, then big-endian {offset, size} records each followed by its data.</summary>
internal sealed class FlattenedFile : LogicalFile
{
    private readonly long[] _logical;
    private readonly long[] _sizes;
    private readonly long[] _fileOffsets;

    public FlattenedFile(MappedImageFile file)
        : base(file)
    {
        ReadOnlySpan<byte> h = file.Span(0, 32, "the flattened-format header");
        long type = BinaryPrimitives.ReadInt64BigEndian(h[16..]);
        long version = BinaryPrimitives.ReadInt64BigEndian(h[24..]);
        if (type != 1 || version != 1)
        {
            throw new VmiFormatException($"flattened-format header type {type} version {version}; only type 1 version 1 is defined.", file.Path, 16);
        }

        var records = new List<(long Logical, long Size, long FileOffset, long At)>();
        long pos = 4096;
        while (true)
        {
            ReadOnlySpan<byte> r = file.Span(pos, 16, $"flattened record header {records.Count}");
            long logical = BinaryPrimitives.ReadInt64BigEndian(r);
            long size = BinaryPrimitives.ReadInt64BigEndian(r[8..]);
            if (logical == -1)
            {
                break; // END_FLAG_FLAT_HEADER
            }

            if (logical < 0 || size < 0 || size > file.Length - pos - 16 || logical > long.MaxValue - size)
            {
                throw new VmiFormatException($"flattened record {records.Count} (logical offset {logical}, {size} bytes) is malformed or runs past the end of the file ({file.Length} bytes): the dump is truncated or corrupt.", file.Path, pos);
            }

            if (size > 0)
            {
                records.Add((logical, size, pos + 16, pos));
            }

            pos += 16 + size;
        }

        records.Sort((a, b) => a.Logical.CompareTo(b.Logical));
        for (int i = 1; i < records.Count; i++)
        {
            if (records[i - 1].Logical + records[i - 1].Size > records[i].Logical)
            {
                throw new VmiFormatException($"flattened record at file offset 0x{records[i].At:x} (logical 0x{records[i].Logical:x}) overlaps the record at 0x{records[i - 1].At:x}.", file.Path, records[i].At);
            }
        }

        _logical = records.Select(r => r.Logical).ToArray();
        _sizes = records.Select(r => r.Size).ToArray();
        _fileOffsets = records.Select(r => r.FileOffset).ToArray();
        Length = records.Count == 0 ? 0 : _logical[^1] + _sizes[^1];
    }

    public override long Length { get; }

    public override ReadOnlySpan<byte> Get(long offset, int length, string what, Span<byte> scratch)
    {
        int i = Array.BinarySearch(_logical, offset);
        if (i < 0)
        {
            i = ~i - 1;
        }

        if (i >= 0 && offset + length <= _logical[i] + _sizes[i])
        {
            return File.Span(_fileOffsets[i] + (offset - _logical[i]), length, what);
        }

        if (scratch.Length < length)
        {
            throw new VmiFormatException($"{what} ({length} bytes) is split across flattened records beyond the reader's buffer.", File.Path, offset);
        }

        int done = 0;
        while (done < length)
        {
            long at = offset + done;
            if (i < 0 || i >= _logical.Length || at < _logical[i] || at >= _logical[i] + _sizes[i])
            {
                throw new VmiFormatException($"{what}: logical offset 0x{at:x} is not stored in the flattened dump (a hole or a truncated file).", File.Path, at);
            }

            int chunk = (int)Math.Min(length - done, _logical[i] + _sizes[i] - at);
            File.Span(_fileOffsets[i] + (at - _logical[i]), chunk, what).CopyTo(scratch[done..]);
            done += chunk;
            i++;
        }

        return scratch[..length];
    }
}

/// <summary>
/// kdump-compressed dumps (makedumpfile's diskdump format, as makedumpfile and QEMU's dump-guest-memory -z/-l/-s write it):
/// a disk_dump_header, a kdump_sub_header (phys_base, notes, VMCOREINFO), two page bitmaps, one page_desc per dumped page.
/// Pages are decompressed on read into pooled buffers; the engine's page cache keeps the hot ones.
/// Supported: uncompressed and zlib pages. LZO, snappy and zstd pages fail with a clear error.
/// </summary>
internal static class KdumpParser
{
    public const uint CompressedZlib = 0x1;
    public const uint CompressedLzo = 0x2;
    public const uint CompressedSnappy = 0x4;
    public const uint CompressedZstd = 0x20;

    public static ParsedImage Parse(MappedImageFile file)
    {
        LogicalFile logical = file.Span(0, Math.Min(file.Length, 16), "the header").StartsWith("makedumpfile\0"u8)
            ? new FlattenedFile(file)
            : new FlatFile(file);
        string path = file.Path;
        Span<byte> scratch = stackalloc byte[1024];
        ReadOnlySpan<byte> h = logical.Get(0, 464, "the kdump disk_dump_header", scratch);
        if (!h.StartsWith("KDUMP   "u8))
        {
            throw new VmiFormatException("the flattened dump does not hold a kdump header (\"KDUMP   \") at logical offset 0.", path, 0);
        }

        int version = BinaryPrimitives.ReadInt32LittleEndian(h[8..]);
        int blockSize = BinaryPrimitives.ReadInt32LittleEndian(h[428..]);
        int subHeaderBlocks = BinaryPrimitives.ReadInt32LittleEndian(h[432..]);
        uint bitmapBlocks = BinaryPrimitives.ReadUInt32LittleEndian(h[436..]);
        ulong maxMapnr = BinaryPrimitives.ReadUInt32LittleEndian(h[440..]);
        int nrCpus = BinaryPrimitives.ReadInt32LittleEndian(h[460..]);
        if (version < 1 || version > 100)
        {
            throw new VmiFormatException($"kdump header_version {version} is not a version makedumpfile writes (1-6 and later).", path, 8);
        }

        if (blockSize != (int)Amd64.PageSize)
        {
            throw new VmiFormatException($"kdump block_size is {blockSize}; x86 dumps use the 4096-byte page size.", path, 428);
        }

        if (subHeaderBlocks < 0 || subHeaderBlocks > 1 << 20 || bitmapBlocks == 0 || bitmapBlocks > 1u << 28 || bitmapBlocks % 2 != 0)
        {
            throw new VmiFormatException($"kdump sub_hdr_size {subHeaderBlocks} or bitmap_blocks {bitmapBlocks} is implausible (bitmap_blocks must be even: two bitmaps of equal size).", path, 432);
        }

        ReadOnlySpan<byte> sub = logical.Get(blockSize, 104, "the kdump_sub_header", scratch[512..]);
        ulong physBase = BinaryPrimitives.ReadUInt64LittleEndian(sub);
        if (version >= 6)
        {
            maxMapnr = BinaryPrimitives.ReadUInt64LittleEndian(sub[96..]);
        }

        long bitmapBytes = (long)bitmapBlocks * blockSize / 2;
        if (maxMapnr == 0 || maxMapnr > ImageSource.MaxPhysicalAddress >> Amd64.PageShift || (ulong)bitmapBytes * 8 < maxMapnr)
        {
            throw new VmiFormatException($"kdump max_mapnr {maxMapnr} does not fit the bitmaps ({bitmapBytes} bytes each) or the 52-bit physical address space.", path, version >= 6 ? blockSize + 96 : 440);
        }

        string? vmcoreinfo = null;
        var notes = new ElfNotes.Collector(path);
        if (version >= 3)
        {
            long viOffset = BinaryPrimitives.ReadInt64LittleEndian(sub[32..]);
            long viSize = BinaryPrimitives.ReadInt64LittleEndian(sub[40..]);
            if (viSize > 1 << 20)
            {
                throw new VmiFormatException($"the VMCOREINFO block claims {viSize} bytes; the kernel writes at most a few KiB (limit 1 MiB).", path, blockSize + 40);
            }

            if (viSize > 0)
            {
                vmcoreinfo = System.Text.Encoding.UTF8.GetString(logical.ReadArray(viOffset, viSize, "the VMCOREINFO block")).TrimEnd('\0');
            }
        }

        if (version >= 4)
        {
            long noteOffset = BinaryPrimitives.ReadInt64LittleEndian(sub[48..]);
            long noteSize = BinaryPrimitives.ReadInt64LittleEndian(sub[56..]);
            if (noteSize > 16 << 20)
            {
                throw new VmiFormatException($"the ELF notes claim {noteSize} bytes; register and VMCOREINFO notes of even thousands of vCPUs fit in far less (limit 16 MiB).", path, blockSize + 56);
            }

            if (noteSize > 0)
            {
                byte[] noteBytes = logical.ReadArray(noteOffset, noteSize, "the ELF notes");
                ElfNotes.Walk(noteBytes, noteOffset, path, notes.Add);
            }
        }

        long bitmapOffset = (long)(1 + subHeaderBlocks) * blockSize;
        int mapBytes = (int)((maxMapnr + 7) / 8);
        byte[] dumpable = logical.ReadArray(bitmapOffset + bitmapBytes, mapBytes, "the second (dumped pages) bitmap");
        var source = new KdumpSource(logical, dumpable, maxMapnr, bitmapOffset + (2 * bitmapBytes), blockSize);
        (Registers[] regs, bool hasControl, string regSource) = notes.Result();
        vmcoreinfo ??= notes.Vmcoreinfo;
        _ = physBase;
        _ = nrCpus;
        return hasControl
            ? new ParsedImage(MemoryImageFormat.Kdump, source, regs, regSource, vmcoreinfo)
            : new ParsedImage(MemoryImageFormat.Kdump, source, [], regSource, vmcoreinfo) { PartialRegisters = regs };
    }
}

internal sealed unsafe class KdumpSource : ImageSource
{
    private const int DescriptorSize = 24;
    private readonly LogicalFile _file;
    private readonly ulong[] _bits;
    private readonly long[] _rank; // dumped pages before each 64-page word
    private readonly ulong _maxMapnr;
    private readonly long _descriptors;
    private readonly int _blockSize;
    private readonly PagePool _pool;
    private readonly PhysicalRange[] _ranges;

    public KdumpSource(LogicalFile file, byte[] bitmap, ulong maxMapnr, long descriptors, int blockSize)
    {
        _file = file;
        _maxMapnr = maxMapnr;
        _descriptors = descriptors;
        _blockSize = blockSize;
        _pool = new PagePool(blockSize);
        int words = (int)((maxMapnr + 63) / 64);
        _bits = new ulong[words];
        Buffer.BlockCopy(bitmap, 0, _bits, 0, Math.Min(bitmap.Length, words * 8));
        if (maxMapnr % 64 != 0)
        {
            _bits[^1] &= (1UL << (int)(maxMapnr % 64)) - 1;
        }

        _rank = new long[words + 1];
        var ranges = new List<PhysicalRange>();
        for (int w = 0; w < words; w++)
        {
            _rank[w + 1] = _rank[w] + BitOperations.PopCount(_bits[w]);
        }

        long count = _rank[words];
        if (count > (file.Length - descriptors) / DescriptorSize)
        {
            throw new VmiFormatException($"the bitmap lists {count} dumped pages, but the page descriptors at 0x{descriptors:x} would run past the end of the dump ({file.Length} bytes): the file is truncated.", file.File.Path, descriptors);
        }

        ulong runStart = 0;
        bool inRun = false;
        for (ulong pfn = 0; pfn < maxMapnr; pfn++)
        {
            ulong word = _bits[pfn / 64];
            if (word == 0 && pfn % 64 == 0 && !inRun)
            {
                pfn += 63;
                continue;
            }

            bool set = (word & (1UL << (int)(pfn % 64))) != 0;
            if (set && !inRun)
            {
                runStart = pfn;
                inRun = true;
            }
            else if (!set && inRun)
            {
                ranges.Add(new PhysicalRange(new Pa(runStart << Amd64.PageShift), (pfn - runStart) << Amd64.PageShift));
                inRun = false;
            }
        }

        if (inRun)
        {
            ranges.Add(new PhysicalRange(new Pa(runStart << Amd64.PageShift), (maxMapnr - runStart) << Amd64.PageShift));
        }

        _ranges = ranges.ToArray();
    }

    public override ulong MaxGfn => _maxMapnr - 1;

    public override IReadOnlyList<PhysicalRange> Ranges => _ranges;

    public override bool TryMapPage(ulong gfn, [NotNullWhen(true)] out MappedPage? page)
    {
        page = null;
        if (gfn >= _maxMapnr)
        {
            return false;
        }

        ulong word = _bits[gfn / 64];
        ulong bit = 1UL << (int)(gfn % 64);
        if ((word & bit) == 0)
        {
            return false;
        }

        long index = _rank[gfn / 64] + BitOperations.PopCount(word & (bit - 1));
        long at = _descriptors + (index * DescriptorSize);
        Span<byte> scratch = stackalloc byte[DescriptorSize];
        ReadOnlySpan<byte> d = _file.Get(at, DescriptorSize, $"the page descriptor of frame 0x{gfn:x}", scratch);
        long offset = BinaryPrimitives.ReadInt64LittleEndian(d);
        uint size = BinaryPrimitives.ReadUInt32LittleEndian(d[8..]);
        uint flags = BinaryPrimitives.ReadUInt32LittleEndian(d[12..]);
        string path = _file.File.Path;
        if (size == 0 || size > _blockSize || offset < 0 || offset > _file.Length - size)
        {
            throw new VmiFormatException($"the page descriptor of frame 0x{gfn:x} stores {size} bytes at offset 0x{offset:x}: outside the dump ({_file.Length} bytes) or larger than a page.", path, at);
        }

        uint compression = flags & (KdumpParser.CompressedZlib | KdumpParser.CompressedLzo | KdumpParser.CompressedSnappy | KdumpParser.CompressedZstd);
        if (compression is KdumpParser.CompressedLzo or KdumpParser.CompressedSnappy or KdumpParser.CompressedZstd)
        {
            string name = compression switch { KdumpParser.CompressedLzo => "LZO", KdumpParser.CompressedSnappy => "snappy", _ => "zstd" };
            throw new VmiFormatException($"frame 0x{gfn:x} is compressed with {name}; this reader supports uncompressed and zlib pages. Convert the dump with 'makedumpfile -c' (zlib) or write it with 'dump-guest-memory -z'.", path, at + 12);
        }

        byte[]? rented = null;
        byte* buffer = _pool.Rent();
        bool ok = false;
        try
        {
            var output = new Span<byte>(buffer, _blockSize);
            rented = ArrayPool<byte>.Shared.Rent((int)size);
            ReadOnlySpan<byte> data = _file.Get(offset, (int)size, $"the data of frame 0x{gfn:x}", rented);
            if (compression == 0)
            {
                if (size != _blockSize)
                {
                    throw new VmiFormatException($"uncompressed frame 0x{gfn:x} stores {size} bytes, not a page of {_blockSize}.", path, at + 8);
                }

                data.CopyTo(output);
            }
            else
            {
                Inflate(data, output, gfn, path, offset);
            }

            page = new PooledPage(new Gfn(gfn), _pool, buffer);
            ok = true;
            return true;
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }

            if (!ok)
            {
                _pool.Return(buffer);
            }
        }
    }

    private static void Inflate(ReadOnlySpan<byte> data, Span<byte> output, ulong gfn, string path, long offset)
    {
        fixed (byte* p = data)
        {
            try
            {
                using var input = new UnmanagedMemoryStream(p, data.Length);
                using var z = new ZLibStream(input, CompressionMode.Decompress);
                int n = z.ReadAtLeast(output, output.Length, throwOnEndOfStream: false);
                Span<byte> extra = stackalloc byte[1];
                if (n != output.Length || z.Read(extra) != 0)
                {
                    throw new VmiFormatException($"zlib data of frame 0x{gfn:x} inflates to {(n != output.Length ? n.ToString(System.Globalization.CultureInfo.InvariantCulture) : "more than")} bytes, not a page of {output.Length}.", path, offset);
                }
            }
            catch (Exception e) when (e is InvalidDataException or IOException)
            {
                // corrupt streams surface as InvalidDataException or, from the native inflater, ZLibException (an IOException)
                throw new VmiFormatException($"zlib data of frame 0x{gfn:x} is corrupt ({e.Message}).", path, offset);
            }
        }
    }

    public override void Dispose()
    {
        _pool.Dispose();
        _file.File.Dispose();
    }
}
