using System.Diagnostics;
using Vmi.Core.Arch.Amd64;
using Vmi.Core.Search;

namespace Vmi.Core;

/// <summary>How a guest is opened.</summary>
public sealed record VmiGuestOptions
{
    /// <summary>Entries in each cache (GFN pages, V2P translations).</summary>
    public int CacheCapacity { get; init; } = VmiCore.DefaultCacheCapacity;

    /// <summary>Expose only the query capabilities: the guest cannot be changed through it.</summary>
    public bool ReadOnly { get; init; }

    /// <summary>Where failures that cannot be thrown go (restore on close, a failed resume). Defaults to <see cref="Trace"/>.</summary>
    public Action<string>? Log { get; init; }
}

/// <summary>
/// One connected target: the driver, both caches, the lock, read-only, the event protocol, close and restore.
/// </summary>
/// <remarks>
/// <para><b>Threads.</b> Every public member is safe to call from any thread, any number at once. Each call holds the
/// guest's one lock from start to end and never releases it in the middle; no caller's code (a handler, a callback)
/// ever runs under it. Long operations (<see cref="Search"/>, <see cref="ReadChunks"/>) are sequences of such calls,
/// one per page or chunk, so other threads get the guest in between; their results are not one atomic snapshot.</para>
/// <para><b>Read-only.</b> A read-only guest wraps its driver in one that implements only the query capabilities,
/// so a change is refused by construction, with <see cref="GuestReadOnlyException"/> from one place.</para>
/// <para><b>Events</b> come in two phases: <see cref="TakeEvents"/> holds the lock only while taking; the caller then
/// handles the events with no lock held and answers each (<see cref="Answer"/>, <see cref="Release"/>). Closing
/// releases every event taken and not yet answered.</para>
/// <para><b>Close</b> (<see cref="Close"/>, <see cref="Dispose"/>) runs once whoever calls it first, from any thread:
/// it wakes waits for events, releases taken events, restores the guest (monitors off, access restored, views
/// destroyed, pauses released) and releases the driver. It never throws; failures go to the log.</para>
/// </remarks>
public sealed class VmiGuest : IDisposable
{
    private readonly object _gate = new();
    private readonly VmiCore _core;
    private readonly IVmiDriver _driver;
    private readonly Dictionary<VmiPendingEvent, Func<VmiEventResponse?>?> _taken = []; // with where its answer-so-far is read (ProposeAnswer)
    private readonly CancellationTokenSource _closing = new();
    private readonly Action<string> _log;
    private int _waiters;
    private int _closed;

    /// <summary>Opens <paramref name="driver"/>; on failure the driver is disposed before the error is thrown.</summary>
    public VmiGuest(IVmiDriver driver, VmiGuestOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(driver);
        options ??= new VmiGuestOptions();
        _driver = driver;
        _log = options.Log ?? (static m => Trace.WriteLine(m, "Vmi"));
        IsReadOnly = options.ReadOnly;
        try
        {
            _core = new VmiCore(options.ReadOnly ? new ReadOnlyDriver(driver) : driver, options.CacheCapacity) { Log = _log };
        }
        catch
        {
            driver.Dispose();
            throw;
        }

        Info = _core.Info;
        Capabilities = _core.Capabilities.ToArray();
    }

    /// <summary>The driver's short name ("Mock", "Xen", "ELF core").</summary>
    public string DriverName => _driver.Name;

    public VmiInfo Info { get; }

    public bool IsReadOnly { get; }

    public bool IsClosed => Volatile.Read(ref _closed) != 0;

    /// <summary>What this guest can do (a read-only guest: the query capabilities only).</summary>
    public IReadOnlyList<VmiCapability> Capabilities { get; }

    public bool Supports(VmiCapability capability) => Capabilities.Contains(capability);

    /// <summary>
    /// The driver object, for what only that driver offers (the mock's event scripting, a test's inspection); null when
    /// it is not a <typeparamref name="T"/>. Calls on it bypass this guest's lock, caches and read-only wrapper: the
    /// driver must be thread-safe itself, and a driver with its own read-only mode (Xen) enforces it there.
    /// </summary>
    public T? GetDriver<T>()
        where T : class, IVmiDriver => _driver as T;

