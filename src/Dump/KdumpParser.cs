using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.IO.Compression;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Dump;

/// <summary>
/// The file as the kdump reader sees it: either the file itself, or the logical file that makedumpfile's
/// "flattened" format (what QEMU before 8.2 writes for kdump-*) describes as (offset, size, data) records.
/// </summary>
internal abstract class LogicalFile
{
    protected LogicalFile(ImageFile file) => File = file;

    public ImageFile File { get; }

    public abstract long Length { get; }

    /// <summary>The bytes at a logical offset, read into <paramref name="scratch"/> (at least <paramref name="length"/> bytes).</summary>
    public abstract ReadOnlySpan<byte> Get(long offset, int length, string what, Span<byte> scratch);

    /// <summary>The first logical offset at or after <paramref name="offset"/> that may hold non-zero bytes (holes read as zeros).</summary>
    public virtual long NextData(long offset) => offset;

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

internal sealed class FlatFile(ImageFile file) : LogicalFile(file)
{
    public override long Length => File.Length;

    public override long NextData(long offset) => File.NextData(offset);

    public override ReadOnlySpan<byte> Get(long offset, int length, string what, Span<byte> scratch)
    {
        Span<byte> into = scratch[..length];
        File.Read(offset, into, what);
        return into;
    }
}

/// <summary>makedumpfile's flattened format: a 4096-byte header, then big-endian {offset, size} records each followed by its data.</summary>
internal sealed class FlattenedFile : LogicalFile
{
    private readonly long[] _logical;
    private readonly long[] _sizes;
    private readonly long[] _fileOffsets;

    public FlattenedFile(ImageFile file)
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

            if (size == 0)
            {
                // makedumpfile writes no empty records; a run of them is what a zeroed or sparse tail looks like,
                // and walking it 16 bytes at a time would take hours.
                throw new VmiFormatException($"flattened record {records.Count} is empty (logical offset {logical}, 0 bytes) and there is no end marker before it: the dump is corrupt or has a zeroed tail.", file.Path, pos);
            }

            records.Add((logical, size, pos + 16, pos));

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

