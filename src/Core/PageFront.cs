using System.Runtime.CompilerServices;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Core;

/// <summary>The page front: the first place a page is looked for (see the comment below).</summary>
public sealed partial class VmiCore
{
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
    private unsafe bool TryGetPage(ulong gfn, out ReadOnlySpan<byte> page)
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

        if (_pagesEnabled && _pages.TryGet(gfn, out MappedPage? page))
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
}