    /// <summary>Where the memory an image stores ends (it may declare zero-filled memory beyond); null for live guests.</summary>
    public ulong? StoredEnd => _driver is IVmiStoredExtent s ? s.StoredEnd.Value : null;

    /// <summary>Cancelled when the guest starts closing.</summary>
    public CancellationToken Closing => _closing.Token;

    // ---------------------------------------------------------------- serialisation

    private T Locked<T>(Func<VmiCore, T> action)
    {
        lock (_gate)
        {
            ThrowIfClosed();
            return action(_core);
        }
    }

    private void Locked(Action<VmiCore> action)
    {
        lock (_gate)
        {
            ThrowIfClosed();
            action(_core);
        }
    }

    private void ThrowIfClosed()
    {
        if (Volatile.Read(ref _closed) != 0)
        {
            throw new GuestClosedException(_driver.Name);
        }
    }


    // ---------------------------------------------------------------- settings

    public PagingMode PagingMode
    {
        get => Locked(c => c.PagingMode);
        set => Locked(c => c.PagingMode = value);
    }

    public PagingFeatures PagingFeatures
    {
        get => Locked(c => c.PagingFeatures);
        set => Locked(c => c.PagingFeatures = value);
    }

    public int PhysicalAddressWidth
    {
        get => Locked(c => c.PhysicalAddressWidth);
        set => Locked(c => c.PhysicalAddressWidth = value);
    }

    public int StringLimit
    {
        get => Locked(c => c.StringLimit);
        set => Locked(c => c.StringLimit = value);
    }

    /// <summary>The width of a guest pointer: 8 bytes in IA-32e paging, 4 otherwise.</summary>
    public int PointerWidth => Locked(c => PointerWidthOf(c.PagingMode));

    internal static int PointerWidthOf(PagingMode mode) => mode is PagingMode.Ia32e or PagingMode.Ia32eLa57 ? 8 : 4;

    // ---------------------------------------------------------------- addressing

    /// <summary>
    /// The access context of <paramref name="address"/> in <paramref name="space"/>: physical, or virtual under the
    /// space's CR3 (flag bits masked for the paging mode) or under the current CR3 of its vCPU (vCPU 0 by default).
    /// </summary>
    public AccessContext ContextFor(AddressSpace space, ulong address) => Locked(c => ContextFor(c, space, address));

    private AccessContext ContextFor(VmiCore core, AddressSpace space, ulong address)
    {
        if (space.IsPhysical)
        {
            return AccessContext.Direct(new Pa(address));
        }

        Pa root;
        if (space.Cr3 is { } cr3)
        {
            root = Amd64.RootFromCr3(cr3, core.PagingMode);
        }
        else if (core.Supports(VmiCapability.QueryRegisters))
        {
            root = core.GetTranslationRoot(new VcpuId(space.Vcpu ?? 0));
        }
        else
        {
            throw new NoTranslationRootException(_driver.Name);
        }

        return new AccessContext(address, TranslationMechanism.Paging(root));
    }

    // ---------------------------------------------------------------- reads

    public void Read(AccessContext ctx, Span<byte> buffer)
    {
        lock (_gate)
        {
            ThrowIfClosed();
            _core.Read(ctx, buffer);
        }
    }

    public ReadResult Read(AccessContext ctx, Span<byte> buffer, ReadMode mode)
    {
        lock (_gate)
        {
            ThrowIfClosed();
            return _core.Read(ctx, buffer, mode);
        }
    }

    public bool TryReadPage(Gfn gfn, Span<byte> destination)
    {
        lock (_gate)
        {
            ThrowIfClosed();
            return _core.TryReadPage(gfn, destination);
        }
    }

    public byte[] ReadBytes(AccessContext ctx, int length) => Locked(c => c.ReadBytes(ctx, length));

    public byte ReadU8(AccessContext ctx) => Locked(c => c.ReadU8(ctx));

    public ushort ReadU16(AccessContext ctx) => Locked(c => c.ReadU16(ctx));