        int done = 0;
        while (done < length)
        {
            long at = offset + done;
            if (i < 0 || i >= _logical.Length || at < _logical[i] || at >= _logical[i] + _sizes[i])
            {
                throw new VmiFormatException($"{what}: logical offset 0x{at:x} is not stored in the flattened dump (a hole or a truncated file).", File.Path, at);
            }

            int chunk = (int)Math.Min(length - done, _logical[i] + _sizes[i] - at);
            File.Read(_fileOffsets[i] + (at - _logical[i]), scratch.Slice(done, chunk), what);
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

    public static ParsedImage Parse(ImageFile file)
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

        // 64-bit arithmetic throughout, and nothing allocated for the bitmap: it is scanned from the file in chunks,
        // so a huge max_mapnr costs only what the file really holds (and must fit in the file to begin with).
        long bitmapOffset = (long)(1 + subHeaderBlocks) * blockSize;
        long mapBytes = (long)((maxMapnr + 7) / 8);
        long mapAt = bitmapOffset + bitmapBytes;
        if (mapAt > logical.Length || mapBytes > logical.Length - mapAt)
        {
            throw new VmiFormatException($"kdump max_mapnr {maxMapnr} needs a {mapBytes}-byte page bitmap at logical offset 0x{mapAt:x}, but the dump is only {logical.Length} bytes: the header is corrupt or the file is truncated.", path, version >= 6 ? blockSize + 96 : 440);
        }

        var source = new KdumpSource(logical, mapAt, maxMapnr, bitmapOffset + (2 * bitmapBytes), blockSize);
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
    private const int ScanChunk = 64 << 10;
    private readonly LogicalFile _file;
    private readonly ulong[] _runFirst; // first frame of each run of dumped frames
    private readonly ulong[] _runCount;
    private readonly long[] _runIndex; // page descriptor index of each run's first frame
    private readonly ulong _maxMapnr;
    private readonly long _descriptors;
    private readonly int _blockSize;
    private readonly PagePool _pool;
    private readonly PhysicalRange[] _ranges;

    /// <summary>
    /// Scans the dumped-pages bitmap (maxMapnr bits at <paramref name="bitmapAt"/>) into runs of dumped frames. Memory
    /// grows with the number of runs, which the file bounds: each dumped page needs a 24-byte descriptor in the file,
    /// and the scan stops as soon as the bitmap lists more pages than the file has descriptors for.
    /// </summary>
    public KdumpSource(LogicalFile file, long bitmapAt, ulong maxMapnr, long descriptors, int blockSize)
    {
        _file = file;
        _maxMapnr = maxMapnr;
        _descriptors = descriptors;
        _blockSize = blockSize;
        string path = file.File.Path;
        long capacity = descriptors >= 0 && descriptors <= file.Length ? (file.Length - descriptors) / DescriptorSize : 0;
        var first = new List<ulong>();
        var counts = new List<ulong>();
        var index = new List<long>();
        long total = 0;
        ulong runStart = 0;
        bool inRun = false;
        void Close(ulong end)
        {
            ulong n = end - runStart;
            if ((ulong)total + n > (ulong)capacity)
            {
                throw new VmiFormatException($"the page bitmap lists at least {(ulong)total + n} dumped pages, but the page descriptors at 0x{descriptors:x} have room for only {capacity} in the dump ({file.Length} bytes): the file is truncated or the bitmap is corrupt.", path, descriptors);
            }

            first.Add(runStart);
            counts.Add(n);
            index.Add(total);
            total += (long)n;
            inRun = false;
        }

        long mapBytes = (long)((maxMapnr + 7) / 8);
        byte[] chunk = new byte[(int)Math.Min(ScanChunk, mapBytes)];
        for (long pos = 0; pos < mapBytes;)
        {
            if (!inRun)
            {
                // Skip holes of a sparse file: they read as zeros (no dumped pages), so a huge bitmap that is
                // mostly hole costs nothing to scan.
                pos = Math.Max(pos, Math.Min(mapBytes, file.NextData(bitmapAt + pos) - bitmapAt));
                if (pos >= mapBytes)
                {
                    break;
                }
            }

            int n = (int)Math.Min(chunk.Length, mapBytes - pos);
            ReadOnlySpan<byte> c = file.Get(bitmapAt + pos, n, "the second (dumped pages) bitmap", chunk);
            int k = 0;
            while (k < n)
            {
                int j = c[k..].IndexOfAnyExcept(inRun ? (byte)0xFF : (byte)0);
                if (j < 0)
                {
                    break; // the rest of the chunk continues the current state
                }

                k += j;
                byte b = c[k];
                for (int bit = 0; bit < 8; bit++)
                {
                    ulong pfn = ((ulong)(pos + k) * 8) + (ulong)bit;
                    if (pfn >= maxMapnr)
                    {
                        break;
                    }

                    bool set = ((b >> bit) & 1) != 0;
                    if (set && !inRun)
                    {
                        runStart = pfn;
                        inRun = true;
                    }
                    else if (!set && inRun)
                    {
                        Close(pfn);
                    }
                }

                k++;
            }

            pos += n;
        }

        if (inRun)
        {
            Close(maxMapnr);
        }

        _runFirst = first.ToArray();
        _runCount = counts.ToArray();
        _runIndex = index.ToArray();
        _ranges = new PhysicalRange[_runFirst.Length];
        for (int i = 0; i < _ranges.Length; i++)
        {
            _ranges[i] = new PhysicalRange(new Pa(_runFirst[i] << Amd64.PageShift), _runCount[i] << Amd64.PageShift);
        }

        _pool = new PagePool(blockSize);
    }

    public override ulong MaxGfn => _maxMapnr - 1;

    public override ImageFile File => _file.File;

    public override IReadOnlyList<PhysicalRange> Ranges => _ranges;

    public override bool TryMapPage(ulong gfn, [NotNullWhen(true)] out MappedPage? page)
    {
        page = null;
        if (gfn >= _maxMapnr)
        {
            return false;
        }

        int run = Array.BinarySearch(_runFirst, gfn);
        run = run >= 0 ? run : ~run - 1;
        if (run < 0 || gfn - _runFirst[run] >= _runCount[run])
        {
            return false;
        }

        long index = _runIndex[run] + (long)(gfn - _runFirst[run]);
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

            _file.File.CheckUnchanged(offset, "the data of a frame");

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
                    throw new VmiFormatException($"zlib data of frame 0x{gfn:x} {(n != output.Length ? $"inflates to {n} bytes, not a page of {output.Length}" : $"inflates to more than a page ({output.Length} bytes)")}: the dump is corrupt.", path, offset);
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
