using System.Diagnostics.CodeAnalysis;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Dump;

/// <summary>Where an image's frames come from.</summary>
internal abstract class ImageSource : IDisposable
{
    /// <summary>Physical addresses above this are refused as oversized (the architecture's 52-bit limit).</summary>
    public const ulong MaxPhysicalAddress = 1UL << Amd64.MaxPhysicalAddressWidth;

    public abstract ulong MaxGfn { get; }

    public abstract IReadOnlyList<PhysicalRange> Ranges { get; }

    public abstract bool TryMapPage(ulong gfn, [NotNullWhen(true)] out MappedPage? page);

    /// <summary>Reads the stored bytes from <paramref name="pa"/> on into <paramref name="destination"/>, up to the end of their run; 0 where memory is not stored as such.</summary>
    public virtual int ReadDirect(ulong pa, Span<byte> destination) => 0;

    /// <summary>The file the frames are read from.</summary>
    public abstract ImageFile File { get; }

    public abstract void Dispose();
}

/// <summary>A run of physical memory stored at a file offset (or, with <see cref="FileOffset"/> -1, zeros).</summary>
internal readonly record struct Run(ulong Pa, ulong Length, long FileOffset)
{
    public ulong End => Pa + Length;
}

/// <summary>
/// Frames backed by runs of the image file (raw, ELF, LiME, Xen), read into pooled page buffers (a frame split across
/// runs, from unaligned segments, is assembled, zeros where nothing backs it). Zero-fill runs share one zero page.
/// </summary>
internal sealed unsafe class RunSource : ImageSource
{
    private static readonly byte[] s_zeroPage = new byte[Amd64.PageSize];
    private readonly ImageFile _file;
    private readonly Run[] _runs;
    private readonly ulong[] _starts;
    private readonly PagePool _pool = new((int)Amd64.PageSize);
    private readonly PhysicalRange[] _ranges;

    /// <param name="runs">Runs with their description for errors (e.g. "program header 3 at offset 0x40").</param>
    public RunSource(ImageFile file, List<(Run Run, string What, long At)> runs)
    {
        _file = file;
        runs.RemoveAll(r => r.Run.Length == 0);
        runs.Sort((a, b) => a.Run.Pa.CompareTo(b.Run.Pa));
        for (int i = 0; i < runs.Count; i++)
        {
            (Run r, string what, long at) = runs[i];
            if (r.Pa >= MaxPhysicalAddress || r.Length > MaxPhysicalAddress - r.Pa)
            {
                throw new VmiFormatException($"{what} describes physical memory 0x{r.Pa:x}+0x{r.Length:x}, beyond the 52-bit physical address space: the header is corrupt.", file.Path, at);
            }

            if (r.FileOffset >= 0 && !file.Contains(r.FileOffset, (long)Math.Min(r.Length, long.MaxValue)))
            {
                throw new VmiFormatException($"{what} says 0x{r.Length:x} bytes of memory are stored at file offset 0x{r.FileOffset:x}, past the end of the file ({file.Length} bytes): the image is truncated.", file.Path, at);
            }

            if (i > 0 && runs[i - 1].Run.End > r.Pa)
            {
                throw new VmiFormatException($"{what} (physical 0x{r.Pa:x}-0x{r.End:x}) overlaps {runs[i - 1].What} (physical 0x{runs[i - 1].Run.Pa:x}-0x{runs[i - 1].Run.End:x}): an image must store each physical address once.", file.Path, at);
            }
        }

        _runs = runs.Select(r => r.Run).ToArray();
        _starts = _runs.Select(r => r.Pa).ToArray();
        var merged = new List<PhysicalRange>();
        foreach (Run r in _runs)
        {
            bool zero = r.FileOffset < 0;
            if (merged.Count > 0 && merged[^1].End.Value == r.Pa && merged[^1].ZeroFill == zero)
            {
                merged[^1] = merged[^1] with { Length = merged[^1].Length + r.Length };
            }
            else
            {
                merged.Add(new PhysicalRange(new Pa(r.Pa), r.Length) { ZeroFill = zero });
            }
        }

        _ranges = merged.ToArray();
        MaxGfn = _runs.Length == 0 ? 0 : (_runs[^1].End - 1) >> Amd64.PageShift;
    }

    public override ulong MaxGfn { get; }

    public override IReadOnlyList<PhysicalRange> Ranges => _ranges;

    public override ImageFile File => _file;

    /// <summary>Index of the last run starting at or before <paramref name="pa"/>, or -1.</summary>
    private int Find(ulong pa)
    {
        int i = Array.BinarySearch(_starts, pa);
        return i >= 0 ? i : ~i - 1;
    }

