using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Core;

/// <summary>
/// The cached page source: guest frames from the driver (<see cref="IVmiRead"/>, and <see cref="IVmiDirectMemory"/>
/// for runs), the GFN cache (an LRU of mapped pages) and the page front before it. It knows nothing of virtual
/// addresses; <see cref="Translator"/> reads page tables through it and <see cref="VmiCore"/> reads data through it.
/// What it holds is dropped only by <see cref="VmiCore"/>'s cache rules (<c>VmiCore.Invalidate</c>). One thread at a time.
/// </summary>
internal sealed class PageSource : IDisposable
{
    private readonly string _driverName;
    private readonly IVmiRead? _read;
    private readonly IVmiDirectMemory? _direct;
    private readonly Func<VmiException> _noRead;
    private readonly ulong _maxGfn;
    private readonly LruCache<ulong, MappedPage> _pages;
    private bool _enabled = true;
    private bool _disposed;

    /// <param name="noRead">The error for a read when the driver cannot read (unsupported, or refused as read-only).</param>
    public PageSource(string driverName, IVmiRead? read, IVmiDirectMemory? direct, ulong maxGfn, int capacity, Func<VmiException> noRead)
    {
        _driverName = driverName;
        _read = read;
        _direct = direct;
        _maxGfn = maxGfn;
        _noRead = noRead;
        _pages = new LruCache<ulong, MappedPage>("Page (GFN)", capacity, ReleasePage);
    }

    public bool CanRead => _read is not null;

    public bool Enabled => _enabled;

    public CacheStatistics Statistics
    {
        get
        {
            CacheStatistics s = _pages.Statistics(_enabled);
            return s with { Hits = s.Hits + _frontHits }; // hits in the page front are hits of this cache
        }
    }

    public void Enable() => _enabled = true;

    public void Disable()
    {
        _enabled = false;
        _pages.Clear();
    }

    public void Resize(int capacity)
    {
        SyncFront();
        _pages.Resize(capacity);
    }

    /// <summary>Drops every cached page (callers: <c>VmiCore.Invalidate</c> only).</summary>
    public void Clear() => _pages.Clear();

    /// <summary>Drops frame <paramref name="gfn"/> if cached (callers: <c>VmiCore.Invalidate</c> only).</summary>
    public bool Remove(ulong gfn) => _pages.Remove(gfn);

    /// <summary>Drops frame <paramref name="gfn"/> if the cache holds a copy of it rather than a live view (a copy would not see a write).</summary>
    public void RemoveIfCopy(ulong gfn)
    {
        if (_pages.TryPeek(gfn, out MappedPage? page) && !page.IsLive)
        {
            _pages.Remove(gfn);
        }
    }

    public void ResetStatistics()
    {
        _frontHits = 0;
        _pages.ResetStatistics();
    }

    // ---------------------------------------------------------------- the page front

    private readonly PageFront[] _front = new PageFront[FrontSize]; // direct-mapped, in front of _pages (see TryGetPage)
    private readonly int[] _touched = new int[64]; // front slots hit since the last SyncFront
    private int _touchedCount;                     // > _touched.Length: too many to list; SyncFront scans the front
    private long _frontHits;

    // The page front: a direct-mapped table (frame number modulo its size) of pages the cache holds, checked before
    // the LRU cache. A hit on a page that was hit before costs one compare and hands out the mapping's address; it
    // does not reorder the LRU list. The first hit after a page enters the front (or after the last SyncFront) marks
    // it touched and lists its slot; before the cache evicts or shrinks, SyncFront moves the touched pages to the
    // head of the LRU order, so eviction still takes pages that were not used since. (The order among pages touched
    // between two evictions is the order of their first touch: an approximation of LRU, as a CPU's is.)
    // The front never holds a page the cache has let go: every removal from the cache (eviction, flush, resize,
    // write) passes through ReleasePage, which clears the page's slot before the mapping is released.
    private const int FrontSize = 8192;
    private const ulong FrontUntouched = 1UL << 63; // in PageFront.Tag: not hit since it entered the front or the last sync

    private struct PageFront
    {
        public ulong Tag;    // gfn + 1 (0: empty), with FrontUntouched
        public nint Data;    // the mapping's address, or 0 for a page backed by a managed array
        public MappedPage? Page;
    }

    private void ReleasePage(MappedPage page)
    {
        ref PageFront slot = ref _front[(int)(page.Gfn.Value & (FrontSize - 1))];
        if (ReferenceEquals(slot.Page, page))
        {
            slot = default;
        }

        page.Dispose();
    }

    /// <summary>The bytes of frame <paramref name="gfn"/>, from the cache or the driver; false if the frame has no backing.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public unsafe bool TryGetPage(ulong gfn, out ReadOnlySpan<byte> page)
    {
        ref PageFront slot = ref _front[(int)(gfn & (FrontSize - 1))];
        if (slot.Tag == gfn + 1 && slot.Data != 0)
        {
            _frontHits++;
            page = new ReadOnlySpan<byte>((void*)slot.Data, (int)Amd64.PageSize);
            return true;
        }

        return TryGetPageCached(gfn, out page);
    }

