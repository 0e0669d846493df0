using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;
using Vmi.Xen.Events;
using Vmi.Xen.Native;

namespace Vmi.Xen;

/// <summary>
/// The Xen driver: an HVM guest on this host, through the Xen libraries. Connecting enables nothing;
/// the monitor ring and altp2m are set up the first time they are asked for, and everything this session
/// changed is undone by <see cref="ResetState"/>, which runs on <see cref="Dispose"/>, on process exit and on
/// SIGTERM/SIGINT. Thread-safe: each call holds the driver's lock from start to end (signal handlers and process exit
/// restore from other threads); <see cref="WaitForPending"/> holds it only between slices of its wait.
/// </summary>
public sealed unsafe class XenDriver :
    IVmiDriver, IVmiRead, IVmiWrite, IVmiQueryProtection, IVmiSetProtection, IVmiQueryRegisters, IVmiSetRegisters,
    IVmiViewControl, IVmiEventControl, IVmiVmControl
{
    private const int PageShift = 12;
    private const int WaitSliceMs = 100;
    private const int DisableRetries = 50;

    private readonly IXenHost _host;
    private readonly uint _domid;
    private readonly XenConnectOptions _options;
    private readonly object _gate = new();
    private readonly HashSet<EventMonitor> _monitors = [];
    private readonly HashSet<View> _views = [];
    private readonly Dictionary<ulong, MemoryAccess> _originalAccess = []; // view 0: gfn -> access before our first change
    private readonly HashSet<(ushort View, ulong Gfn)> _changedGfns = [];
    private readonly HashSet<ulong> _allocatedGfns = [];
    private readonly List<IDisposable> _exitHooks = [];
    private IXenMonitorChannel? _channel;
    private VmEventProcessor? _processor;
    private bool _altp2mEnabledByUs;
    private bool _altp2mReady;
    private bool _viewSwitched;
    private bool _pageWalkEventsDisabled;
    private bool _singlestepping;
    private int _pauses;
    private bool _disposed;

    internal XenDriver(IXenHost host, XenDomainInfo domain, XenConnectOptions options, bool hookProcessExit)
    {
        _host = host;
        _domid = domain.Id;
        _options = options;
        Domain = domain;
        ulong maxGfn = host.MaximumGpfn(domain.Id);
        Info = new VmiInfo(1u << PageShift, PageShift, new Gfn(maxGfn), Math.Max(domain.VcpuCount, 1));
        if (hookProcessExit)
        {
            HookProcessExit();
        }
    }

    public string Name => "Xen";

    public VmiInfo Info { get; }

    /// <summary>The domain as it was when the session connected.</summary>
    public XenDomainInfo Domain { get; }

    public bool IsReadOnly => _options.ReadOnly;

    /// <summary>The running hypervisor's version.</summary>
    public Version XenVersion => _host.Version;

    /// <summary>Where failures that cannot be thrown (cleanup on exit) are reported. Defaults to <see cref="Trace"/>.</summary>
    public Action<string> Log { get; set; } = static m => Trace.WriteLine(m, "Vmi.Xen");

    /// <summary>
    /// Throws a <see cref="VmiDriverException"/> that says what is missing when this process cannot talk to Xen
    /// (not Linux, no /dev/xen/privcmd, not root, not dom0). Loads nothing native.
    /// </summary>
    public static void CheckHost() => XenEnvironment.CheckHost();

    /// <summary>The domains on this host (Get-VmiDomain).</summary>
    public static IReadOnlyList<XenDomainInfo> ListDomains()
    {
        using NativeXenHost host = NativeXenHost.Open(XenConnectOptions.Default);
        return host.ListDomains();
    }

    /// <summary>Connects to an HVM domain by id or name. Nothing in the guest changes until a change is asked for.</summary>
    public static XenDriver Connect(XenDomainSelector selector, XenConnectOptions options)
    {
        ArgumentNullException.ThrowIfNull(selector);
        ArgumentNullException.ThrowIfNull(options);
        NativeXenHost host = NativeXenHost.Open(options);
        try
        {
            return Connect(host, selector, options, hookProcessExit: true);
        }
        catch
        {
            host.Dispose();
            throw;
        }
    }

    internal static XenDriver Connect(IXenHost host, XenDomainSelector selector, XenConnectOptions options, bool hookProcessExit)
    {
        XenDomainInfo domain = FindDomain(host, selector);
        if (domain.Id == 0)
        {
            throw new VmiDriverException("Domain 0 is the control domain this runs in, not a guest: connect to an HVM guest (the domain list shows them).");
        }

        if (!domain.IsHvm)
        {
            throw new VmiDriverException($"Domain {domain.Id} ('{domain.Name}') is a PV guest; the Xen driver introspects HVM and PVH guests (type = \"hvm\" in the domain's config).");
        }

        if (domain.State is XenDomainState.Dying or XenDomainState.Shutdown or XenDomainState.Crashed)
        {
            throw new VmiDriverException($"Domain {domain.Id} ('{domain.Name}') is {domain.State.ToString().ToLowerInvariant()}: there is no running guest to introspect.");
        }

        return new XenDriver(host, domain, options, hookProcessExit);
    }

    private static XenDomainInfo FindDomain(IXenHost host, XenDomainSelector selector)
    {
        if (selector.Id is { } id)
        {
            return host.GetDomainInfo(id) ?? throw NotFound(host, selector);
        }

        IReadOnlyList<XenDomainInfo> all = host.ListDomains();
        List<XenDomainInfo> matches = all.Where(d => string.Equals(d.Name, selector.Name, StringComparison.Ordinal)).ToList();
        if (matches.Count == 0)
        {
            matches = all.Where(d => string.Equals(d.Name, selector.Name, StringComparison.OrdinalIgnoreCase)).ToList();
        }

        return matches.Count switch
        {
            1 => matches[0],
            0 => throw NotFound(host, selector, all),
            _ => throw new VmiDriverException($"More than one domain is named '{selector.Name}' (ids {string.Join(", ", matches.Select(m => m.Id))}): connect by id."),
        };
    }

    private static VmiDriverException NotFound(IXenHost host, XenDomainSelector selector, IReadOnlyList<XenDomainInfo>? all = null)
    {
        all ??= host.ListDomains();
        string known = all.Count == 0 ? "none" : string.Join(", ", all.Select(d => $"{d.Id} '{d.Name}'"));
        return new VmiDriverException($"No Xen domain matches {selector}. Domains on this host: {known}.", XenErrors.ESrch);
    }

    // ---------------------------------------------------------------- memory

    public bool TryMapPage(Gfn gfn, [NotNullWhen(true)] out MappedPage? page)
    {
        ThrowIfDisposed();
        page = gfn > Info.MaxGfn && !IsAllocated(gfn) ? null : _host.MapPage(_domid, gfn);
        return page is not null;
    }

    public void WritePage(Gfn gfn, int offset, ReadOnlySpan<byte> data)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        if (offset + data.Length > Info.PageSize)
        {
            throw new ArgumentOutOfRangeException(nameof(data), $"A write of {data.Length} bytes at offset {offset} crosses the end of the {Info.PageSize}-byte frame: split it at the frame boundary.");
        }

        lock (_gate)
        {
            ThrowIfReadOnly("writing guest memory");
            _host.WritePage(_domid, gfn, offset, data);
        }
    }

    // ---------------------------------------------------------------- registers

    public Registers GetRegisters(VcpuId vcpu)
    {
        lock (_gate)
        {
            ThrowIfDisposed();
            CheckVcpu(vcpu);
            return HvmContext.GetRegisters(_host.GetHvmContext(_domid), vcpu, Info.VcpuCount);
        }
    }

    /// <summary>Pauses the domain, rewrites the vCPU's records of the HVM context, and unpauses it on every path.</summary>
    public void SetRegisters(VcpuId vcpu, Registers registers)
    {
        ArgumentNullException.ThrowIfNull(registers);
        lock (_gate)
        {
            ThrowIfReadOnly("setting registers");
            CheckVcpu(vcpu);
            _host.Pause(_domid);
            try
            {
                byte[] context = _host.GetHvmContext(_domid);
                HvmContext.SetRegisters(context, vcpu, Info.VcpuCount, registers);
                _host.SetHvmContext(_domid, context);
            }
            finally
            {
                _host.Unpause(_domid);
            }
        }
    }

    // ---------------------------------------------------------------- memory access

    public MemoryAccess GetMemoryAccess(Gfn gfn, View view)
    {
        lock (_gate)
        {
            ThrowIfDisposed();
            CheckView(view, allowDefault: true);
            return _host.GetMemAccess(_domid, view, gfn);
        }
    }

    public void SetMemoryAccess(Gfn gfn, View view, MemoryAccess access, MemoryAccessOptions options = MemoryAccessOptions.None) =>
        SetMemoryAccess(gfn, 1, view, access, options);

    /// <summary>Sets a range in one hypercall (view 0) or one multi-call per 4096 frames (altp2m views).</summary>
    public void SetMemoryAccess(Gfn first, ulong count, View view, MemoryAccess access, MemoryAccessOptions options = MemoryAccessOptions.None)
    {
        if (count == 0)
        {
            return;
        }

        lock (_gate)
        {
            ulong last = first.Value + count - 1;
            if (last < first.Value || (last > Info.MaxGfn.Value && !AllAllocated(Math.Max(first.Value, Info.MaxGfn.Value + 1), last)))
            {
                throw new ArgumentOutOfRangeException(nameof(count), $"Frames {first} to {first + (count - 1)} run past the guest's last frame {Info.MaxGfn} (frames this session allocated above it are allowed).");
            }

            ThrowIfReadOnly("setting memory access");
            CheckView(view, allowDefault: true);
            if ((access & MemoryAccess.RWX) != MemoryAccess.RWX)
            {
                // Without a listener Xen lifts a restriction at its first violation: the ring must be there first.
                EnsureRing();
            }

            if ((options & MemoryAccessOptions.IgnorePageWalkUpdates) != 0 && !_pageWalkEventsDisabled)
            {
                EnsureRing();
                _host.SetInguestPagefaultDisabled(_domid, true);
                _pageWalkEventsDisabled = true;
            }

            if (view == View.Default)
            {
                for (ulong i = 0; i < count; i++)
                {
                    ulong g = first.Value + i;
                    if (!_originalAccess.ContainsKey(g))
                    {
                        _originalAccess[g] = _host.GetMemAccess(_domid, View.Default, new Gfn(g));
                    }
                }
            }

            for (ulong done = 0; done < count;)
            {
                uint n = (uint)Math.Min(count - done, uint.MaxValue);
                _host.SetMemAccess(_domid, view, first + done, n, access);
                done += n;
            }
        }
    }

    // ---------------------------------------------------------------- views

    public View DefaultView => View.Default;

    public IReadOnlyCollection<View> Views
    {
        get
        {
            lock (_gate)
            {
                return _views.Order().ToArray();
            }
        }
    }

    public View CreateView(MemoryAccess defaultAccess)
    {
        lock (_gate)
        {
            ThrowIfReadOnly("creating a view");
            EnsureAltp2m();
            if ((defaultAccess & MemoryAccess.RWX) != MemoryAccess.RWX)
            {
                EnsureRing();
            }

            View view = _host.CreateView(_domid, defaultAccess);
            _views.Add(view);
            return view;
        }
    }

    public void DestroyView(View view)
    {
        lock (_gate)
        {
            ThrowIfReadOnly("destroying a view");
            if (view == View.Default)
            {
                throw new ArgumentException("View 0 is the host's own view and cannot be destroyed.", nameof(view));
            }

            CheckView(view, allowDefault: false);
            _host.DestroyView(_domid, view);
            _views.Remove(view);
            _changedGfns.RemoveWhere(c => c.View == view.Value);
        }
    }

    public void SwitchToView(View view)
    {
        lock (_gate)
        {
            ThrowIfReadOnly("switching views");
            CheckView(view, allowDefault: true);
            EnsureAltp2m();
            _host.SwitchToView(_domid, view);
            _viewSwitched = view != View.Default;
        }
    }

    public void ChangeViewGfn(View view, Gfn oldGfn, Gfn newGfn)
    {
        lock (_gate)
        {
            ThrowIfReadOnly("remapping a frame in a view");
            CheckView(view, allowDefault: true);
            EnsureAltp2m();
            _host.ChangeGfn(_domid, view, oldGfn, newGfn);
            _changedGfns.Add((view.Value, oldGfn.Value));
        }
    }

    public void ResetViewGfn(View view, Gfn gfn)
    {
        lock (_gate)
        {
            ThrowIfReadOnly("resetting a frame in a view");
            CheckView(view, allowDefault: true);
            EnsureAltp2m();
            _host.ChangeGfn(_domid, view, gfn, null);
            _changedGfns.Remove((view.Value, gfn.Value));
        }
    }

    private void EnsureAltp2m()
    {
        if (_altp2mReady)
        {
            return;
        }

        ulong mode = _host.GetHvmParam(_domid, XenCtrl.HvmParamAltp2m);
        if (mode == 0)
        {
            throw new VmiDriverException(
                $"Domain {_domid} ('{Domain.Name}') was not started with altp2m, which views need. Add altp2m = \"external\" to the domain's xl config " +
                "(xl.cfg; Xen before 4.14: altp2mhvm = 1), then shut the domain down and start it again: altp2m cannot be turned on in a running domain.",
                XenErrors.EOpNotSupp);
        }

        if (!_host.GetAltp2mState(_domid))
        {
            _host.SetAltp2mState(_domid, true);
            _altp2mEnabledByUs = true;
        }

        _altp2mReady = true;
    }

    private void CheckView(View view, bool allowDefault)
    {
        if (view == View.Default ? !allowDefault : !_views.Contains(view))
        {
            throw new ViewNotFoundException(view);
        }
    }

    // ---------------------------------------------------------------- VM control

    public void Pause()
    {
        lock (_gate)
        {
            ThrowIfDisposed();
            _host.Pause(_domid);
            _pauses++;
        }
    }

    public void Resume()
    {
        lock (_gate)
        {
            ThrowIfDisposed();
            if (_pauses == 0)
            {
                throw new InvalidOperationException($"Domain {_domid} is not paused by this session: each Resume answers one Pause of the same session.");
            }

            _host.Unpause(_domid);
            _pauses--;
        }
    }

    public Gfn AllocateGfn()
    {
        lock (_gate)
        {
            ThrowIfReadOnly("allocating a guest frame");
            ulong next = _host.MaximumGpfn(_domid) + 1;
            foreach (ulong g in _allocatedGfns)
            {
                next = Math.Max(next, g + 1);
            }

            var gfn = new Gfn(next);
            AllocateLocked(gfn);
            return gfn;
        }
    }

    public void AllocateGfn(Gfn gfn)
    {
        lock (_gate)
        {
            ThrowIfReadOnly("allocating a guest frame");
            AllocateLocked(gfn);
        }
    }

    private void AllocateLocked(Gfn gfn)
    {
        if (_allocatedGfns.Contains(gfn.Value))
        {
            throw new ArgumentException($"Frame {gfn} is already allocated by this session.", nameof(gfn));
        }

        _host.PopulatePhysmap(_domid, gfn);
        _allocatedGfns.Add(gfn.Value);
    }

    public void FreeGfn(Gfn gfn)
    {
        lock (_gate)
        {
            ThrowIfReadOnly("freeing a guest frame");
            if (!_allocatedGfns.Contains(gfn.Value))
            {
                throw new ArgumentException($"Frame {gfn} was not allocated by this session; only frames from AllocateGfn can be freed (freeing the guest's own memory would corrupt it).", nameof(gfn));
            }

            _host.DecreaseReservation(_domid, gfn);
            _allocatedGfns.Remove(gfn.Value);
        }
    }

    public void InjectInterrupt(VcpuId vcpu, Interrupt interrupt)
    {
        lock (_gate)
        {
            ThrowIfReadOnly("injecting an interrupt");
            CheckVcpu(vcpu);
            _host.InjectEvent(_domid, vcpu, interrupt);
        }
    }

    // ---------------------------------------------------------------- events

    public IReadOnlyCollection<EventMonitor> EnabledMonitors
    {
        get
        {
            lock (_gate)
            {
                return _monitors.ToArray();
            }
        }
    }

    public int EventsPending
    {
        get
        {
            lock (_gate)
            {
                return _processor?.Pending ?? 0;
            }
        }
    }

    public void EnableMonitor(EventMonitor monitor)
    {
        lock (_gate)
        {
            ThrowIfReadOnly("enabling the " + monitor + " monitor");
            if (_monitors.Contains(monitor))
            {
                return;
            }

            if (monitor.Kind == MonitorKind.ControlRegister)
            {
                NativeXenHost.ControlRegisterIndex((ControlRegister)monitor.Parameter); // validates before the ring is set up
            }

            EnsureRing();
            _host.SetMonitor(_domid, monitor, true);
            _monitors.Add(monitor);
            if (monitor.Kind == MonitorKind.Singlestep)
            {
                SetSinglestepAll(true);
            }
        }
    }

    public void DisableMonitor(EventMonitor monitor)
    {
        lock (_gate)
        {
            ThrowIfDisposed();
            if (!_monitors.Contains(monitor))
            {
                return;
            }

            if (monitor.Kind == MonitorKind.Singlestep)
            {
                SetSinglestepAll(false);
            }

            _host.SetMonitor(_domid, monitor, false);
            _monitors.Remove(monitor);
        }
    }

    private void SetSinglestepAll(bool enable)
    {
        for (int v = 0; v < Info.VcpuCount; v++)
        {
            _host.SetSinglestep(_domid, new VcpuId((ushort)v), enable);
        }

        _singlestepping = enable;
    }

    /// <summary>
    /// Waits for the event channel to signal, in slices, honouring <paramref name="cancellationToken"/>; true when requests
    /// are waiting. Holds the driver's lock only between slices, so every other call goes on meanwhile.
    /// </summary>
    public bool WaitForPending(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        IXenMonitorChannel channel;
        lock (_gate)
        {
            ThrowIfDisposed();
            channel = _channel ?? throw new InvalidOperationException(
                "No event source is enabled: enable a monitor or restrict memory access before waiting for events.");
            if (_processor!.Pending > 0)
            {
                return true;
            }
        }

        long deadline = timeout == Timeout.InfiniteTimeSpan ? long.MaxValue : Environment.TickCount64 + (long)Math.Max(0, timeout.TotalMilliseconds);
        while (!cancellationToken.IsCancellationRequested)
        {
            long left = deadline - Environment.TickCount64;
            if (left <= 0)
            {
                return false;
            }

            bool signalled = channel.Wait((int)Math.Min(left, WaitSliceMs));
            lock (_gate)
            {
                if (_disposed || !ReferenceEquals(channel, _channel))
                {
                    return false; // reset or disposed meanwhile: nothing left to wait for
                }

                if ((signalled || _processor!.Pending > 0) && (_processor!.Pending > 0 || _processor.Ring.FinalCheckForRequests()))
                {
                    return true;
                }
            }
        }

        return false;
    }

    /// <summary>Takes at most <paramref name="maxEvents"/> requests from the ring without blocking; the rest stay unconsumed.</summary>
    public IReadOnlyList<VmiPendingEvent> TakeEvents(int maxEvents)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxEvents, 1);
        lock (_gate)
        {
            ThrowIfDisposed();
            VmEventProcessor processor = _processor ?? throw new InvalidOperationException(
                "No event source is enabled: enable a monitor or restrict memory access before waiting for events.");
            return processor.Take(maxEvents);
        }
    }

    /// <summary>Puts the response for a taken event into the ring and kicks Xen. Ignored once answered or after a reset.</summary>
    public void Answer(VmiPendingEvent pending, VmiEventResponse response)
    {
        lock (_gate)
        {
            _processor?.Answer(pending, response); // no ring: the reset answered it
        }
    }

    /// <summary>Answers a taken event with Continue.</summary>
    public void Release(VmiPendingEvent pending)
    {
        lock (_gate)
        {
            _processor?.Release(pending);
        }
    }

    private void EnsureRing()
    {
        if (_channel is not null)
        {
            return;
        }

        IXenMonitorChannel channel = _host.EnableMonitorRing(_domid);
        try
        {
            var ring = new VmEventRing(channel.RingPage, channel.RingPageSize, channel.Notify);
            _processor = new VmEventProcessor(ring, (vcpu, interrupt) => _host.InjectEvent(_domid, vcpu, interrupt));
            _channel = channel;
        }
        catch
        {
            channel.Dispose();
            throw;
        }
    }

    // ---------------------------------------------------------------- cleanup

    /// <summary>
    /// Undoes everything this session changed, with the domain paused meanwhile: monitors off, single-stepping off,
    /// view 0 access restored, every vCPU back in view 0, views destroyed, remapped frames reset, altp2m turned off
    /// if this session turned it on, allocated frames freed, the ring drained and answered and torn down, and this
    /// session's pauses released. Every step runs even when one fails; failures are thrown together at the end.
    /// </summary>
    public void ResetState()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            ResetLocked();
        }
    }

    private void ResetLocked()
    {
        var errors = new List<Exception>();
        void Step(Action action)
        {
            try
            {
                action();
            }
#pragma warning disable CA1031 // every step must run; failures are collected and thrown together
            catch (Exception ex)
#pragma warning restore CA1031
            {
                errors.Add(ex);
            }
        }

        bool changed = _singlestepping || _monitors.Count > 0 || _originalAccess.Count > 0 || _pageWalkEventsDisabled || _viewSwitched
            || _views.Count > 0 || _changedGfns.Count > 0 || _altp2mEnabledByUs || _allocatedGfns.Count > 0 || _channel is not null;
        bool pausedForReset = false;
        if (changed)
        {
            // Paused while restoring, so the guest never runs half-restored and no new event slips in.
            Step(() =>
            {
                _host.Pause(_domid);
                pausedForReset = true;
            });
        }

        // Responses may have toggled single-stepping of single vCPUs: with a ring in use, every vCPU is stopped.
        if (_singlestepping || _channel is not null)
        {
            for (int v = 0; v < Info.VcpuCount; v++)
            {
                var vcpu = new VcpuId((ushort)v);
                Step(() => _host.SetSinglestep(_domid, vcpu, false));
            }

            _singlestepping = false;
        }

        foreach (EventMonitor m in _monitors.ToArray())
        {
            Step(() => _host.SetMonitor(_domid, m, false));
        }

        _monitors.Clear();

        // View 0: put back what each frame had, one range call per run of equal access.
        foreach ((ulong first, uint count, MemoryAccess access) in Runs(_originalAccess))
        {
            Step(() => _host.SetMemAccess(_domid, View.Default, new Gfn(first), count, access));
        }

        _originalAccess.Clear();

        if (_pageWalkEventsDisabled)
        {
            Step(() => _host.SetInguestPagefaultDisabled(_domid, false));
            _pageWalkEventsDisabled = false;
        }

        if (_viewSwitched || _views.Count > 0)
        {
            Step(() => _host.SwitchToView(_domid, View.Default));
            _viewSwitched = false;
        }

        foreach ((ushort view, ulong gfn) in _changedGfns.Where(c => c.View == 0).ToArray())
        {
            Step(() => _host.ChangeGfn(_domid, new View(view), new Gfn(gfn), null));
        }

        _changedGfns.Clear();

        foreach (View view in _views.ToArray())
        {
            Step(() => _host.DestroyView(_domid, view));
        }

        _views.Clear();

        if (_altp2mEnabledByUs)
        {
            Step(() => _host.SetAltp2mState(_domid, false));
            _altp2mEnabledByUs = false;
        }

        _altp2mReady = false;

        foreach (ulong gfn in _allocatedGfns.ToArray())
        {
            Step(() => _host.DecreaseReservation(_domid, new Gfn(gfn)));
        }

        _allocatedGfns.Clear();

        if (_channel is { } channel)
        {
            Step(() => TearDownRing(channel));
            _channel = null;
            _processor = null;
        }

        while (_pauses > 0)
        {
            Step(() => _host.Unpause(_domid));
            _pauses--;
        }

        if (pausedForReset)
        {
            Step(() => _host.Unpause(_domid));
        }

        if (errors.Count == 1)
        {
            throw new VmiDriverException($"Restoring domain {_domid} failed: {errors[0].Message}", (errors[0] as VmiDriverException)?.ErrorCode ?? 0, errors[0]);
        }

        if (errors.Count > 1)
        {
            throw new VmiDriverException(
                $"Restoring domain {_domid} failed in {errors.Count} steps: {string.Join(" | ", errors.Select(e => e.Message))}",
                0,
                new AggregateException(errors));
        }
    }

    /// <summary>Answers what is left in the ring, then disables it; while Xen says vCPUs still wait for slots, drains again.</summary>
    private void TearDownRing(IXenMonitorChannel channel)
    {
        for (int attempt = 0; ; attempt++)
        {
            _processor?.DrainAndContinue();
            try
            {
                channel.Dispose();
                return;
            }
            catch (VmiDriverException ex) when (ex.ErrorCode == XenErrors.EBusy && attempt < DisableRetries)
            {
                _host.Unpause(_domid); // let the waiting vCPUs put their requests in
                try
                {
                    Thread.Sleep(10);
                }
                finally
                {
                    _host.Pause(_domid);
                }
            }
        }
    }

    internal static IEnumerable<(ulong First, uint Count, MemoryAccess Access)> Runs(IReadOnlyDictionary<ulong, MemoryAccess> frames)
    {
        ulong first = 0;
        uint count = 0;
        MemoryAccess access = default;
        foreach (KeyValuePair<ulong, MemoryAccess> kv in frames.OrderBy(kv => kv.Key))
        {
            if (count > 0 && kv.Key == first + count && kv.Value == access && count < uint.MaxValue)
            {
                count++;
                continue;
            }

            if (count > 0)
            {
                yield return (first, count, access);
            }

            first = kv.Key;
            count = 1;
            access = kv.Value;
        }

        if (count > 0)
        {
            yield return (first, count, access);
        }
    }

    private void HookProcessExit()
    {
        AppDomain.CurrentDomain.ProcessExit += OnProcessExit;
        _exitHooks.Add(PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal));
        _exitHooks.Add(PosixSignalRegistration.Create(PosixSignal.SIGQUIT, OnSignal));
        _exitHooks.Add(PosixSignalRegistration.Create(PosixSignal.SIGHUP, OnSignal));
        if (_options.ResetOnInterrupt)
        {
            _exitHooks.Add(PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal));
        }
    }

    private void OnProcessExit(object? sender, EventArgs e) => Dispose();

    private void OnSignal(PosixSignalContext context)
    {
        try
        {
            ResetState();
        }
#pragma warning disable CA1031 // a signal handler must not throw; the failure is logged
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Log($"Restoring domain {_domid} on {context.Signal} failed: {ex.Message}");
        }
    }

    /// <summary>Restores the domain (<see cref="ResetState"/>) and closes the Xen handles. Safe to call more than once.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            try
            {
                ResetLocked();
            }