    /// <summary>
    /// The stored bytes of a run from <paramref name="pa"/> on. A large read is one positioned read straight into the
    /// caller's buffer, then the same change check a page read makes (one fstat). Small reads that follow each other
    /// (a stream read a page at a time) are served from a read-ahead window of <see cref="AheadSize"/> bytes, filled
    /// by one positioned read and one change check, so such a stream makes two system calls per window, not per read.
    /// What the window holds was checked when it was read, as a cached page is: it stays what the file held then.
    /// </summary>
    public override int ReadDirect(ulong pa, Span<byte> destination)
    {
        int i = Find(pa);
        if (i < 0 || destination.IsEmpty || _runs[i].End <= pa || _runs[i].FileOffset < 0)
        {
            return 0;
        }

        Run r = _runs[i];
        int n = (int)Math.Min((ulong)destination.Length, r.End - pa);
        long offset = r.FileOffset + (long)(pa - r.Pa);
        if (n <= AheadSize / 4)
        {
            lock (_aheadGate)
            {
                if (_ahead is not null && pa >= _aheadPa && pa - _aheadPa + (ulong)n <= (ulong)_aheadLength)
                {
                    _ahead.AsSpan((int)(pa - _aheadPa), n).CopyTo(destination);
                    _aheadNext = pa + (ulong)n;
                    return n;
                }

                if (pa == _aheadNext)
                {
                    // Sequential: read ahead from here to the window's size or the run's end, whichever comes first.
                    int fill = (int)Math.Min(AheadSize, r.End - pa);
                    _aheadLength = 0; // nothing valid until the read and its check succeed
                    _ahead ??= GC.AllocateUninitializedArray<byte>(AheadSize);
                    _file.Read(offset, _ahead.AsSpan(0, fill), "a memory run");
                    _file.CheckUnchanged(offset, "a memory run");
                    _aheadPa = pa;
                    _aheadLength = fill;
                    _ahead.AsSpan(0, n).CopyTo(destination);
                    _aheadNext = pa + (ulong)n;
                    return n;
                }

                _aheadNext = pa + (ulong)n;
            }
        }

        _file.Read(offset, destination[..n], "a memory run");
        _file.CheckUnchanged(offset, "a memory run");
        return n;
    }

    /// <summary>The read-ahead window of small sequential direct reads (bytes); fits a core's L2 cache.</summary>
    internal const int AheadSize = 128 * 1024;

    private readonly Lock _aheadGate = new();
    private byte[]? _ahead; // allocated by the first sequential small read
    private ulong _aheadPa;
    private int _aheadLength;
    private ulong _aheadNext = ulong.MaxValue; // where a read that follows the last small one starts

    public override bool TryMapPage(ulong gfn, [NotNullWhen(true)] out MappedPage? page)
    {
        page = null;
        if (gfn > MaxGfn)
        {
            return false;
        }

        ulong start = gfn << Amd64.PageShift;
        ulong end = start + Amd64.PageSize;
        int i = Find(start);
        bool whole = i >= 0 && _runs[i].End >= end;
        if (whole && _runs[i].FileOffset < 0)
        {
            page = new MappedPage(new Gfn(gfn), s_zeroPage);
            return true;
        }

        // Runs that cover only part of the frame: assembled, zeros where nothing backs it.
        int first = whole ? i : i >= 0 && _runs[i].End > start ? i : i + 1;
        if (first >= _runs.Length || _runs[first].Pa >= end)
        {
            return false;
        }

        byte* buffer = _pool.Rent();
        bool ok = false;
        try
        {
            var span = new Span<byte>(buffer, (int)Amd64.PageSize);
            if (!whole)
            {
                span.Clear();
            }

            long checkAt = -1;
            for (int k = first; k < _runs.Length && _runs[k].Pa < end; k++)
            {
                Run r = _runs[k];
                ulong from = Math.Max(r.Pa, start);
                ulong to = Math.Min(r.End, end);
                if (r.FileOffset >= 0)
                {
                    checkAt = r.FileOffset + (long)(from - r.Pa);
                    _file.Read(checkAt, span.Slice((int)(from - start), (int)(to - from)), "the data of a frame");
                }
            }

            if (checkAt >= 0)
            {
                _file.CheckUnchanged(checkAt, "the data of a frame");
            }

            ok = true;
        }
        finally
        {
            if (!ok)
            {
                _pool.Return(buffer);
            }
        }

        page = new PooledPage(new Gfn(gfn), _pool, buffer);
        return true;
    }

    public override void Dispose()
    {
        _pool.Dispose();
        _file.Dispose();
    }
}
