using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Core;

/// <summary>How a read treats memory it cannot reach.</summary>
public enum ReadMode
{
    /// <summary>Throw at the first page that cannot be read (<see cref="PageFaultException"/> or <see cref="GfnNotPresentException"/>).</summary>
    Strict,

    /// <summary>Return the bytes up to the first fault and the faulting address.</summary>
    UntilFault,

    /// <summary>Zero-fill unreadable pages and report which they were.</summary>
    ZeroFill,
}

/// <summary>The outcome of a non-strict read.</summary>
/// <param name="BytesRead">Bytes copied from guest memory (with <see cref="ReadMode.ZeroFill"/>, the whole length).</param>
/// <param name="FaultAddress">The first address that could not be read (<see cref="ReadMode.UntilFault"/>).</param>
/// <param name="UnreadablePages">Page-aligned addresses (in the context's address space) that were zero-filled.</param>
public sealed record ReadResult(int BytesRead, ulong? FaultAddress, IReadOnlyList<ulong> UnreadablePages)
{
    public bool Complete => FaultAddress is null && UnreadablePages.Count == 0;
}

/// <summary>
/// The engine's front: reads, strings and writes built once on two parts it composes — a cached page source
/// (<see cref="PageSource"/>: the driver's pages, the GFN cache and its front) and a translator (<see cref="Translator"/>:
/// walks, the V2P cache, paging modes) — plus the driver's other capabilities. Every rule that drops cached state
/// lives in one method, <see cref="Invalidate"/>. Used by one thread at a time (<see cref="VmiGuest"/> serialises).
/// </summary>
public sealed partial class VmiCore : IDisposable
{
    public const int DefaultCacheCapacity = 8192;
    public const int DefaultStringLimit = 64 * 1024;

    private readonly IVmiDriver _driver;
    private readonly IVmiWrite? _write;
    private readonly PageSource _pages;
    private readonly Translator _translator;
    private readonly int _pageShift;
    private readonly ulong _pageMask;
    private int _stringLimit = DefaultStringLimit;
    private bool _disposed;

    public VmiCore(IVmiDriver driver, int cacheCapacity = DefaultCacheCapacity)
    {
        ArgumentNullException.ThrowIfNull(driver);
        _driver = driver;
        IVmiRead? read = driver is ReadOnlyDriver ro && !ro.InnerSupports(VmiCapability.Read) ? null : driver as IVmiRead;
        _write = driver as IVmiWrite;
        Info = driver.Info;
        if (Info.PageSize != Amd64.PageSize || Info.PageShift != Amd64.PageShift)
        {
            // Translation works in 4 KiB pages; caches keyed by another page size would mix translations up.
            throw new ArgumentException(
                $"The {driver.Name} driver reports pages of {Info.PageSize} bytes (shift {Info.PageShift}); AMD64 guests have {Amd64.PageSize}-byte pages (shift {Amd64.PageShift}). Fix the driver's VmiInfo.",
                nameof(driver));
        }

        _pageShift = Info.PageShift;
        _pageMask = Info.PageSize - 1;
        _pages = new PageSource(driver.Name, read, driver as IVmiDirectMemory, Info.MaxGfn.Value, cacheCapacity, () => Missing(VmiCapability.Read));
        _translator = new Translator(_pages, Info.PhysicalAddressWidth, cacheCapacity, Vcpu0Registers);
    }

    private Registers? Vcpu0Registers() =>
        Supports(VmiCapability.QueryRegisters) ? ((IVmiQueryRegisters)_driver).GetRegisters(new VcpuId(0)) : null;

    public IVmiDriver Driver => _driver;

    public VmiInfo Info { get; }

    public uint PageSize => Info.PageSize;

    /// <summary>Where diagnostics go that must not throw (a failed resume in a pause guard). Defaults to <see cref="Trace"/>.</summary>
    public Action<string> Log
    {
        get => _log;
        set => _log = value ?? throw new ArgumentNullException(nameof(value), "Give a log action; use _ => { } to discard messages.");
    }

    private Action<string> _log = static m => Trace.WriteLine(m, "Vmi");

    /// <summary>The guest's physical-address width (MAXPHYADDR); entry bits above it are reserved.</summary>
    /// <remarks>
    /// Between 32 and 52 bits; starts as the driver's <see cref="VmiInfo.PhysicalAddressWidth"/>.
    /// Changing it drops the cached translations made under the old width.
    /// </remarks>
    public int PhysicalAddressWidth
    {
        get => _translator.PhysicalAddressWidth;
        set
        {
            if (value is < 32 or > Amd64.MaxPhysicalAddressWidth)
            {
                throw new ArgumentOutOfRangeException(nameof(value), value, $"A physical-address width (MAXPHYADDR, CPUID 0x80000008 EAX[7:0]) is from 32 to {Amd64.MaxPhysicalAddressWidth} bits.");
            }

            if (value != _translator.PhysicalAddressWidth)
            {
                _translator.PhysicalAddressWidth = value;
                Invalidate(GuestChange.TranslationParameters);
            }
        }
    }

