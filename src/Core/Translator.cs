using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Core;

/// <summary>
/// The translator: page-table walks (through the <see cref="PageSource"/>), the V2P cache, the walk shortcuts, the
/// paging mode and features every walk uses, and a filter of the frames that held page tables (so the front knows
/// which writes can change a translation). It changes no cache on its own when its inputs change: the rules live in
/// <c>VmiCore.Invalidate</c>. One thread at a time.
/// </summary>
internal sealed class Translator
{
    private readonly PageSource _pages;
    private readonly Func<Registers?> _vcpu0;
    private readonly LruCache<V2PKey, ulong> _v2p;
    private readonly ulong[] _tableFilter = new ulong[64]; // 4096-bit filter of GFNs that hold cached page tables
    private readonly Amd64.WalkShortcut[] _shortcuts = new Amd64.WalkShortcut[64]; // upper levels of recent walks, per 2 MiB region
    private ulong _shortcutsFilled; // bit i: _shortcuts[i] may be valid (a flush clears only these)
    private ulong _tableWordsSet;   // bit i: _tableFilter[i] may be non-zero (a flush clears only these)
    private bool _enabled = true;
    private PagingMode? _pagingMode;
    private PagingFeatures? _pagingFeatures;

    /// <param name="vcpu0">vCPU 0's registers, or null when the driver has none (for detecting the paging mode and features).</param>
    public Translator(PageSource pages, int physicalAddressWidth, int capacity, Func<Registers?> vcpu0)
    {
        _pages = pages;
        _vcpu0 = vcpu0;
        PhysicalAddressWidth = physicalAddressWidth;
        _v2p = new LruCache<V2PKey, ulong>("V2P", capacity);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int ShortcutIndex(ulong root, ulong va) => (int)(((va >> 21) ^ (root >> 12)) & 63);

    /// <summary>MAXPHYADDR used by walks (the front validates it and applies the cache rule when it changes).</summary>
    public int PhysicalAddressWidth { get; set; }

    // ---------------------------------------------------------------- paging mode and features

    /// <summary>True when the caller set the mode: it is kept, not re-detected after register writes.</summary>
    public bool ModeSetByCaller { get; private set; }

    /// <summary>True when the caller set the features: they are kept, not re-detected after register writes.</summary>
    public bool FeaturesSetByCaller { get; private set; }

    /// <summary>True once the features are known (set, or detected by a walk that needed them).</summary>
    public bool FeaturesKnown => _pagingFeatures is not null;

    public PagingMode PagingMode
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => _pagingMode ?? DetectedPagingMode();
    }

    public void SetPagingMode(PagingMode mode)
    {
        _pagingMode = mode;
        ModeSetByCaller = true;
    }

    /// <summary>Forgets a detected paging mode (vCPU 0's CR0/CR4/EFER may have changed); a mode the caller set stays.</summary>
    public void ForgetDetectedMode()
    {
        if (!ModeSetByCaller)
        {
            _pagingMode = null;
        }
    }

    public PagingFeatures PagingFeatures
    {
        get
        {
            if (_pagingFeatures is { } f)
            {
                return f;
            }

            DetectPaging();
            return _pagingFeatures!.Value;
        }
    }

