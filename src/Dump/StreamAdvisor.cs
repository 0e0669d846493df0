namespace Vmi.Dump;

/// <summary>What an image file tells the kernel about its pages (posix_fadvise(2) advice values on Linux).</summary>
internal enum FileAdvice
{
    /// <summary>POSIX_FADV_NORMAL: the default read-ahead again, once a long stream has ended.</summary>
    Normal = 0,

    /// <summary>POSIX_FADV_SEQUENTIAL: a long stream is under way; the kernel reads further ahead.</summary>
    Sequential = 2,

    /// <summary>POSIX_FADV_DONTNEED: the range was consumed; its pages may leave the page cache.</summary>
    DontNeed = 4,
}

/// <summary>
/// Watches the reads of one image file and, for a long sequential stream (a search or an acquisition of the whole
/// image), tells the kernel that what was consumed is not needed again, so reading a 10 GiB image does not leave
/// 10 GB in the page cache and push out everything else. Reads that do not continue the last one (random reads,
/// page walks, a cached image read again piece by piece) start a new stream, and a stream shorter than
/// <see cref="Threshold"/> is never advised: small images and small reads keep their page cache, as before.
/// Once a stream passes the threshold, everything it consumed is advised in steps of at least <see cref="Step"/>
/// (whole pages only), so at most one step of it stays cached. Two streams are followed at once (a kdump reads its
/// page descriptors and its page data in turn). Advice is a hint: a failed call changes nothing.
/// </summary>
internal sealed class StreamAdvisor
{
    /// <summary>A stream is advised once it has consumed this many bytes.</summary>
    public const long DefaultThreshold = 128L << 20;

    /// <summary>Consumed bytes are advised in steps of this many.</summary>
    public const long DefaultStep = 32L << 20;

    /// <summary>A read that starts within this distance of where the last one ended continues the stream (a skipped cached page, a gap between runs).</summary>
    public const long MaxGap = 1L << 20;

    private const long PageSize = 4096;

    private readonly Action<FileAdvice, long, long> _advise;
    private readonly Lock _gate = new();
    private readonly Cursor[] _streams = [new() { Next = -1 }, new() { Next = -1 }];
    private long _clock;
    private bool _sequential; // SEQUENTIAL is in force (some stream is long)

    /// <param name="advise">Gives one piece of advice (offset and length 0 for the whole file).</param>
    public StreamAdvisor(Action<FileAdvice, long, long> advise, long threshold = DefaultThreshold, long step = DefaultStep)
    {
        ArgumentNullException.ThrowIfNull(advise);
        ArgumentOutOfRangeException.ThrowIfLessThan(step, PageSize);
        ArgumentOutOfRangeException.ThrowIfLessThan(threshold, step);
        _advise = advise;
        Threshold = threshold;
        Step = step;
    }

    public long Threshold { get; }

    public long Step { get; }

    /// <summary>Bytes advised DONTNEED so far (over every stream).</summary>
    public long AdvisedBytes { get; private set; }

    /// <summary>Notes a read of [<paramref name="offset"/>, + <paramref name="length"/>) and gives the advice it calls for.</summary>
    public void Observe(long offset, long length)
    {
        if (length <= 0 || offset < 0)
        {
            return;
        }

        lock (_gate)
        {
            Cursor s = Continued(offset) ?? Restart(offset);
            s.LastUse = ++_clock;
            s.Next = Math.Max(s.Next, offset + length);
            if (s.Next - s.Start < Threshold)
            {
                return;
            }

            s.Long = true;
            if (!_sequential)
            {
                _sequential = true;
                _advise(FileAdvice.Sequential, 0, 0);
            }

            long to = s.Next & ~(PageSize - 1); // whole pages consumed
            if (to - s.AdvisedTo >= Step)
            {
                _advise(FileAdvice.DontNeed, s.AdvisedTo, to - s.AdvisedTo);
                AdvisedBytes += to - s.AdvisedTo;
                s.AdvisedTo = to;
            }
        }
    }

    /// <summary>The stream that a read at <paramref name="offset"/> continues, if any.</summary>
    private Cursor? Continued(long offset)
    {
        foreach (Cursor s in _streams)
        {
            if (s.Next >= 0 && offset >= s.Next - MaxGap && offset <= s.Next + MaxGap)
            {
                return s;
            }
        }

        return null;
    }

    /// <summary>A new stream from <paramref name="offset"/>, in place of the one used least recently.</summary>
    private Cursor Restart(long offset)
    {
        Cursor s = _streams[0].LastUse <= _streams[1].LastUse ? _streams[0] : _streams[1];
        s.Start = s.Next = offset;
        s.AdvisedTo = offset & ~(PageSize - 1);
        s.Long = false;
        if (_sequential && !_streams.Any(x => x.Long))
        {
            _sequential = false;
            _advise(FileAdvice.Normal, 0, 0);
        }

        return s;
    }

    /// <summary>One sequential stream of reads (two are followed: kdump reads page descriptors and page data in turn).</summary>
    private sealed class Cursor
    {
        public long Start;     // where it began
        public long Next;      // where it has reached (-1: unused)
        public long AdvisedTo; // its bytes before this were advised DONTNEED
        public long LastUse;
        public bool Long;      // it passed the threshold
    }
}