    public uint ReadU32(AccessContext ctx) => Locked(c => c.ReadU32(ctx));

    public ulong ReadU64(AccessContext ctx) => Locked(c => c.ReadU64(ctx));

    public ulong ReadUInt(AccessContext ctx, int size) => Locked(c => c.ReadUInt(ctx, size));

    /// <summary>A pointer of <paramref name="width"/> bytes (4 or 8); null: the guest's <see cref="PointerWidth"/>.</summary>
    public ulong ReadAddress(AccessContext ctx, int? width = null) => Locked(c => c.ReadAddress(ctx, width ?? PointerWidthOf(c.PagingMode)));

    public T ReadStruct<T>(AccessContext ctx)
        where T : unmanaged => Locked(c => c.ReadStruct<T>(ctx));

    /// <summary>A NUL-terminated string of at most <paramref name="limit"/> bytes (null: <see cref="StringLimit"/>).</summary>
    public StringRead ReadString(AccessContext ctx, int? limit = null, bool wide = false) => Locked(c =>
    {
        int max = limit ?? c.StringLimit;
        string text = wide ? c.ReadWString(ctx, max, out bool truncated) : c.ReadString(ctx, max, out truncated);
        return new StringRead(text, truncated, max);
    });

    // ---------------------------------------------------------------- translation

    public TranslationResult TryTranslateAddress(AddressContext ctx) => Locked(c => c.TryTranslateAddress(ctx));

    public Pa TranslateAddress(AddressContext ctx) => Locked(c => c.TranslateAddress(ctx));

    public Pa TranslateAccessContext(AccessContext ctx) => Locked(c => c.TranslateAccessContext(ctx));

    public PageWalk WalkAddress(AddressContext ctx) => Locked(c => c.WalkAddress(ctx));

    public Pa GetTranslationRoot(VcpuId vcpu) => Locked(c => c.GetTranslationRoot(vcpu));

    // ---------------------------------------------------------------- changes

    /// <summary>Writes across pages; every page is translated before anything is written. Keeps the caches coherent.</summary>
    public void Write(AccessContext ctx, ReadOnlySpan<byte> data)
    {
        lock (_gate)
        {
            ThrowIfClosed();
            _core.Write(ctx, data);
        }
    }

    public Registers GetRegisters(VcpuId vcpu) => Locked(c => c.GetRegisters(vcpu));

    /// <summary>Sets a vCPU's registers; translations made under an old CR0/CR3/CR4/EFER are dropped.</summary>
    public void SetRegisters(VcpuId vcpu, Registers registers) => Locked(c => c.SetRegisters(vcpu, registers));

    /// <summary>
    /// Reads a vCPU's registers, writes back what <paramref name="change"/> makes of them (<c>r =&gt; r with { Rax = 1 }</c>),
    /// as one call. Returns what was written. <paramref name="change"/> runs under the guest's lock, the one caller's
    /// code that does: it must only compute (no call back into this guest, no waiting).
    /// </summary>
    public Registers UpdateRegisters(VcpuId vcpu, Func<Registers, Registers> change)
    {
        ArgumentNullException.ThrowIfNull(change);
        lock (_gate)
        {
            ThrowIfClosed();
            if (!_core.Supports(VmiCapability.SetRegisters))
            {
                _core.SetRegisters(vcpu, new Registers()); // throws the one read-only / unsupported error
            }

            Registers registers = change(_core.GetRegisters(vcpu)) ?? throw new ArgumentException("The change returned no registers.", nameof(change));
            _core.SetRegisters(vcpu, registers);
            return registers;
        }
    }

    public MemoryAccess GetMemoryAccess(Gfn gfn, View view) => Locked(c => c.GetMemoryAccess(gfn, view));

    public void SetMemoryAccess(Gfn first, ulong count, View view, MemoryAccess access, MemoryAccessOptions options = MemoryAccessOptions.None) =>
        Locked(c => c.SetMemoryAccess(first, count, view, access, options));

    public View DefaultView => Locked(c => c.DefaultView);