    /// <summary>Sets the features; true if they differ from those walks used so far.</summary>
    public bool SetPagingFeatures(PagingFeatures value, bool byCaller)
    {
        FeaturesSetByCaller |= byCaller;
        bool changed = _pagingFeatures != value;
        _pagingFeatures = value;
        return changed;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private PagingMode DetectedPagingMode()
    {
        DetectPaging();
        return _pagingMode!.Value;
    }

    /// <summary>Fills whichever of the paging mode and features is not known yet from vCPU 0's registers (one query).</summary>
    private void DetectPaging()
    {
        Registers? registers = _vcpu0();
        _pagingMode ??= registers?.PagingMode ?? PagingMode.Ia32e;
        _pagingFeatures ??= FeaturesOf(registers);
    }

    /// <summary>The features a vCPU's registers give walks: both on when it has none or paging is off.</summary>
    public static PagingFeatures FeaturesOf(Registers? registers) =>
        registers is null || registers.PagingMode == PagingMode.Disabled ? PagingFeatures.All : registers.PagingFeatures;

    // ---------------------------------------------------------------- the V2P cache

    public bool Enabled => _enabled;

    public CacheStatistics Statistics => _v2p.Statistics(_enabled);

    public void Enable() => _enabled = true;

    /// <summary>Turns the V2P cache off (the caller then clears it: a cache rule).</summary>
    public void Disable() => _enabled = false;

    public void Resize(int capacity) => _v2p.Resize(capacity);

    public void ResetStatistics() => _v2p.ResetStatistics();

    /// <summary>Forgets every cached translation, walk shortcut and table note. Costs O(cached entries), not O(budget).</summary>
    public void Clear()
    {
        _v2p.Clear();
        for (ulong m = _shortcutsFilled; m != 0; m &= m - 1)
        {
            _shortcuts[BitOperations.TrailingZeroCount(m)] = default;
        }

        for (ulong m = _tableWordsSet; m != 0; m &= m - 1)
        {
            _tableFilter[BitOperations.TrailingZeroCount(m)] = 0;
        }

        _shortcutsFilled = 0;
        _tableWordsSet = 0;
    }

    /// <summary>Forgets the cached translation of the page holding <paramref name="ctx"/>'s address, and its region's shortcut.</summary>
    public bool Remove(AddressContext ctx)
    {
        PagingMode mode = ctx.Mode ?? PagingMode;
        _shortcuts[ShortcutIndex(ctx.Root.Value, ctx.Va.Value)] = default; // the upper levels may have changed too
        return _v2p.Remove(new V2PKey(ctx.Root.Value, ctx.Va.Value & ~Amd64.PageMask, mode));
    }

    /// <summary>True if frame <paramref name="gfn"/> may hold a page table a cached translation went through.</summary>
    public bool MayHoldTable(ulong gfn) => (_tableFilter[(gfn >> 6) & 63] & (1UL << (int)(gfn & 63))) != 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void NoteTable(ulong gfn)
    {
        int word = (int)((gfn >> 6) & 63);
        _tableFilter[word] |= 1UL << (int)(gfn & 63);
        _tableWordsSet |= 1UL << word;
    }

    // ---------------------------------------------------------------- translation

    private readonly struct V2PKey(ulong root, ulong page, PagingMode mode) : IEquatable<V2PKey>
    {
        private readonly ulong _root = root;
        private readonly ulong _pageAndMode = page | (ulong)mode; // the page's offset bits are zero: the mode fits there

        public bool Equals(V2PKey other) => _pageAndMode == other._pageAndMode && _root == other._root;

        public override bool Equals(object? obj) => obj is V2PKey k && Equals(k);

        public override int GetHashCode()
        {
            // Pages of one address space differ in bits 12 and up; fold them down, mixing in the root.
            ulong h = (_pageAndMode >> 12) ^ (_pageAndMode << 52) ^ (_root * 0x9E37_79B9_7F4A_7C15UL);
            return (int)h ^ (int)(h >> 32);
        }
    }

    private struct TableReader(Translator t) : IPageTableReader
    {
        public bool TryReadU64(ulong pa, out ulong value)
        {
            ulong gfn = pa >> Amd64.PageShift;
            t.NoteTable(gfn);
            if (!t._pages.TryGetPage(gfn, out ReadOnlySpan<byte> page))
            {
                value = 0;
                return false;
            }

            value = BinaryPrimitives.ReadUInt64LittleEndian(page[(int)(pa & Amd64.PageMask)..]);
            return true;
        }

        public bool TryReadU32(ulong pa, out uint value)
        {
            ulong gfn = pa >> Amd64.PageShift;
            t.NoteTable(gfn);
            if (!t._pages.TryGetPage(gfn, out ReadOnlySpan<byte> page))
            {
                value = 0;
                return false;
            }

            value = BinaryPrimitives.ReadUInt32LittleEndian(page[(int)(pa & Amd64.PageMask)..]);
            return true;
        }
    }

    /// <summary>Translates without throwing: a fault is a result. Uses and fills the V2P cache.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TranslationResult TryTranslate(AddressContext ctx)
    {
        PagingMode mode = ctx.Mode ?? PagingMode;
        var key = new V2PKey(ctx.Root.Value, ctx.Va.Value & ~Amd64.PageMask, mode);
        if (_enabled && _v2p.TryGet(key, out ulong packed))
        {
            return Unpack(packed, ctx.Va.Value & Amd64.PageMask);
        }

        return TranslateMiss(ctx, mode, key);
    }

    /// <summary>The V2P miss: a walk (through the shortcut when one fits), then the V2P insert. Kept out of line so the hit path stays small.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private TranslationResult TranslateMiss(AddressContext ctx, PagingMode mode, V2PKey key)
    {
        var reader = new TableReader(this);
        if (!_enabled)
        {
            return Amd64.Translate(ref reader, mode, ctx.Root, ctx.Va, PhysicalAddressWidth, null, PagingFeatures);
        }

        PagingFeatures features = PagingFeatures;
        int slot = ShortcutIndex(ctx.Root.Value, ctx.Va.Value);
        ref Amd64.WalkShortcut shortcut = ref _shortcuts[slot];
        TranslationResult r = Amd64.TranslateWithShortcut(ref reader, mode, ctx.Root, ctx.Va, PhysicalAddressWidth, features, ref shortcut);
        _shortcutsFilled |= 1UL << slot;
        if (r.Success)
        {
            _v2p.AddNew(key, Pack(r));
        }

        return r;
    }

    /// <summary>The translation of <paramref name="va"/> for a streaming read: from the V2P cache if there (without counting or reordering), else a walk through the shortcut, not cached.</summary>
    public TranslationResult TranslateForStream(Pa root, ulong va, PagingMode mode, PagingFeatures features)
    {
        if (_enabled && _v2p.TryPeek(new V2PKey(root.Value, va & ~Amd64.PageMask, mode), out ulong packed))
        {
            return Unpack(packed, va & Amd64.PageMask);
        }

        var reader = new TableReader(this);
        int slot = ShortcutIndex(root.Value, va);
        TranslationResult r = Amd64.TranslateWithShortcut(ref reader, mode, root, new Va(va), PhysicalAddressWidth, features, ref _shortcuts[slot]);
        _shortcutsFilled |= 1UL << slot;
        return r;
    }

    /// <summary>A full page walk with every level's entry (uncached; the V2P cache is not consulted).</summary>
    public PageWalk Walk(AddressContext ctx)
    {
        var reader = new TableReader(this);
        return Amd64.Walk(ref reader, ctx.Mode ?? PagingMode, ctx.Root, ctx.Va, PhysicalAddressWidth, PagingFeatures);
    }

    // A cached translation is one ulong: the frame's address in bits 63..12, and in the (always zero)
    // offset bits the page size (bits 11..10), NoExecute (bit 9) and the entry flags Present..Global (bits 8..0).
    // So a hit answers with the same flags and page size as the walk that filled it.
    private const ulong PackedFlagBits = 0x1FF;
    private const int PackedNxBit = 9;
    private const int PackedSizeShift = 10;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Pack(in TranslationResult r) =>
        (r.Pa.Value & ~Amd64.PageMask)
        | ((ulong)r.Flags & PackedFlagBits)
        | ((r.Flags & PageEntryFlags.NoExecute) != 0 ? 1UL << PackedNxBit : 0)
        | ((ulong)r.PageSize << PackedSizeShift);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TranslationResult Unpack(ulong packed, ulong offset)
    {
        var flags = (PageEntryFlags)(packed & PackedFlagBits);
        if ((packed & (1UL << PackedNxBit)) != 0)
        {
            flags |= PageEntryFlags.NoExecute;
        }

        return new TranslationResult(new Pa((packed & ~Amd64.PageMask) | offset), (PageSizeKind)((packed >> PackedSizeShift) & 3), flags, WalkFaultKind.None, PagingLevel.None);
    }
}