#pragma warning disable CA1031 // Dispose does not throw; the failure is logged
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Log(ex.Message);
            }
            finally
            {
                _disposed = true;
                AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
                foreach (IDisposable hook in _exitHooks)
                {
                    hook.Dispose();
                }

                _exitHooks.Clear();
                _host.Dispose();
            }
        }
    }

    private bool AllAllocated(ulong from, ulong to)
    {
        if (to - from >= (ulong)_allocatedGfns.Count)
        {
            return false;
        }

        for (ulong g = from; g <= to; g++)
        {
            if (!_allocatedGfns.Contains(g))
            {
                return false;
            }
        }

        return true;
    }

    private bool IsAllocated(Gfn gfn)
    {
        lock (_gate)
        {
            return _allocatedGfns.Contains(gfn.Value);
        }
    }

    private void CheckVcpu(VcpuId vcpu)
    {
        if (vcpu.Value >= Info.VcpuCount)
        {
            throw new VcpuNotFoundException(vcpu, Info.VcpuCount);
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    private void ThrowIfReadOnly(string operation)
    {
        ThrowIfDisposed();
        if (_options.ReadOnly)
        {
            throw new VmiDriverException(
                $"The session on domain {_domid} ('{Domain.Name}') is read-only: {operation} changes the guest. Connect without -ReadOnly (XenConnectOptions.ReadOnly = false) to do it.",
                XenErrors.EPerm);
        }
    }
}