    public IReadOnlyCollection<View> Views => Locked(c => c.Views.ToArray());

    /// <summary>True when <paramref name="view"/> is the default view or one this guest created.</summary>
    public bool ViewExists(View view) => Locked(c => c.Supports(VmiCapability.ViewControl) && (view == c.DefaultView || c.Views.Contains(view)));

    public View CreateView(MemoryAccess defaultAccess) => Locked(c => c.CreateView(defaultAccess));

    public void DestroyView(View view) => Locked(c => c.DestroyView(view));

    public void SwitchToView(View view) => Locked(c => c.SwitchToView(view));

    public void ChangeViewGfn(View view, Gfn oldGfn, Gfn newGfn) => Locked(c => c.ChangeViewGfn(view, oldGfn, newGfn));

    public void ResetViewGfn(View view, Gfn gfn) => Locked(c => c.ResetViewGfn(view, gfn));

    public void EnableMonitor(EventMonitor monitor) => Locked(c => c.EnableMonitor(monitor));

    public void DisableMonitor(EventMonitor monitor) => Locked(c => c.DisableMonitor(monitor));

    public IReadOnlyCollection<EventMonitor> EnabledMonitors => Locked(c => c.EnabledMonitors.ToArray());

    public int EventsPending => Locked(c => c.EventsPending);

    public void Pause() => Locked(c => c.Pause());

    public void Resume() => Locked(c => c.Resume());

    public Gfn AllocateGfn() => Locked(c => c.AllocateGfn());

    public void AllocateGfn(Gfn gfn) => Locked(c => c.AllocateGfn(gfn));

    public void FreeGfn(Gfn gfn) => Locked(c => c.FreeGfn(gfn));

    public void InjectInterrupt(VcpuId vcpu, Interrupt interrupt) => Locked(c => c.InjectInterrupt(vcpu, interrupt));

    /// <summary>Sets a breakpoint owned by the hypervisor side (see <see cref="IVmiBreakpoints"/>).</summary>
    /// <remarks>A driver may write the breakpoint into guest memory (Xen: INT3) and read it back as the original bytes: the
    /// page cache is flushed so that no page mapped before the change shows the INT3.</remarks>
    public VmiBreakpoint SetBreakpoint(BreakpointRequest request) => Locked(c =>
    {
        try
        {
            return BreakpointsOf(c, change: true).SetBreakpoint(request);
        }
        finally
        {
            c.FlushGfnCache();
        }
    });

    /// <summary>Removes a breakpoint; false when there is none with this id.</summary>
    public bool RemoveBreakpoint(int id) => Locked(c =>
    {
        try
        {
            return BreakpointsOf(c, change: true).RemoveBreakpoint(id);
        }
        finally
        {
            c.FlushGfnCache();
        }
    });

    /// <summary>The breakpoints set and not removed, with their hit counts.</summary>
    public IReadOnlyList<VmiBreakpoint> Breakpoints => Locked(c => BreakpointsOf(c, change: false).Breakpoints.ToArray());

    private IVmiBreakpoints BreakpointsOf(VmiCore core, bool change)
    {
        if (_driver is not IVmiBreakpoints breakpoints)
        {
            return core.Breakpoints(); // throws the driver's "not supported"
        }

        return change && IsReadOnly ? throw new GuestReadOnlyException(_driver.Name, VmiCapability.VmControl) : breakpoints;
    }

    // ---------------------------------------------------------------- caches

    public CacheStatistics GfnCacheStatistics => Locked(c => c.GfnCacheStatistics);

    public CacheStatistics V2PCacheStatistics => Locked(c => c.V2PCacheStatistics);

    /// <summary>Turns the GFN cache on or off (off also empties it).</summary>
    public void SetGfnCache(bool enabled) => Locked(c =>
    {
        if (enabled)
        {
            c.EnableGfnCache();
        }
        else
        {
            c.DisableGfnCache();
        }
    });

    /// <summary>Turns the V2P cache on or off (off also empties it).</summary>
    public void SetV2PCache(bool enabled) => Locked(c =>
    {
        if (enabled)
        {
            c.EnableV2PCache();
        }
        else
        {
            c.DisableV2PCache();
        }
    });