    /// <summary>Moves the pages hit in the front since the last call to the head of the LRU order (before it evicts).</summary>
    private void SyncFront()
    {
        int n = _touchedCount;
        if (n == 0)
        {
            return;
        }

        if (n <= _touched.Length)
        {
            for (int i = 0; i < n; i++)
            {
                Promote(ref _front[_touched[i]]);
            }
        }
        else
        {
            for (int i = 0; i < FrontSize; i++)
            {
                Promote(ref _front[i]);
            }
        }

        _touchedCount = 0;
    }

    private void Promote(ref PageFront slot)
    {
        if (slot.Tag != 0 && (slot.Tag & FrontUntouched) == 0)
        {
            _pages.Touch(slot.Tag - 1);
            slot.Tag |= FrontUntouched;
        }
    }

    private unsafe void SetFront(ulong gfn, MappedPage page)
    {
        ref PageFront slot = ref _front[(int)(gfn & (FrontSize - 1))];
        Promote(ref slot); // the slot's page leaves the front: a touch not yet applied is applied now, or it would be lost
        slot.Tag = (gfn + 1) | FrontUntouched;
        slot.Data = (nint)page.Pointer;
        slot.Page = page;
    }

    private bool TryGetPageCached(ulong gfn, out ReadOnlySpan<byte> span)
    {
        int index = (int)(gfn & (FrontSize - 1));
        ref PageFront slot = ref _front[index];
        if (slot.Page is { } hit && (slot.Tag & ~FrontUntouched) == gfn + 1)
        {
            _frontHits++;
            if ((slot.Tag & FrontUntouched) != 0)
            {
                slot.Tag &= ~FrontUntouched; // first hit: list the slot for SyncFront
                int n = _touchedCount;
                if (n < _touched.Length)
                {
                    _touched[n] = index;
                }

                _touchedCount = n + 1;
            }

            span = hit.Span;
            return true;
        }

        if (_enabled && _pages.TryGet(gfn, out MappedPage? page))
        {
            SetFront(gfn, page);
            span = page.Span;
            return true;
        }

        if (TryGetPageSlow(gfn, out page))
        {
            span = page.Span;
            return true;
        }

        span = default;
        return false;
    }

    // ---------------------------------------------------------------- the driver

    private bool TryGetPageSlow(ulong gfn, [NotNullWhen(true)] out MappedPage? page)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        IVmiRead read = _read ?? throw _noRead();
        if (gfn > _maxGfn || !read.TryMapPage(new Gfn(gfn), out page))
        {
            page = null;
            return false;
        }

        if (page.Length != (int)Amd64.PageSize)
        {
            page.Dispose();
            throw new VmiDriverException($"The {_driverName} driver mapped frame 0x{gfn:x} as {page.Length} bytes, not a page of {Amd64.PageSize}.");
        }

        if (_enabled)
        {
            if (_pages.Count >= _pages.Capacity)
            {
                SyncFront(); // the eviction below must not take a page that is in use through the front
            }

            _pages.AddNew(gfn, page);
            SetFront(gfn, page);
        }
        else
        {
            // Uncached: hand out a copy so the mapping can go at once.
            var copy = new MappedPage(page.Gfn, page.Span.ToArray());
            page.Dispose();
            page = copy;
        }

        return true;
    }

    /// <summary>True if the cache holds frame <paramref name="gfn"/> (no hit or miss counted, no order changed).</summary>
    public bool IsCached(ulong gfn)
    {
        ref PageFront slot = ref _front[(int)(gfn & (FrontSize - 1))];
        return (slot.Page is not null && (slot.Tag & ~FrontUntouched) == gfn + 1) || (_enabled && _pages.TryPeek(gfn, out _));
    }

    /// <summary>
    /// Copies guest-physical memory from <paramref name="pa"/> into <paramref name="destination"/>; returns the bytes
    /// copied before the first frame with no backing. Pages the cache holds are copied from it (so a read agrees with
    /// what was read before, even if the driver's backing changed since); each stretch of pages it does not hold is
    /// read by the driver straight into the destination where it can, else page by page through the cache.
    /// </summary>
    public int CopyPhysical(ulong pa, Span<byte> destination)
    {
        int done = 0;
        while (done < destination.Length)
        {
            ulong at = pa + (ulong)done;
            int offset = (int)(at & Amd64.PageMask);
            if (_direct is not null && !IsCached(at >> Amd64.PageShift))
            {
                // The stretch of pages the cache does not hold, from here.
                int stretch = Math.Min((int)Amd64.PageSize - offset, destination.Length - done);
                while (done + stretch < destination.Length && !IsCached((at + (ulong)stretch) >> Amd64.PageShift))
                {
                    stretch = Math.Min(stretch + (int)Amd64.PageSize, destination.Length - done);
                }

                int n = _direct.ReadDirect(at, destination.Slice(done, stretch));
                if (n > 0)
                {
                    done += n;
                    continue;
                }
            }

            if (!TryGetPage(at >> Amd64.PageShift, out ReadOnlySpan<byte> page))
            {
                return done;
            }

            int chunk = Math.Min(page.Length - offset, destination.Length - done);
            page.Slice(offset, chunk).CopyTo(destination[done..]);
            done += chunk;
        }

        return done;
    }

    /// <summary>Releases every cached mapping.</summary>
    public void Dispose()
    {
        _disposed = true;
        _pages.Clear();
    }
}
