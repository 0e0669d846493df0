using Vmi.Core.Arch.Amd64;

namespace Vmi.Core.Search;

/// <summary>One match: where it starts (in the searched address space) and the bytes found there.</summary>
public readonly record struct SearchHit(ulong Address, byte[] Bytes);

/// <summary>How far a search has come.</summary>
public readonly record struct SearchProgress(ulong BytesDone, ulong BytesTotal, int Hits);

/// <summary>
/// A search of one range for a <see cref="BytePattern"/>, done in chunks: each <see cref="Next"/> reads the next
/// chunk with a streaming read (<see cref="VmiCore.ReadStreaming"/>) and scans it, so a caller that serialises access
/// to the guest takes its lock once per chunk, not once per page. Matches across chunk boundaries are found (the last
/// <c>Length - 1</c> bytes are carried over); nothing matches across memory that cannot be read (a page that does not
/// translate or has no backing is skipped). The search never reports a match twice.
/// </summary>
public sealed class MemorySearch
{
    /// <summary>Bytes read per chunk unless told otherwise.</summary>
    public const int DefaultChunkSize = 1 << 20;

    private readonly BytePattern _pattern;
    private readonly AccessContext _start;
    private readonly byte[] _window; // carried bytes, then the chunk
    private int _carried;
    private ulong _carriedFrom;

    public MemorySearch(BytePattern pattern, AccessContext start, ulong length, int chunkSize = DefaultChunkSize)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkSize, 1);
        if (length > 0 && start.Address + (length - 1) < start.Address)
        {
            throw new ArgumentOutOfRangeException(nameof(length), $"The range 0x{start.Address:x} + 0x{length:x} runs past the end of the address space; shorten it.");
        }

        _pattern = pattern;
        _start = start;
        Length = length;
        ChunkSize = (int)Math.Min((ulong)chunkSize, Math.Max(length, 1));
        _window = new byte[pattern.Length - 1 + ChunkSize];
    }

    public BytePattern Pattern => _pattern;

    /// <summary>Bytes in the range.</summary>
    public ulong Length { get; }

    public int ChunkSize { get; }

    /// <summary>Bytes of the range scanned so far.</summary>
    public ulong Done { get; private set; }

    /// <summary>Hits reported so far.</summary>
    public int HitCount { get; private set; }

    /// <summary>The search stops after this many hits.</summary>
    public int MaxHits { get; init; } = int.MaxValue;

    public bool Completed => Done >= Length || HitCount >= MaxHits;

    public SearchProgress Progress => new(Done, Length, HitCount);

    /// <summary>Reads and scans the next chunk, adding its matches to <paramref name="hits"/> in address order; false once the search is complete.</summary>
    public bool Next(VmiCore core, ICollection<SearchHit> hits)
    {
        ArgumentNullException.ThrowIfNull(core);
        ArgumentNullException.ThrowIfNull(hits);
        if (Completed)
        {
            return false;
        }

        int chunk = (int)Math.Min((ulong)ChunkSize, Length - Done);
        ulong address = _start.Address + Done;
        ReadResult read = core.ReadStreaming(_start.WithAddress(address), _window.AsSpan(_carried, chunk), ReadMode.ZeroFill);

        // Scan the readable stretches between unreadable pages; only the first may continue the carried bytes.
        int offset = _carried; // where the chunk starts in _window
        int from = 0;
        foreach (ulong page in read.UnreadablePages)
        {
            int badFrom = (int)Math.Max(0L, (long)(page - address));
            int badTo = (int)Math.Min((ulong)chunk, page + Amd64.PageSize - address);
            Scan(address, offset, from, badFrom, hits);
            _carried = 0; // nothing matches across the unreadable page
            from = badTo;
        }

        Scan(address, offset, from, chunk, hits);
        KeepTail(address, offset, from, chunk);
        Done += (ulong)chunk;
        return !Completed;
    }

    /// <summary>Where the readable stretch starting at chunk byte <paramref name="from"/> begins in _window: with the carried bytes when it opens the chunk.</summary>
    private int StretchStart(int offset, int from) => from == 0 && _carried > 0 ? offset - _carried : offset + from;

    /// <summary>Finds the matches in chunk bytes [from, to) (and the carried bytes before them when from is 0).</summary>
    private void Scan(ulong address, int offset, int from, int to, ICollection<SearchHit> hits)
    {
        int begin = StretchStart(offset, from);
        ulong beginAddress = from == 0 && _carried > 0 ? _carriedFrom : address + (ulong)from;
        int end = offset + to;
        if (end - begin < _pattern.Length)
        {
            return;
        }

        ReadOnlySpan<byte> data = _window.AsSpan(begin, end - begin);
        for (int at = _pattern.IndexOf(data); at >= 0 && HitCount < MaxHits; at = _pattern.IndexOf(data, at + 1))
        {
            hits.Add(new SearchHit(beginAddress + (ulong)at, data.Slice(at, _pattern.Length).ToArray()));
            HitCount++;
        }
    }

    /// <summary>Keeps the last Length - 1 readable bytes before the chunk's end: a match may start there and end in the next chunk.</summary>
    private void KeepTail(ulong address, int offset, int from, int chunk)
    {
        int begin = StretchStart(offset, from);
        int end = offset + chunk;
        int tail = Math.Min(_pattern.Length - 1, end - begin);
        _window.AsSpan(end - tail, tail).CopyTo(_window);
        _carried = tail;
        _carriedFrom = address + (ulong)chunk - (ulong)tail;
    }
}

/// <summary>Searches guest memory, streaming hits as they are found.</summary>
public static class MemorySearcher
{
    /// <summary>
    /// The matches of <paramref name="pattern"/> in [<paramref name="start"/>, + <paramref name="length"/>), in address
    /// order, at most <paramref name="maxHits"/>. Progress is reported after each chunk; cancellation is checked before each.
    /// </summary>
    public static IEnumerable<SearchHit> Search(
        VmiCore core,
        BytePattern pattern,
        AccessContext start,
        ulong length,
        int maxHits = int.MaxValue,
        IProgress<SearchProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(core);
        var search = new MemorySearch(pattern, start, length) { MaxHits = maxHits };
        return Run(core, search, progress, cancellationToken);
    }

    private static IEnumerable<SearchHit> Run(VmiCore core, MemorySearch search, IProgress<SearchProgress>? progress, CancellationToken cancellationToken)
    {
        var hits = new List<SearchHit>();
        while (!search.Completed)
        {
            cancellationToken.ThrowIfCancellationRequested();
            hits.Clear();
            search.Next(core, hits);
            foreach (SearchHit hit in hits)
            {
                yield return hit;
            }

            progress?.Report(search.Progress);
        }
    }
}