    public void ResizeGfnCache(int capacity) => Locked(c => c.ResizeGfnCache(capacity));

    public void ResizeV2PCache(int capacity) => Locked(c => c.ResizeV2PCache(capacity));

    public void FlushGfnCache() => Locked(c => c.FlushGfnCache());

    public void FlushV2PCache() => Locked(c => c.FlushV2PCache());

    public bool FlushGfnCacheEntry(Gfn gfn) => Locked(c => c.FlushGfnCacheEntry(gfn));

    public bool FlushV2PCacheEntry(AddressContext ctx) => Locked(c => c.FlushV2PCacheEntry(ctx));

    public void ResetCacheStatistics() => Locked(c => c.ResetCacheStatistics());

    // ---------------------------------------------------------------- events

    /// <summary>
    /// Waits up to <paramref name="timeout"/> for events and takes at most <paramref name="maxEvents"/>; empty on timeout or
    /// cancellation; <see cref="GuestClosedException"/> when the guest is closed, before or during the wait. The lock is held only while taking, never while waiting. Every event returned must be
    /// answered (<see cref="Answer"/>) or released (<see cref="Release"/>); closing the guest releases what is left.
    /// </summary>
    public IReadOnlyList<VmiPendingEvent> TakeEvents(TimeSpan timeout, int maxEvents, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxEvents, 1);
        if (timeout < TimeSpan.Zero && timeout != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "A timeout is zero (poll), positive, or infinite.");
        }

        long deadline = timeout == Timeout.InfiniteTimeSpan ? long.MaxValue : Environment.TickCount64 + (long)Math.Ceiling(timeout.TotalMilliseconds);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _closing.Token);
        while (true)
        {
            lock (_gate)
            {
                ThrowIfClosed();
                if (cancellationToken.IsCancellationRequested)
                {
                    return [];
                }

                IReadOnlyList<VmiPendingEvent> taken = _core.TakeEvents(maxEvents);
                if (taken.Count > 0)
                {
                    foreach (VmiPendingEvent e in taken)
                    {
                        _taken.Add(e, null);
                    }

                    return taken;
                }
            }

            long left = deadline - Environment.TickCount64;
            if (left <= 0 || stop.IsCancellationRequested)
            {
                return [];
            }

            // Waiting is the one driver call made without the lock (drivers make it safe alongside all others);
            // closing waits until no thread is in it.
            Interlocked.Increment(ref _waiters);
            try
            {
                if (IsClosed)
                {
                    return [];
                }

                _core.WaitForPendingEvents(TimeSpan.FromMilliseconds(Math.Min(left, int.MaxValue - 1)), stop.Token);
            }
            finally
            {
                Interlocked.Decrement(ref _waiters);
            }
        }
    }

    /// <summary>
    /// Answers a taken event. The response is checked first (a valid combination, an existing view); an invalid one
    /// releases the event and throws. False when the event was already answered or released (the guest closed meanwhile).
    /// </summary>
    public bool Answer(VmiPendingEvent pending, VmiEventResponse? response)
    {
        ArgumentNullException.ThrowIfNull(pending);
        lock (_gate)
        {
            if (!_taken.Remove(pending))
            {
                return false;
            }

            if (response?.View is { } view && !(_core.Supports(VmiCapability.ViewControl) && (view == _core.DefaultView || _core.Views.Contains(view))))
            {
                _core.ReleaseEvent(pending);
                throw new ViewNotFoundException(view);
            }

            _core.AnswerEvent(pending, response);
            return true;
        }
    }

    /// <summary>
    /// Says where the answer of a taken event stands while its handler runs (e.g. the response a script has set so far).
    /// Should the guest close before the event is answered — a disconnect from another thread — the event is answered
    /// with what <paramref name="answer"/> returns then, not released: the answer the user set is the answer given.
    /// </summary>
    public void ProposeAnswer(VmiPendingEvent pending, Func<VmiEventResponse?> answer)
    {
        ArgumentNullException.ThrowIfNull(pending);
        ArgumentNullException.ThrowIfNull(answer);
        lock (_gate)
        {
            if (_taken.ContainsKey(pending))
            {
                _taken[pending] = answer;
            }
        }
    }

    /// <summary>Answers a taken event as the guest closes: with its proposed answer when valid, else released. Call under the lock.</summary>
    private void AnswerOnClose(VmiPendingEvent pending, Func<VmiEventResponse?>? proposed)
    {
        VmiEventResponse? response = null;
        try
        {
            response = proposed?.Invoke();
            response?.Validate();
        }
#pragma warning disable CA1031 // a proposal that cannot be read or is invalid: the event is released instead
        catch (Exception)
#pragma warning restore CA1031
        {
            response = null;
        }

        if (response is null || response == VmiEventResponse.Continue || (response.View is { } view && view != _core.DefaultView))
        {
            // Nothing set is a release (the vCPU goes on as if nothing had intercepted it); views are about to be
            // destroyed: an answer that switches to one cannot stand.
            _core.ReleaseEvent(pending);
        }
        else
        {
            try
            {
                _core.AnswerEvent(pending, response);
            }
            catch (ArgumentException)
            {
                _core.ReleaseEvent(pending); // an answer the engine refuses (registers it may not set): released, as before
            }
        }
    }

    /// <summary>Lets a taken event's vCPU go on as if nothing had intercepted it. False when it was already answered.</summary>
    public bool Release(VmiPendingEvent pending)
    {
        ArgumentNullException.ThrowIfNull(pending);
        lock (_gate)
        {
            if (!_taken.Remove(pending))
            {
                return false;
            }

            _core.ReleaseEvent(pending);
            return true;
        }
    }

    // ---------------------------------------------------------------- long operations

    /// <summary>
    /// Searches <paramref name="length"/> bytes from <paramref name="start"/> for <paramref name="pattern"/>, chunk by chunk
    /// (<see cref="MemorySearch"/>: one lock hold each), yielding hits as found. Unreadable pages are skipped; nothing matches across them.
    /// </summary>
    public IEnumerable<SearchHit> Search(AccessContext start, ulong length, BytePattern pattern, int maxHits = int.MaxValue,
        IProgress<VmiProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxHits, 1);
        CheckRange(start.Address, length);
        return SearchIterator(start, length, pattern, maxHits, progress, cancellationToken);
    }

    private IEnumerable<SearchHit> SearchIterator(AccessContext start, ulong length, BytePattern pattern, int maxHits,
        IProgress<VmiProgress>? progress, CancellationToken cancellationToken)
    {
        var search = new MemorySearch(pattern, start, length) { MaxHits = maxHits };
        var hits = new List<SearchHit>();
        while (!search.Completed)
        {
            cancellationToken.ThrowIfCancellationRequested();
            hits.Clear();
            lock (_gate)
            {
                ThrowIfClosed();
                search.Next(_core, hits); // one chunk: a streaming read and a scan, under one lock hold
            }

            foreach (SearchHit hit in hits)
            {
                yield return hit;
            }

            progress?.Report(new VmiProgress(search.Done, length));
        }
    }

    /// <summary>
    /// Reads <paramref name="length"/> bytes from <paramref name="start"/> in chunks of <paramref name="chunkSize"/> (one lock
    /// round each). Strict: the first unreadable page throws. Zero-fill: unreadable pages come back as zeros, listed in the chunk.
    /// </summary>
    public IEnumerable<MemoryChunk> ReadChunks(AccessContext start, ulong length, int chunkSize, bool zeroFill,
        IProgress<VmiProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkSize, 1);
        CheckRange(start.Address, length);
        return ReadChunksIterator(start, length, chunkSize, zeroFill, progress, cancellationToken);
    }

    private IEnumerable<MemoryChunk> ReadChunksIterator(AccessContext start, ulong length, int chunkSize, bool zeroFill,
        IProgress<VmiProgress>? progress, CancellationToken cancellationToken)
    {
        ulong done = 0;
        while (done < length)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int chunk = (int)Math.Min((ulong)chunkSize, length - done);
            var ctx = new AccessContext(start.Address + done, start.Mechanism);
            byte[] buffer = new byte[chunk];
            IReadOnlyList<ulong> zeroed = [];
            if (zeroFill)
            {
                zeroed = Read(ctx, buffer, ReadMode.ZeroFill).UnreadablePages;
            }
            else
            {
                Read(ctx, buffer);
            }

            done += (ulong)chunk;
            progress?.Report(new VmiProgress(done, length));
            yield return new MemoryChunk(ctx.Address, buffer, zeroed);
        }
    }

    /// <summary>
    /// Runs <paramref name="acquisition"/> (writing the guest's memory to an image, say) with the engine to itself, so
    /// what it reads is one consistent view: the guest's lock is held for the whole call, and no write, register
    /// change, cache flush or event answer of another thread lands in the middle (they wait). With
    /// <paramref name="pause"/> the vCPUs are paused for the call and resumed on every way out of it (a failed resume
    /// is logged, never thrown). The token the acquisition gets is cancelled by <paramref name="cancellationToken"/>
    /// and by the guest closing, so a close from another thread stops a long acquisition instead of waiting for it.
    /// <para>Contract: the engine is lent for this call only; the acquisition must not keep it, hand it to another
    /// thread, or call this guest (another thread's call would wait for the acquisition, and the acquisition for it).
    /// Progress is the acquisition's own (it reports through the <see cref="IProgress{T}"/> it was built with).</para>
    /// </summary>
    public T Acquire<T>(Func<VmiCore, CancellationToken, T> acquisition, bool pause = false, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(acquisition);
        ThrowIfClosed();
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _closing.Token);
        try
        {
            lock (_gate)
            {
                ThrowIfClosed();
                cancel.Token.ThrowIfCancellationRequested();
                using VmiPauseGuard? guard = pause ? _core.PauseGuard() : null;
                return acquisition(_core, cancel.Token);
            }
        }
        catch (OperationCanceledException) when (IsClosed && !cancellationToken.IsCancellationRequested)
        {
            throw new GuestClosedException(_driver.Name); // stopped by a close, not by the caller
        }
    }

    private static void CheckRange(ulong start, ulong length)
    {
        if (length > 0 && start + (length - 1) < start)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length, $"The range 0x{start:x} + 0x{length:x} runs past the end of the address space: shorten it.");
        }
    }

    // ---------------------------------------------------------------- close

    /// <summary>Restores the guest and releases the driver, once; see the class remarks. Returns false when restoring failed.</summary>
    public bool Close() => Close(null);

    /// <summary>As <see cref="Close()"/>, reporting failures to <paramref name="log"/> as well as the guest's log.</summary>
    public bool Close(Action<string>? log)
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return true;
        }

        void Report(string message)
        {
            SafeLog(_log, message);
            if (log is not null)
            {
                SafeLog(log, message);
            }
        }

        try
        {
            _closing.Cancel();
        }
