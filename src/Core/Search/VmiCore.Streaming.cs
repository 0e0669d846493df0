using Vmi.Core.Arch.Amd64;

namespace Vmi.Core;

/// <summary>The streaming read: a virtual range as runs of contiguous physical memory, copied straight from the driver.</summary>
public sealed partial class VmiCore
{
    /// <summary>
    /// Reads <paramref name="buffer"/> from guest memory as runs: each translation covers a whole leaf (4 KiB, 2 MiB,
    /// 1 GiB or 4 MiB page), a page-table walk reuses the upper levels of the last walk in the same 2 MiB region, and
    /// the bytes are copied straight into <paramref name="buffer"/> by the driver where it can (<see cref="IVmiDirectMemory"/>),
    /// else page by page through the page cache. Translations are taken from the V2P cache when it has them but not
    /// added to it, so a long read does not push out the translations in use; pages the page cache holds are copied from
    /// it, the others are not added to it. Unreadable memory is handled as <paramref name="mode"/> says, page by page,
    /// exactly as <see cref="Read(AccessContext, Span{byte}, ReadMode)"/>. (<see cref="Read(AccessContext, Span{byte})"/>
    /// stays page by page through both caches: what it read is cached, and stays readable if the backing goes.)
    /// </summary>
    public ReadResult ReadStreaming(AccessContext ctx, Span<byte> buffer, ReadMode mode = ReadMode.Strict)
    {
        List<ulong>? unreadable = null;
        int done = ReadRuns(ctx, buffer, mode, ref unreadable, out ulong? fault);
        return new ReadResult(done, fault, (IReadOnlyList<ulong>?)unreadable ?? []);
    }

    /// <summary>The streaming read without a result object (a strict read of one page at a time must not allocate).</summary>
    private int ReadRuns(in AccessContext ctx, Span<byte> buffer, ReadMode mode, ref List<ulong>? unreadable, out ulong? faultAddress)
    {
        faultAddress = null;
        ObjectDisposedException.ThrowIf(_disposed, this);
        CheckRange(ctx.Address, buffer.Length);
        if (_read is null)
        {
            throw new CapabilityNotSupportedException(_driver.Name, VmiCapability.Read);
        }

        bool paging = ctx.Mechanism.Kind == TranslationKind.Paging;
        Pa root = default;
        PagingMode pagingMode = default;
        PagingFeatures features = default;
        if (paging)
        {
            root = ctx.Mechanism.Root ?? ThrowRootNotPresent();
            pagingMode = ctx.Mechanism.Mode ?? PagingMode;
            features = PagingFeatures;
        }

        int done = 0;
        while (done < buffer.Length)
        {
            ulong address = ctx.Address + (ulong)done;
            int left = buffer.Length - done;
            ulong pa;
            int chunk;
            TranslationResult fault = default;
            bool translated = true;
            if (!paging)
            {
                pa = address;
                chunk = left;
            }
            else
            {
                fault = TranslateForStream(root, address, pagingMode, features);
                translated = fault.Success;
                pa = fault.Pa.Value;
                ulong leaf = Amd64.BytesOf(fault.PageSize);
                chunk = (int)Math.Min(leaf - (address & (leaf - 1)), (ulong)left);
            }

            int copied = translated ? CopyPhysical(pa, buffer.Slice(done, chunk)) : 0;
            done += copied;
            if (copied == chunk)
            {
                continue;
            }

            // The page at `bad` cannot be read: its translation failed, or its frame has no backing.
            ulong bad = address + (ulong)copied;
            int inPage = (int)Math.Min(Amd64.PageSize - (bad & Amd64.PageMask), (ulong)(buffer.Length - done));
            switch (mode)
            {
                case ReadMode.Strict:
                    ThrowUnreadable(ctx, bad, pa + (ulong)copied, fault, translated);
                    break;
                case ReadMode.UntilFault:
                    faultAddress = bad;
                    return done;
                default:
                    buffer.Slice(done, inPage).Clear();
                    (unreadable ??= []).Add(bad & ~Amd64.PageMask);
                    done += inPage;
                    break;
            }
        }

        return buffer.Length;
    }

    /// <summary>The translation of <paramref name="va"/>: from the V2P cache if there (without counting or reordering), else a walk through the shortcut, not cached.</summary>
    private TranslationResult TranslateForStream(Pa root, ulong va, PagingMode mode, PagingFeatures features)
    {
        if (_v2pEnabled && _v2p.TryPeek(new V2PKey(root.Value, va & ~_pageMask, mode), out ulong packed))
        {
            return Unpack(packed, va & _pageMask);
        }

        var reader = new TableReader(this);
        int slot = ShortcutIndex(root.Value, va);
        TranslationResult r = Amd64.TranslateWithShortcut(ref reader, mode, root, new Va(va), PhysicalAddressWidth, features, ref _shortcuts[slot]);
        _shortcutsFilled |= 1UL << slot;
        return r;
    }

    /// <summary>
    /// Copies guest-physical memory from <paramref name="pa"/> into <paramref name="destination"/>; returns the bytes
    /// copied before the first frame with no backing. Pages the cache holds are copied from it (so a read agrees with
    /// what was read before, even if the driver's backing changed since); each stretch of pages it does not hold is
    /// read by the driver straight into the destination where it can, else page by page through the cache.
    /// </summary>
    private int CopyPhysical(ulong pa, Span<byte> destination)
    {
        int done = 0;
        while (done < destination.Length)
        {
            ulong at = pa + (ulong)done;
            int offset = (int)(at & _pageMask);
            if (_direct is not null && !IsPageCached(at >> _pageShift))
            {
                // The stretch of pages the cache does not hold, from here.
                int stretch = Math.Min((int)Amd64.PageSize - offset, destination.Length - done);
                while (done + stretch < destination.Length && !IsPageCached((at + (ulong)stretch) >> _pageShift))
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

            if (!TryGetPage(at >> _pageShift, out ReadOnlySpan<byte> page))
            {
                return done;
            }

            int chunk = Math.Min(page.Length - offset, destination.Length - done);
            page.Slice(offset, chunk).CopyTo(destination[done..]);
            done += chunk;
        }

        return done;
    }

    /// <summary>True if the page cache holds frame <paramref name="gfn"/> (no hit or miss counted, no order changed).</summary>
    private bool IsPageCached(ulong gfn)
    {
        ref PageFront slot = ref _front[(int)(gfn & (FrontSize - 1))];
        return (slot.Page is not null && (slot.Tag & ~FrontUntouched) == gfn + 1) || (_pagesEnabled && _pages.TryPeek(gfn, out _));
    }
}