    /// <summary>The session-wide byte limit of string reads.</summary>
    public int StringLimit
    {
        get => _stringLimit;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            _stringLimit = value;
        }
    }

    /// <summary>
    /// The paging mode used for paging contexts that do not name one: set explicitly, or detected from
    /// vCPU 0's registers when the driver has them; IA-32e 4-level otherwise.
    /// </summary>
    public PagingMode PagingMode
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => _translator.PagingMode;
        set => _translator.SetPagingMode(value); // cached translations are keyed by mode: nothing to drop
    }

    /// <summary>
    /// Whether translation honours CR4.PSE (4 MiB pages in 32-bit paging) and IA32_EFER.NXE (bit 63 is
    /// execute-disable, not reserved, in PAE and IA-32e paging): set explicitly, or detected from vCPU 0's
    /// registers with the paging mode. Both are on when the driver has no registers, or vCPU 0 has paging off
    /// (its CR4 and EFER then say nothing about tables walked in a mode given by the caller).
    /// </summary>
    /// <remarks>Changing it drops the cached translations made under the old features.</remarks>
    public PagingFeatures PagingFeatures
    {
        get => _translator.PagingFeatures;
        set
        {
            if ((value & ~PagingFeatures.All) != 0)
            {
                throw new ArgumentOutOfRangeException(nameof(value), value, $"Paging features are a combination of {PagingFeatures.Pse} and {PagingFeatures.Nxe}.");
            }

            if (_translator.SetPagingFeatures(value, byCaller: true))
            {
                Invalidate(GuestChange.TranslationParameters);
            }
        }
    }

    public bool Supports(VmiCapability capability) => capability switch
    {
        _ when _driver is ReadOnlyDriver ro => capability is VmiCapability.Read or VmiCapability.QueryProtection or VmiCapability.QueryRegisters && ro.InnerSupports(capability),
        VmiCapability.Read => _pages.CanRead,
        VmiCapability.Write => _write is not null,
        VmiCapability.QueryProtection => _driver is IVmiQueryProtection,
        VmiCapability.SetProtection => _driver is IVmiSetProtection,
        VmiCapability.QueryRegisters => _driver is IVmiQueryRegisters,
        VmiCapability.SetRegisters => _driver is IVmiSetRegisters,
        VmiCapability.ViewControl => _driver is IVmiViewControl,
        VmiCapability.EventControl => _driver is IVmiEventControl,
        VmiCapability.VmControl => _driver is IVmiVmControl,
        _ => false,
    };

    public IEnumerable<VmiCapability> Capabilities => Enum.GetValues<VmiCapability>().Where(Supports);

    // ---------------------------------------------------------------- the cache rules (the only place cached state is dropped)

    /// <summary>What happened that may make cached pages or translations wrong.</summary>
    private enum GuestChange
    {
        /// <summary>Bytes were written to a frame (through this engine).</summary>
        FrameWritten,

        /// <summary>A frame was given back to the hypervisor.</summary>
        FrameFreed,

        /// <summary>A view's frames were remapped or a view destroyed: any GFN may now read other memory.</summary>
        ViewsChanged,

        /// <summary>The driver put the guest back as it found it (monitors, access, views).</summary>
        StateReset,

        /// <summary>vCPU 0's registers were written: its CR0/CR4/EFER give the detected mode and features.</summary>
        Vcpu0RegistersSet,

        /// <summary>What every walk depends on changed: MAXPHYADDR, or CR4.PSE / EFER.NXE.</summary>
        TranslationParameters,
    }

    /// <summary>
    /// Every rule that drops cached state because the guest or what translation depends on changed, in one place
    /// (a caller's own flush, Clear-style, is the Flush* methods below and nothing else). Cached translations are keyed by root and paging mode, so a
    /// new CR3 or mode on any vCPU leaves them valid; what a walk reads (page tables) and what it depends on (MAXPHYADDR,
    /// PSE, NXE) do not. Pages the cache holds as live views see writes; copies do not.
    /// </summary>
    private void Invalidate(GuestChange change, ulong gfn = 0, Registers? registers = null)
    {
        switch (change)
        {
            case GuestChange.FrameWritten:
                _pages.RemoveIfCopy(gfn);
                if (_translator.MayHoldTable(gfn))
                {
                    _translator.Clear(); // the write may have changed a paging structure a cached translation went through
                }

                break;
            case GuestChange.FrameFreed:
                _pages.Remove(gfn);
                _translator.Clear();
                break;
            case GuestChange.ViewsChanged:
            case GuestChange.StateReset:
                _pages.Clear();
                _translator.Clear();
                break;
            case GuestChange.Vcpu0RegistersSet:
                _translator.ForgetDetectedMode(); // re-detected at the next walk that needs it
                if (!_translator.FeaturesSetByCaller && _translator.FeaturesKnown
                    && _translator.SetPagingFeatures(Translator.FeaturesOf(registers), byCaller: false))
                {
                    _translator.Clear(); // only if CR4.PSE or EFER.NXE changed
                }

                break;
            case GuestChange.TranslationParameters:
                _translator.Clear();
                break;
        }
    }

    // ---------------------------------------------------------------- caches

    public CacheStatistics GfnCacheStatistics => _pages.Statistics;

    public CacheStatistics V2PCacheStatistics => _translator.Statistics;

    public bool GfnCacheEnabled => _pages.Enabled;

    public bool V2PCacheEnabled => _translator.Enabled;

    public void EnableGfnCache() => _pages.Enable();

    public void DisableGfnCache() => _pages.Disable();

    public void ResizeGfnCache(int capacity) => _pages.Resize(capacity);

    public void FlushGfnCache() => _pages.Clear();

    public bool FlushGfnCacheEntry(Gfn gfn) => _pages.Remove(gfn.Value);

    public void EnableV2PCache() => _translator.Enable();

    public void DisableV2PCache()
    {
        _translator.Disable();
        _translator.Clear();
    }

    public void ResizeV2PCache(int capacity) => _translator.Resize(capacity);

    /// <summary>Forgets every cached translation. Costs O(cached entries), not O(budget): writes to page tables call it.</summary>
    public void FlushV2PCache() => _translator.Clear();

    /// <summary>Forgets the cached translation of the page holding <paramref name="ctx"/>'s address.</summary>
    public bool FlushV2PCacheEntry(AddressContext ctx) => _translator.Remove(ctx);

    public void ResetCacheStatistics()
    {
        _pages.ResetStatistics();
        _translator.ResetStatistics();
    }

    // ---------------------------------------------------------------- pages

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TryGetPage(ulong gfn, out ReadOnlySpan<byte> page) => _pages.TryGetPage(gfn, out page);

    /// <summary>Reads the frame <paramref name="gfn"/> whole into <paramref name="destination"/>; false if it has no backing.</summary>
    public bool TryReadPage(Gfn gfn, Span<byte> destination)
    {
        if (destination.Length < Info.PageSize)
        {
            throw new ArgumentException($"The destination holds {destination.Length} bytes; a page is {Info.PageSize}.", nameof(destination));
        }

        if (!TryGetPage(gfn.Value, out ReadOnlySpan<byte> page))
        {
            return false;
        }

        page.CopyTo(destination);
        return true;
    }

    // ---------------------------------------------------------------- translation

    /// <summary>Translates without throwing: a fault is a result. Uses and fills the V2P cache.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TranslationResult TryTranslateAddress(AddressContext ctx) => _translator.TryTranslate(ctx);

    /// <summary>Translates a virtual address; throws <see cref="PageFaultException"/> or <see cref="NonCanonicalAddressException"/>.</summary>
    public Pa TranslateAddress(AddressContext ctx)
    {
        TranslationResult r = TryTranslateAddress(ctx);
        if (!r.Success)
        {
            ThrowTranslationFault(ctx, r);
        }

        return r.Pa;
    }

    /// <summary>The physical address an access context refers to.</summary>
    public Pa TranslateAccessContext(AccessContext ctx)
    {
        if (ctx.Mechanism.Kind == TranslationKind.Direct)
        {
            return new Pa(ctx.Address);
        }

        return TranslateAddress(ToAddressContext(ctx));
    }

    /// <summary>A full page walk with every level's entry (uncached; the V2P cache is not consulted).</summary>
    public PageWalk WalkAddress(AddressContext ctx) => _translator.Walk(ctx);

    /// <summary>The translation root for <paramref name="vcpu"/>'s current CR3.</summary>
    public Pa GetTranslationRoot(VcpuId vcpu) => GetRegisters(vcpu).TranslationRoot;

    private static AddressContext ToAddressContext(in AccessContext ctx)
    {
        Pa root = ctx.Mechanism.Root ?? throw new RootNotPresentException();
        return new AddressContext(new Va(ctx.Address), root, ctx.Mechanism.Mode);
    }

    [DoesNotReturn]
    private void ThrowTranslationFault(AddressContext ctx, TranslationResult r) =>
        throw TranslationFault.ToException(ctx.Va, ctx.Root, ctx.Mode ?? PagingMode, r);

    /// <summary>Resolves one address to its frame: false (with no throw) when unreachable.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TryResolve(in AccessContext ctx, ulong address, out ulong pa, out TranslationResult fault)
    {
        if (ctx.Mechanism.Kind == TranslationKind.Direct)
        {
            pa = address;
            fault = default;
            return true;
        }

        Pa root = ctx.Mechanism.Root ?? ThrowRootNotPresent();
        fault = TryTranslateAddress(new AddressContext(new Va(address), root, ctx.Mechanism.Mode));
        pa = fault.Pa.Value;
        return fault.Success;
    }

    [DoesNotReturn]
    private static Pa ThrowRootNotPresent() => throw new RootNotPresentException();

    [DoesNotReturn]
    private void ThrowUnreadable(in AccessContext ctx, ulong address, ulong pa, in TranslationResult fault, bool translated)
    {
        if (!translated)
        {
            ThrowTranslationFault(new AddressContext(new Va(address), ctx.Mechanism.Root!.Value, ctx.Mechanism.Mode), fault);
        }

        throw new GfnNotPresentException(new Gfn(pa >> _pageShift),
            ctx.Mechanism.Kind == TranslationKind.Paging ? $"virtual address 0x{address:x} maps to it, but it is not backed by guest memory" : null);
    }

    // ---------------------------------------------------------------- reads

    private static void CheckRange(ulong address, int length)
    {
        if (length > 0 && address + (ulong)(length - 1) < address)
        {
            throw new ArgumentOutOfRangeException(nameof(length), $"A read of {length} bytes at 0x{address:x} runs past the end of the address space.");
        }
    }

    /// <summary>Fills <paramref name="buffer"/> from guest memory, across any number of pages; throws at the first unreadable page.</summary>
    public void Read(AccessContext ctx, Span<byte> buffer)
    {
        CheckRange(ctx.Address, buffer.Length);
        int done = 0;
        while (done < buffer.Length)
        {
            ulong address = ctx.Address + (ulong)done;
            int offset = (int)(address & _pageMask);
            int chunk = Math.Min((int)Info.PageSize - offset, buffer.Length - done);
            bool translated = TryResolve(ctx, address, out ulong pa, out TranslationResult fault);
            if (!translated || !TryGetPage(pa >> _pageShift, out ReadOnlySpan<byte> page))
            {
                ThrowUnreadable(ctx, address, pa, fault, translated);
                return;
            }

            page.Slice(offset, chunk).CopyTo(buffer.Slice(done, chunk));
            done += chunk;
        }
    }

    /// <summary>Reads with the given <paramref name="mode"/>; only <see cref="ReadMode.Strict"/> throws for unreadable memory.</summary>
    public ReadResult Read(AccessContext ctx, Span<byte> buffer, ReadMode mode)
    {
        if (mode == ReadMode.Strict)
        {
            Read(ctx, buffer);
            return new ReadResult(buffer.Length, null, []);
        }


        CheckRange(ctx.Address, buffer.Length);
        List<ulong>? unreadable = null;
        int done = 0;
        while (done < buffer.Length)
        {
            ulong address = ctx.Address + (ulong)done;
            int offset = (int)(address & _pageMask);
            int chunk = Math.Min((int)Info.PageSize - offset, buffer.Length - done);
            if (TryResolve(ctx, address, out ulong pa, out _) && TryGetPage(pa >> _pageShift, out ReadOnlySpan<byte> page))
            {
                page.Slice(offset, chunk).CopyTo(buffer.Slice(done, chunk));
            }
            else if (mode == ReadMode.UntilFault)
            {
                return new ReadResult(done, address, []);
            }
            else
            {
                buffer.Slice(done, chunk).Clear();
                (unreadable ??= []).Add(address & ~_pageMask);
            }

            done += chunk;
        }

        return new ReadResult(buffer.Length, null, (IReadOnlyList<ulong>?)unreadable ?? []);
    }

    public byte[] ReadBytes(AccessContext ctx, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        byte[] data = new byte[length];
        Read(ctx, data);
        return data;
    }

    /// <summary>
    /// The fast path for small reads inside one page: one translation, one page lookup, no copy. False when the read
    /// crosses a page or cannot be made (the caller's slow path then reads, and throws, as <see cref="Read(AccessContext, Span{byte})"/> does).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TryReadInPage(in AccessContext ctx, int size, out ReadOnlySpan<byte> data)
    {
        ulong address = ctx.Address;
        int offset = (int)(address & _pageMask);
        if (offset + size <= (int)Amd64.PageSize
            && TryResolve(ctx, address, out ulong pa, out _)
            && TryGetPage(pa >> _pageShift, out ReadOnlySpan<byte> page))
        {
            data = page.Slice(offset, size);
            return true;
        }

        data = default;
        return false;
    }

    /// <summary>A small read through a stack buffer, out of line so the fast path's frame stays small.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private ulong ReadSmallSlow(in AccessContext ctx, int size)
    {
        Span<byte> s = stackalloc byte[8];
        s.Clear();
        Read(ctx, s[..size]);
        return BinaryPrimitives.ReadUInt64LittleEndian(s);
    }

    public byte ReadU8(AccessContext ctx) =>
        TryReadInPage(ctx, 1, out ReadOnlySpan<byte> s) ? s[0] : (byte)ReadSmallSlow(ctx, 1);

    public ushort ReadU16(AccessContext ctx) =>
        TryReadInPage(ctx, 2, out ReadOnlySpan<byte> s) ? BinaryPrimitives.ReadUInt16LittleEndian(s) : (ushort)ReadSmallSlow(ctx, 2);

    public uint ReadU32(AccessContext ctx) =>
        TryReadInPage(ctx, 4, out ReadOnlySpan<byte> s) ? BinaryPrimitives.ReadUInt32LittleEndian(s) : (uint)ReadSmallSlow(ctx, 4);

    public ulong ReadU64(AccessContext ctx) =>
        TryReadInPage(ctx, 8, out ReadOnlySpan<byte> s) ? BinaryPrimitives.ReadUInt64LittleEndian(s) : ReadSmallSlow(ctx, 8);

    /// <summary>An unsigned integer of 1, 2, 4 or 8 bytes.</summary>
    public ulong ReadUInt(AccessContext ctx, int size) => size switch
    {
        1 => ReadU8(ctx),
        2 => ReadU16(ctx),
        4 => ReadU32(ctx),
        8 => ReadU64(ctx),
        _ => throw new ArgumentOutOfRangeException(nameof(size), size, "An integer read is 1, 2, 4 or 8 bytes."),
    };

    /// <summary>A pointer-sized value of <paramref name="width"/> bytes (4 or 8).</summary>
    public ulong ReadAddress(AccessContext ctx, int width) => width switch
    {
        4 => ReadU32(ctx),
        8 => ReadU64(ctx),
        _ => throw new InvalidAddressWidthException(width),
    };

    public Va ReadVa(AccessContext ctx, int width) => new(ReadAddress(ctx, width));

    public Va ReadVa32(AccessContext ctx) => new(ReadU32(ctx));

    public Va ReadVa64(AccessContext ctx) => new(ReadU64(ctx));

    public T ReadStruct<T>(AccessContext ctx)
        where T : unmanaged
    {
        Unsafe.SkipInit(out T value);
        Read(ctx, MemoryMarshal.AsBytes(new Span<T>(ref value)));
        return value;
    }

    /// <summary>A NUL-terminated UTF-8 string of at most <paramref name="limit"/> bytes (default: <see cref="StringLimit"/>).</summary>
    public string ReadString(AccessContext ctx, int? limit = null) => ReadTerminated(ctx, limit, wide: false, out _);

    /// <summary>As <see cref="ReadString(AccessContext, int?)"/>; <paramref name="truncated"/> says the limit (or the end of the address space) came before a NUL.</summary>
    public string ReadString(AccessContext ctx, int? limit, out bool truncated) => ReadTerminated(ctx, limit, wide: false, out truncated);

    /// <summary>A NUL-terminated UTF-16LE string of at most <paramref name="limit"/> bytes (default: <see cref="StringLimit"/>).</summary>
    public string ReadWString(AccessContext ctx, int? limit = null) => ReadTerminated(ctx, limit, wide: true, out _);

    public string ReadWString(AccessContext ctx, int? limit, out bool truncated) => ReadTerminated(ctx, limit, wide: true, out truncated);

    /// <summary>The bytes of the page holding <paramref name="address"/>; throws as a strict read does when it cannot be read.</summary>
    private ReadOnlySpan<byte> PageAt(in AccessContext ctx, ulong address)
    {
        bool translated = TryResolve(ctx, address, out ulong pa, out TranslationResult fault);
        if (translated && TryGetPage(pa >> _pageShift, out ReadOnlySpan<byte> page))
        {
            return page;
        }

        ThrowUnreadable(ctx, address, pa, fault, translated);
        return default;
    }

    /// <summary>Index of the first terminator (a zero byte, or a zero UTF-16 unit aligned to the span's start), or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int FindTerminator(ReadOnlySpan<byte> span, bool wide)
    {
        if (!wide)
        {
            return span.IndexOf((byte)0);
        }

        int i = MemoryMarshal.Cast<byte, char>(span[..(span.Length & ~1)]).IndexOf('\0');
        return i < 0 ? -1 : i * 2;
    }

    private static string Decode(ReadOnlySpan<byte> bytes, bool wide) =>
        wide ? Encoding.Unicode.GetString(bytes[..(bytes.Length & ~1)]) : Encoding.UTF8.GetString(bytes);

    /// <summary>
    /// Reads page by page until a terminator or the limit, never past the limit (nor past the end of the
    /// address space). A string inside one page is decoded straight from the cached page, with no copy;
    /// a longer one is gathered in a pooled buffer that grows with the string, not with the limit.
    /// </summary>
    private string ReadTerminated(in AccessContext ctx, int? limit, bool wide, out bool truncated)
    {
        int max = limit ?? _stringLimit;
        ArgumentOutOfRangeException.ThrowIfNegative(max, nameof(limit));
        ulong room = 0UL - ctx.Address; // bytes to the end of the address space (0: all of it)
        if (room != 0 && room < (ulong)max)
        {
            max = (int)room;
        }

        int pageSize = (int)Info.PageSize;
        byte[]? buffer = null;
        try
        {
            int done = 0;
            int scanned = 0; // bytes of buffer already searched (a multiple of the unit)
            while (done < max)
            {
                ulong address = ctx.Address + (ulong)done;
                int offset = (int)(address & _pageMask);
                int chunk = Math.Min(pageSize - offset, max - done);
                ReadOnlySpan<byte> src = PageAt(ctx, address).Slice(offset, chunk);
                if (buffer is null)
                {
                    int end = FindTerminator(src, wide);
                    if (end >= 0 || chunk == max)
                    {
                        truncated = end < 0;
                        return Decode(end >= 0 ? src[..end] : src, wide);
                    }

                    buffer = ArrayPool<byte>.Shared.Rent(Math.Min(max, 2 * pageSize));
                    src.CopyTo(buffer);
                    done = chunk;
                    scanned = wide ? chunk & ~1 : chunk;
                    continue;
                }

                if (buffer.Length - done < chunk)
                {
                    byte[] bigger = ArrayPool<byte>.Shared.Rent((int)Math.Min((long)max, Math.Max((long)buffer.Length * 2, (long)done + chunk)));
                    buffer.AsSpan(0, done).CopyTo(bigger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = bigger;
                }

                src.CopyTo(buffer.AsSpan(done));
                done += chunk;
                int span = wide ? (done - scanned) & ~1 : done - scanned;
                int found = FindTerminator(buffer.AsSpan(scanned, span), wide);
                if (found >= 0)
                {
                    truncated = false;
                    return Decode(buffer.AsSpan(0, scanned + found), wide);
                }

                scanned += span;
            }

            truncated = true;
            return buffer is null ? string.Empty : Decode(buffer.AsSpan(0, done), wide);
        }
        finally
        {
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    // ---------------------------------------------------------------- writes

    /// <summary>Writes across any number of pages. Every page is translated before anything is written.</summary>
    public void Write(AccessContext ctx, ReadOnlySpan<byte> data)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        IVmiWrite write = _write ?? throw Missing(VmiCapability.Write);
        CheckRange(ctx.Address, data.Length);

        // Resolve all frames first, so that a fault leaves memory untouched.
        int pages = (int)(((ctx.Address & _pageMask) + (ulong)data.Length + _pageMask) >> _pageShift);
        ulong[]? rented = pages <= 64 ? null : ArrayPool<ulong>.Shared.Rent(pages);
        Span<ulong> frames = rented is null ? stackalloc ulong[64] : rented; // small writes (integers, structs) allocate nothing
        try
        {
            int done = 0;
            for (int i = 0; done < data.Length; i++)
            {
                ulong address = ctx.Address + (ulong)done;
                int offset = (int)(address & _pageMask);
                int chunk = Math.Min((int)Info.PageSize - offset, data.Length - done);
                bool translated = TryResolve(ctx, address, out ulong pa, out TranslationResult fault);
                if (!translated || pa >> _pageShift > Info.MaxGfn.Value)
                {
                    ThrowUnreadable(ctx, address, pa, fault, translated);
                }

                frames[i] = pa >> _pageShift;
                done += chunk;
            }

            done = 0;
            for (int i = 0; done < data.Length; i++)
            {
                ulong address = ctx.Address + (ulong)done;
                int offset = (int)(address & _pageMask);
                int chunk = Math.Min((int)Info.PageSize - offset, data.Length - done);
                write.WritePage(new Gfn(frames[i]), offset, data.Slice(done, chunk));
                Invalidate(GuestChange.FrameWritten, frames[i]);
                done += chunk;
            }
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<ulong>.Shared.Return(rented);
            }
        }
    }

    public void WriteU8(AccessContext ctx, byte value) => Write(ctx, [value]);

    public void WriteU16(AccessContext ctx, ushort value)
    {
        Span<byte> b = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(b, value);
        Write(ctx, b);
    }

    public void WriteU32(AccessContext ctx, uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        Write(ctx, b);
    }

    public void WriteU64(AccessContext ctx, ulong value)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, value);
        Write(ctx, b);
    }

    public void WriteStruct<T>(AccessContext ctx, in T value)
        where T : unmanaged
    {
        T copy = value;
        Write(ctx, MemoryMarshal.AsBytes(new ReadOnlySpan<T>(ref copy)));
    }

    // ---------------------------------------------------------------- capabilities

    private T Require<T>(VmiCapability capability)
        where T : class
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _driver as T ?? throw Missing(capability);
    }

    /// <summary>The one place a missing capability becomes an error: read-only (the driver has it, the guest refuses it) or unsupported.</summary>
    private VmiException Missing(VmiCapability capability) =>
        _driver is ReadOnlyDriver ro && ro.InnerSupports(capability)
            ? new GuestReadOnlyException(ro.Name, capability)
            : new CapabilityNotSupportedException(_driver.Name, capability);

    private void CheckVcpu(VcpuId vcpu)
    {
        if (vcpu.Value >= Info.VcpuCount)
        {
            throw new VcpuNotFoundException(vcpu, Info.VcpuCount);
        }
    }

    public Registers GetRegisters(VcpuId vcpu)
    {
        var q = Require<IVmiQueryRegisters>(VmiCapability.QueryRegisters);
        CheckVcpu(vcpu);
        return q.GetRegisters(vcpu);
    }

    public void SetRegisters(VcpuId vcpu, Registers registers)
    {
        ArgumentNullException.ThrowIfNull(registers);
        var s = Require<IVmiSetRegisters>(VmiCapability.SetRegisters);
        CheckVcpu(vcpu);
        s.SetRegisters(vcpu, registers);

        if (vcpu.Value == 0)
        {
            Invalidate(GuestChange.Vcpu0RegistersSet, registers: registers);
        }
    }

    public MemoryAccess GetMemoryAccess(Gfn gfn, View view) =>
        Require<IVmiQueryProtection>(VmiCapability.QueryProtection).GetMemoryAccess(gfn, view);

    public void SetMemoryAccess(Gfn gfn, View view, MemoryAccess access, MemoryAccessOptions options = MemoryAccessOptions.None) =>
        Require<IVmiSetProtection>(VmiCapability.SetProtection).SetMemoryAccess(gfn, view, access, options);

    public void SetMemoryAccess(Gfn first, ulong count, View view, MemoryAccess access, MemoryAccessOptions options = MemoryAccessOptions.None)
    {
        var s = Require<IVmiSetProtection>(VmiCapability.SetProtection);
        if (count == 0)
        {
            return;
        }

        if (first.Value + count - 1 < first.Value || first.Value + count - 1 > Info.MaxGfn.Value)
        {
            throw new ArgumentOutOfRangeException(nameof(count), $"Frames {first} to {first + (count - 1)} run past the guest's last frame {Info.MaxGfn}.");
        }

        s.SetMemoryAccess(first, count, view, access, options);
    }

    public View DefaultView => Require<IVmiViewControl>(VmiCapability.ViewControl).DefaultView;

    public IReadOnlyCollection<View> Views => Require<IVmiViewControl>(VmiCapability.ViewControl).Views;

    public View CreateView(MemoryAccess defaultAccess) => Require<IVmiViewControl>(VmiCapability.ViewControl).CreateView(defaultAccess);

    public void DestroyView(View view)
    {
        Require<IVmiViewControl>(VmiCapability.ViewControl).DestroyView(view);
        Invalidate(GuestChange.ViewsChanged);
    }

    public void SwitchToView(View view) => Require<IVmiViewControl>(VmiCapability.ViewControl).SwitchToView(view);

    public void ChangeViewGfn(View view, Gfn oldGfn, Gfn newGfn)
    {
        Require<IVmiViewControl>(VmiCapability.ViewControl).ChangeViewGfn(view, oldGfn, newGfn);
        Invalidate(GuestChange.ViewsChanged);
    }

    public void ResetViewGfn(View view, Gfn gfn)
    {
        Require<IVmiViewControl>(VmiCapability.ViewControl).ResetViewGfn(view, gfn);
        Invalidate(GuestChange.ViewsChanged);
    }

    public void EnableMonitor(EventMonitor monitor) => Require<IVmiEventControl>(VmiCapability.EventControl).EnableMonitor(monitor);

    public void DisableMonitor(EventMonitor monitor) => Require<IVmiEventControl>(VmiCapability.EventControl).DisableMonitor(monitor);

    public IReadOnlyCollection<EventMonitor> EnabledMonitors => Require<IVmiEventControl>(VmiCapability.EventControl).EnabledMonitors;

    public int EventsPending => Require<IVmiEventControl>(VmiCapability.EventControl).EventsPending;

    /// <summary>Blocks until events may be pending (see <see cref="IVmiEventControl.WaitForPending"/>); safe without the caller's lock.</summary>
    public bool WaitForPendingEvents(TimeSpan timeout, CancellationToken cancellationToken = default) =>
        Require<IVmiEventControl>(VmiCapability.EventControl).WaitForPending(timeout, cancellationToken);

    /// <summary>Takes at most <paramref name="maxEvents"/> pending events without blocking; their vCPUs wait for the answers.</summary>
    public IReadOnlyList<VmiPendingEvent> TakeEvents(int maxEvents)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxEvents, 1);
        return Require<IVmiEventControl>(VmiCapability.EventControl).TakeEvents(maxEvents);
    }

    /// <summary>Answers a taken event (the response is validated first; an invalid one releases the event and throws).</summary>
    public void AnswerEvent(VmiPendingEvent pending, VmiEventResponse? response)
    {
        ArgumentNullException.ThrowIfNull(pending);
        var events = Require<IVmiEventControl>(VmiCapability.EventControl);
        response ??= VmiEventResponse.Continue;
        try
        {
            response.Validate(pending.Event);
        }
        catch
        {
            events.Release(pending);
            throw;
        }

        events.Answer(pending, response); // general-purpose registers only: no translation depends on them
    }

    /// <summary>Lets a taken event's vCPU go on unanswered (Continue).</summary>
    public void ReleaseEvent(VmiPendingEvent pending)
    {
        ArgumentNullException.ThrowIfNull(pending);
        Require<IVmiEventControl>(VmiCapability.EventControl).Release(pending);
    }

    public void Pause() => Require<IVmiVmControl>(VmiCapability.VmControl).Pause();

    public void Resume() => Require<IVmiVmControl>(VmiCapability.VmControl).Resume();

    /// <summary>Pauses the guest until the returned guard is disposed. A failed resume is logged, never thrown.</summary>
    public VmiPauseGuard PauseGuard()
    {
        var control = Require<IVmiVmControl>(VmiCapability.VmControl);
        control.Pause();
        return new VmiPauseGuard(control, Log);
    }

    public Gfn AllocateGfn() => Require<IVmiVmControl>(VmiCapability.VmControl).AllocateGfn();

    public void AllocateGfn(Gfn gfn) => Require<IVmiVmControl>(VmiCapability.VmControl).AllocateGfn(gfn);

    public void FreeGfn(Gfn gfn)
    {
        Require<IVmiVmControl>(VmiCapability.VmControl).FreeGfn(gfn);
        Invalidate(GuestChange.FrameFreed, gfn.Value);
    }

    public void InjectInterrupt(VcpuId vcpu, Interrupt interrupt)
    {
        var c = Require<IVmiVmControl>(VmiCapability.VmControl);
        CheckVcpu(vcpu);
        c.InjectInterrupt(vcpu, interrupt);
    }

    public void ResetState()
    {
        Require<IVmiVmControl>(VmiCapability.VmControl).ResetState();
        Invalidate(GuestChange.StateReset);
    }

    /// <summary>Releases every cached mapping and the driver.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _pages.Dispose();
        _translator.Clear();
        _driver.Dispose();
    }
}

/// <summary>Resumes the guest when disposed. A failed resume is logged through the core's log, never thrown.</summary>
public sealed class VmiPauseGuard : IDisposable
{
    private IVmiVmControl? _control;
    private readonly Action<string> _log;

    internal VmiPauseGuard(IVmiVmControl control, Action<string> log)
    {
        _control = control;
        _log = log;
    }

    public bool IsActive => _control is not null;

    public void Dispose()
    {
        IVmiVmControl? control = Interlocked.Exchange(ref _control, null);
        if (control is null)
        {
            return;
        }

        try
        {
            control.Resume();
        }
#pragma warning disable CA1031 // a guard must not throw from Dispose; the failure is logged
        catch (Exception e)
        {
            try
            {
                _log($"Resuming the guest failed: {e.Message}");
            }
            catch (Exception)
            {
                // A broken log must not turn a logged failure into a thrown one.
            }
        }
#pragma warning restore CA1031
    }
}