#pragma warning disable CA1031 // a callback registered on the token failed: closing goes on
        catch (Exception e)
        {
            Report($"Waking the waits for events failed: {e.Message}");
        }
#pragma warning restore CA1031

        // Threads waiting for events leave the driver's wait (it honours the cancelled token) before the driver goes.
        var spin = new SpinWait();
        while (Volatile.Read(ref _waiters) > 0)
        {
            spin.SpinOnce(sleep1Threshold: 10);
        }

        bool ok = true;
        lock (_gate)
        {
            foreach ((VmiPendingEvent e, Func<VmiEventResponse?>? proposed) in _taken)
            {
                try
                {
                    AnswerOnClose(e, proposed);
                }
#pragma warning disable CA1031 // cleanup goes on: every event must be released, the driver still closed
                catch (Exception ex)
                {
                    ok = false;
                    Report($"Releasing an event of vCPU {e.Event.Vcpu} failed: {ex.Message}");
                }
            }

            _taken.Clear();
            if (_core.Supports(VmiCapability.VmControl))
            {
                try
                {
                    _core.ResetState();
                }
                catch (Exception e)
                {
                    // Best effort: whatever else was left changed, the vCPUs must not stay paused.
                    ok = false;
                    (int released, string? resumeFailure) = ReleasePauses();
                    Report($"Restoring the guest ({_driver.Name} driver) failed: {e.Message}. Monitors, memory access, views and remapped frames may be left changed: check them by hand. The vCPUs were resumed ({released} pause(s) of this guest released).");
                    if (resumeFailure is not null)
                    {
                        Report($"Resuming the guest ({_driver.Name} driver) failed too: {resumeFailure}. The guest may still be paused: unpause it with the hypervisor's own tools.");
                    }
                }
            }

            try
            {
                _core.Dispose();
            }
            catch (Exception e)
            {
                ok = false;
                Report($"Releasing the {_driver.Name} driver failed: {e.Message}");
            }
#pragma warning restore CA1031
        }

        return ok;
    }

    /// <summary>The most pauses <see cref="ReleasePauses"/> releases: far more than any script nests.</summary>
    private const int MaxPausesReleased = 1 << 16;

    /// <summary>Resumes until the driver holds no more pauses of this guest; how many were released, and the hypervisor's error.</summary>
    private (int Released, string? Failure) ReleasePauses()
    {
        int released = 0;
        while (released < MaxPausesReleased)
        {
            try
            {
                _core.Resume();
                released++;
            }
            catch (VmiDriverException e)
            {
                return (released, e.Message); // the hypervisor refused
            }
#pragma warning disable CA1031 // the drivers' "not paused by this session" (VmiException, InvalidOperationException): done
            catch (Exception)
            {
                return (released, null);
            }
#pragma warning restore CA1031
        }

        return (released, null);
    }

    private static void SafeLog(Action<string> log, string message)
    {
        try
        {
            log(message);
        }
#pragma warning disable CA1031 // a broken log must not turn a logged failure into a thrown one
        catch (Exception)
        {
            Trace.WriteLine(message, "Vmi");
        }
#pragma warning restore CA1031
    }

    /// <summary>Closes the guest (see <see cref="Close()"/>); never throws.</summary>
    public void Dispose()
    {
        Close();
        _closing.Dispose();
    }
}

/// <summary>Where an address lives: guest physical memory, or a virtual address space (a CR3, or a vCPU's current CR3).</summary>
public readonly record struct AddressSpace
{
    private AddressSpace(bool physical, ulong? cr3, ushort? vcpu)
    {
        IsPhysical = physical;
        Cr3 = cr3;
        Vcpu = vcpu;
    }

    public static AddressSpace Physical { get; } = new(true, null, null);

    /// <summary>Virtual, under <paramref name="cr3"/> when given, else under the current CR3 of <paramref name="vcpu"/> (default vCPU 0).</summary>
    public static AddressSpace Virtual(ulong? cr3 = null, ushort? vcpu = null) => new(false, cr3, vcpu);

    public bool IsPhysical { get; }

    public ulong? Cr3 { get; }

    public ushort? Vcpu { get; }
}

/// <summary>A string read: the text, whether the limit cut it, and the limit used.</summary>
public readonly record struct StringRead(string Text, bool Truncated, int Limit);

/// <summary>How far a long operation has got.</summary>
public readonly record struct VmiProgress(ulong Done, ulong Total);

/// <summary>One chunk of a chunked read: where it starts, its bytes, and the pages zero-filled in it.</summary>
public sealed record MemoryChunk(ulong Address, byte[] Data, IReadOnlyList<ulong> ZeroFilledPages);

/// <summary>The guest has been closed.</summary>
public sealed class GuestClosedException(string driverName)
    : VmiException($"The guest ({driverName} driver) has been closed: open it again to go on.")
{
    public string DriverName { get; } = driverName;
}

/// <summary>A virtual address was given with no CR3, on a driver without registers.</summary>
public sealed class NoTranslationRootException(string driverName)
    : VmiException($"A virtual address needs a page-table root, and the {driverName} driver has no registers to take a CR3 from: give a CR3, or use a physical address.")
{
    public string DriverName { get; } = driverName;
}
