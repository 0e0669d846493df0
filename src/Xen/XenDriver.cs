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
public sealed unsafe partial class XenDriver :
    IVmiDriver, IVmiRead, IVmiWrite, IVmiQueryProtection, IVmiSetProtection, IVmiQueryRegisters, IVmiSetRegisters,
    IVmiViewControl, IVmiEventControl, IVmiVmControl
{
    private const int PageShift = 12;
    private const uint MsrEfer = 0xC0000080;
    private const int WaitSliceMs = 100;
    private const int DisableRetries = 50;

    /// <summary>How long the teardown lets the vCPUs run so each applies a register write answered before it (see <see cref="LetVcpusApplyAnsweredWrites"/>).</summary>
    private const int WriteSettleMs = 2000;

    /// <summary>Xen holds monitored CR/MSR writes until they are answered (XEN_DOMCTL_MONITOR_OP_CONTROL_REGISTERS); until the ring goes.</summary>
    private bool _controlRegisterValues;

    /// <summary>Whether Xen holds a monitored CR/MSR write for its answer: always before 4.15, since then once asked.</summary>
    private bool WritesHeldForAnswers => _controlRegisterValues || XenVersion < new Version(4, 15);
    private static int s_sessions;

    private readonly IXenHost _host;
    private readonly uint _domid;
    private readonly XenConnectOptions _options;
    private readonly object _gate = new();
    private readonly HashSet<EventMonitor> _monitors = [];
    private readonly HashSet<View> _views = [];
    private readonly Dictionary<ulong, MemoryAccess> _originalAccess = []; // view 0: gfn -> access before our first change
    private readonly HashSet<(ushort View, ulong Gfn)> _changedGfns = [];
    private readonly HashSet<ulong> _allocatedGfns = [];
    private readonly HashSet<ushort> _singlestepVcpus = []; // vCPUs on which this session turned single-stepping on
    private readonly XenSessionRecord _owner;
    private readonly string _recordPath;
    private bool _recordWritten;
    private readonly List<IDisposable> _exitHooks = [];
    private IXenMonitorChannel? _channel;
    private VmEventProcessor? _processor;
    private bool _altp2mEnabledByUs;
    private bool _altp2mReady;
    private bool _viewSwitched;
    private bool _pageWalkEventsDisabled;
    private int _pauses;
    private bool _disposed;

    internal XenDriver(IXenHost host, XenDomainInfo domain, XenConnectOptions options, bool hookProcessExit)
    {
        _host = host;
        _domid = domain.Id;
        _options = options;
        Domain = domain;
        _owner = XenSessionRecord.ForThisProcess();
        _recordPath = string.Create(
            System.Globalization.CultureInfo.InvariantCulture,
            $"{XenSessionRecord.DirectoryOf(domain.Id)}/{_owner.Pid}-{Interlocked.Increment(ref s_sessions)}");
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

    /// <summary>The maker of the host's CPU: Intel VT-x and AMD SVM hosts offer different capabilities (docs/xen.md).</summary>
    public XenCpuVendor CpuVendor => _host.CpuVendor;

    /// <summary>
    /// What connecting found or did that the user should know, or null: a domain left changed by a vmi process that
    /// ended without restoring it (killed), and what this session undid (read-write) or could undo (read-only).
    /// </summary>
    public string? Notice { get; private set; }

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
            throw new VmiDriverException($"Domain {domain.Id} ('{domain.Name}') is a PV guest, which has no HVM context, nested paging or vm_event monitors; the Xen driver introspects HVM and PVH guests (type = \"hvm\" or type = \"pvh\" in the domain's config).");
        }

        if (domain.State is XenDomainState.Dying)
        {
            throw new VmiDriverException($"Domain {domain.Id} ('{domain.Name}') is dying: Xen is taking it down and there is no guest left to introspect.");
        }

        if (domain.State is XenDomainState.Shutdown or XenDomainState.Crashed && !options.ReadOnly)
        {
            throw new VmiDriverException(
                $"Domain {domain.Id} ('{domain.Name}') is {domain.State.ToString().ToLowerInvariant()} and kept for inspection (on_crash/on_poweroff = \"preserve\"): " +
                "its memory and registers can be read, but a guest that no longer runs cannot be changed or monitored. Connect read-only (-ReadOnly, XenConnectOptions.ReadOnly) for a post-mortem.");
        }

        var driver = new XenDriver(host, domain, options, hookProcessExit);
        try
        {
            driver.CheckLeftovers();
            return driver;
        }
        catch
        {
            driver.Dispose();
            throw;
        }
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
        if (page is not null && _int3s.Count > 0)
        {
            lock (_gate)
            {
                page = WithOriginalBytes(gfn, page); // a breakpoint's INT3 reads as the byte it replaced
            }
        }

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
            _host.WritePage(_domid, gfn, offset, KeepInt3s(gfn, offset, data));
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

    /// <summary>
    /// Pauses the domain, rewrites the vCPU's records of the HVM context and gives Xen back only the vCPU records
    /// (<see cref="HvmContext.VcpuRecords"/>: the rest of the snapshot would undo interrupts raised meanwhile), and
    /// unpauses it on every path.
    /// </summary>
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
                _host.SetHvmContext(_domid, HvmContext.VcpuRecords(context));
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
            try
            {
                return _host.GetMemAccess(_domid, view, gfn);
            }
            catch (VmiDriverException ex) when (IsMemAccessRefusal(ex))
            {
                throw MemAccessUnavailable(ex);
            }
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

            try
            {
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
            catch (VmiDriverException ex) when (IsMemAccessRefusal(ex))
            {
                throw MemAccessUnavailable(ex);
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

        try
        {
            if (!_host.GetAltp2mState(_domid))
            {
                _host.SetAltp2mState(_domid, true);
                _altp2mEnabledByUs = true;
            }
        }
        catch (VmiDriverException ex) when (ex.ErrorCode is XenErrors.EOpNotSupp or XenErrors.ENoSys && CpuVendor != XenCpuVendor.Intel)
        {
            throw new VmiDriverException(
                $"altp2m views are not available on this host: Xen {XenVersion} implements altp2m for Intel VT-x only, and this host's CPU is {VendorName}. " +
                $"Views work on an Intel VT-x host; here, read and monitor without them. (Xen answered: {ex.Message})",
                ex.ErrorCode,
                ex);
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
            SaveRecord();
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
            SaveRecord();
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

            if (monitor == EventMonitor.MsrWrite(MsrEfer) && CpuVendor == XenCpuVendor.Amd)
            {
                // Seen in the lab: the guest's boot code read EFER with SVME set, wrote it back, and Xen killed the domain.
                throw new VmiDriverException(
                    $"Monitoring writes of EFER (MSR 0xC0000080) is refused on this AMD host: Xen {XenVersion} on SVM drops the read intercept of a monitored MSR, " +
                    "so the guest reads the hardware EFER with SVME set, writes it back, and Xen refuses the write and crashes the domain (\"Invalid EFER update ... SVME without " +
                    "nested virt\", a triple fault). Monitor another MSR (LSTAR 0xC0000082, STAR, FMASK), or EFER on an Intel VT-x host.",
                    XenErrors.EOpNotSupp);
            }

            EnsureRing();
            try
            {
                if (!(monitor == EventMonitor.Breakpoint && _breakpointMonitorOn))
                {
                    _host.SetMonitor(_domid, monitor, true);
                }
            }
            catch (VmiDriverException ex) when (ex.ErrorCode is XenErrors.EOpNotSupp or XenErrors.ENoSys)
            {
                throw MonitorUnavailable(monitor, ex);
            }

            if (monitor == EventMonitor.Breakpoint)
            {
                _breakpointMonitorOn = true;
            }

            _monitors.Add(monitor);
            if (monitor.Kind == MonitorKind.Msr || (monitor.Kind == MonitorKind.ControlRegister && (ControlRegister)monitor.Parameter != ControlRegister.Cr3))
            {
                HoldRegisterWritesForAnswers(monitor);
            }

            try
            {
                if (monitor.Kind == MonitorKind.Singlestep)
                {
                    StartSinglestepAll();
                }
            }
            catch
            {
                _host.SetMonitor(_domid, monitor, false);
                _monitors.Remove(monitor);
                throw;
            }
            finally
            {
                SaveRecord();
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

            try
            {
                if (monitor.Kind == MonitorKind.Singlestep)
                {
                    foreach (ushort v in _singlestepVcpus.Order().ToArray())
                    {
                        StopSinglestep(v);
                    }
                }

                if (monitor == EventMonitor.Breakpoint && _breakpoints.Count > 0)
                {
                    // Xen's monitor stays on for this session's breakpoints; the guest's own INT3s go back to it.
                    _monitors.Remove(monitor);
                    return;
                }

                _host.SetMonitor(_domid, monitor, false);
                _monitors.Remove(monitor);
                if (monitor == EventMonitor.Breakpoint)
                {
                    _breakpointMonitorOn = false;
                }

                // Requests this monitor put in the ring before it went off would keep their vCPUs paused until the next wait
                // or the ring's teardown (the lab's guest froze after a CPUID monitor was disabled with requests waiting).
                _processor?.ContinueWaiting(r => IsFrom(monitor, r));
            }
            finally
            {
                SaveRecord();
            }
        }
    }

    /// <summary>Whether a ring request was raised by <paramref name="monitor"/>.</summary>
    private static bool IsFrom(EventMonitor monitor, in VmEventSt request) => monitor.Kind switch
    {
        MonitorKind.ControlRegister => request.Reason == VmEventAbi.ReasonWriteCtrlreg
            && request.U.WriteCtrlreg.Index == NativeXenHost.ControlRegisterIndex((ControlRegister)monitor.Parameter),
        MonitorKind.Msr => request.Reason == VmEventAbi.ReasonMovToMsr && (uint)request.U.MovToMsr.Msr == monitor.Parameter,
        MonitorKind.Breakpoint => request.Reason == VmEventAbi.ReasonSoftwareBreakpoint,
        MonitorKind.DebugException => request.Reason == VmEventAbi.ReasonDebugException,
        MonitorKind.Singlestep => request.Reason == VmEventAbi.ReasonSinglestep,
        MonitorKind.Cpuid => request.Reason == VmEventAbi.ReasonCpuid,
        MonitorKind.Io => request.Reason == VmEventAbi.ReasonIoInstruction,
        MonitorKind.GuestRequest => request.Reason == VmEventAbi.ReasonGuestRequest,
        MonitorKind.DescriptorAccess => request.Reason == VmEventAbi.ReasonDescriptorAccess,
        _ => false,
    };

    /// <summary>Starts single-stepping every vCPU; on a failure stops the ones it started and throws, explained.</summary>
    private void StartSinglestepAll()
    {
        for (int v = 0; v < Info.VcpuCount; v++)
        {
            try
            {
                _host.SetSinglestep(_domid, new VcpuId((ushort)v), true);
                _singlestepVcpus.Add((ushort)v);
            }
            catch (VmiDriverException ex)
            {
                foreach (ushort started in _singlestepVcpus.Order().ToArray())
                {
                    StopSinglestep(started);
                }

                throw ex.ErrorCode is XenErrors.EOpNotSupp or XenErrors.ENoSys ? MonitorUnavailable(EventMonitor.Singlestep, ex) : ex;
            }
        }
    }

    /// <summary>
    /// Stops single-stepping a vCPU this session started (or toggled by a response). Xen answering "not supported" means
    /// it could not have been on (SVM has no monitor trap flag; Xen ignores a toggle there): nothing to undo.
    /// </summary>
    private void StopSinglestep(ushort vcpu)
    {
        try
        {
            _host.SetSinglestep(_domid, new VcpuId(vcpu), false);
        }
        catch (VmiDriverException ex) when (ex.ErrorCode is XenErrors.EOpNotSupp or XenErrors.ENoSys)
        {
            // never on: nothing to restore
        }

        _singlestepVcpus.Remove(vcpu);
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
            return SortBreakpointHits(processor.Take(maxEvents));
        }
    }

    /// <summary>Puts the response for a taken event into the ring and kicks Xen. Ignored once answered or after a reset.</summary>
    public void Answer(VmiPendingEvent pending, VmiEventResponse response)
    {
        lock (_gate)
        {
            if (_processor is null)
            {
                return; // no ring: the reset answered it
            }

            if (TryAnswerBreakpointHit(pending, response))
            {
                return;
            }

            if (DenyOfAWriteAlreadyMade(pending, response) is { } refused)
            {
                // The vCPU must not stay paused on a refused answer: it is released with the rest of the answer, then the
                // caller hears that its Deny could not be honoured.
                _processor.Answer(pending, response! with { Flags = response!.Flags & ~VmiEventResponseFlags.Deny });
                throw refused;
            }

            bool toggles = response is not null && (response.Flags & VmiEventResponseFlags.ToggleSinglestep) != 0 && !pending.IsAnswered;
            _processor.Answer(pending, response!);
            if (toggles && _singlestepVcpus.Add(pending.Event.Vcpu.Value))
            {
                SaveRecord(); // Xen may have turned single-stepping on: the reset turns it off
            }
        }
    }

    /// <summary>Answers a taken event with Continue.</summary>
    public void Release(VmiPendingEvent pending)
    {
        lock (_gate)
        {
            if (_processor is not null && !TryAnswerBreakpointHit(pending, null))
            {
                _processor.Release(pending);
            }
        }
    }

    private void EnsureRing()
    {
        if (_channel is not null)
        {
            return;
        }

        IXenMonitorChannel channel;
        try
        {
            channel = _host.EnableMonitorRing(_domid);
        }
        catch (VmiDriverException ex) when (ex.ErrorCode == XenErrors.EBusy)
        {
            channel = TakeOverBusyRing(ex);
        }

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

        SaveRecord();
    }

    /// <summary>
    /// Xen says another ring is attached. A vmi that ended without restoring left it: undo what it left and take the
    /// ring. A running vmi session or another tool holds it: say which, and change nothing.
    /// </summary>
    private IXenMonitorChannel TakeOverBusyRing(VmiDriverException busy)
    {
        List<(string Path, XenSessionRecord Record)> records = ReadRecords();
        List<(string Path, XenSessionRecord Record)> dead = records.Where(r => !r.Record.IsOwnerAlive()).ToList();
        if (dead.Any(r => r.Record.HasRing))
        {
            string done = Reclaim(dead);
            Notice = Notice is null ? done : Notice + " " + done;
            Log(done);
            return _host.EnableMonitorRing(_domid);
        }

        if (records.FirstOrDefault(r => r.Record.HasRing && r.Record.IsOwnerAlive()) is { Record: { } live })
        {
            string who = live.Pid == Environment.ProcessId ? $"another session of this process (PID {live.Pid})" : $"vmi process {live.Pid}, which is still running";
            throw new VmiDriverException(
                $"Domain {_domid} ('{Domain.Name}') already has a monitor ring, held by {who}: Xen allows one per domain. Disconnect that session (or end that process) first.",
                XenErrors.EBusy,
                busy);
        }

        throw new VmiDriverException(
            $"Domain {_domid} ('{Domain.Name}') already has a monitor ring, and no vmi session recorded it: another introspection tool (LibVMI, DRAKVUF, xen-access) holds it. " +
            "Stop that tool first; a tool killed while holding it leaves the domain's vCPUs waiting, and only that tool or xl destroy releases them.",
            XenErrors.EBusy,
            busy);
    }

    /// <summary>The records of vmi sessions on this domain in xenstore; unreadable or foreign nodes are skipped.</summary>
    private List<(string Path, XenSessionRecord Record)> ReadRecords()
    {
        var list = new List<(string, XenSessionRecord)>();
        string dir = XenSessionRecord.DirectoryOf(_domid);
        try
        {
            foreach (string name in _host.ListStore(dir))
            {
                string path = dir + "/" + name;
                if (path != _recordPath && XenSessionRecord.Parse(_host.ReadStore(path)) is { } record)
                {
                    list.Add((path, record));
                }
            }
        }
        catch (VmiDriverException ex)
        {
            Log($"Reading the vmi session records of domain {_domid} in xenstore failed: {ex.Message}");
        }

        return list;
    }

    /// <summary>
    /// At connect: a session record whose process is gone means a vmi was killed with the domain changed. Read-write,
    /// undo what it names; read-only, say so. Never throws: what it did or could not do goes to <see cref="Notice"/>.
    /// </summary>
    private void CheckLeftovers()
    {
        List<(string Path, XenSessionRecord Record)> dead = ReadRecords().Where(r => !r.Record.IsOwnerAlive()).ToList();
        if (dead.Count == 0)
        {
            return;
        }

        if (_options.ReadOnly)
        {
            Notice = $"Domain {_domid} ('{Domain.Name}') was left changed by {Owners(dead)} that ended without restoring it ({Describe(dead)}). " +
                "This read-only session changes nothing; connect read-write once to undo it.";
            return;
        }

        Notice = Reclaim(dead);
        Log(Notice);
    }

    private static string Owners(List<(string Path, XenSessionRecord Record)> dead) =>
        dead.Count == 1 ? $"vmi process {dead[0].Record.Pid}" : $"vmi processes {string.Join(", ", dead.Select(d => d.Record.Pid))}";

    private static string Describe(List<(string Path, XenSessionRecord Record)> dead)
    {
        var parts = new List<string>();
        if (dead.Any(d => d.Record.HasRing))
        {
            parts.Add("its monitor ring, whose unanswered events keep vCPUs waiting");
        }

        EventMonitor[] monitors = dead.SelectMany(d => d.Record.Monitors).Distinct().ToArray();
        if (monitors.Length > 0)
        {
            parts.Add("monitors " + string.Join(", ", monitors));
        }

        if (dead.Any(d => d.Record.SinglestepVcpus.Count > 0))
        {
            parts.Add("single-stepping on vCPU " + string.Join(", ", dead.SelectMany(d => d.Record.SinglestepVcpus).Distinct().Order()));
        }

        int pauses = dead.Sum(d => d.Record.Pauses);
        if (pauses > 0)
        {
            parts.Add($"{pauses} pause(s) of the domain");
        }

        int int3s = dead.Sum(d => d.Record.Int3s.Count);
        if (int3s > 0)
        {
            parts.Add($"{int3s} breakpoint INT3(s) in guest memory");
        }

        return string.Join("; ", parts);
    }

    /// <summary>
    /// Undoes what dead sessions left, with the domain paused meanwhile: their monitors off, their single-stepping off,
    /// their ring torn down and the vCPUs it left waiting released (a fresh ring answers each vCPU "continue": Xen
    /// unpauses a vCPU on any response that says it was paused), their pauses released, their records removed.
    /// Returns what it did, in words; failures are named in it too.
    /// </summary>
    private string Reclaim(List<(string Path, XenSessionRecord Record)> dead)
    {
        var done = new List<string>();
        var failed = new List<string>();
        bool Step(string what, Action action)
        {
            try
            {
                action();
                done.Add(what);
                return true;
            }
            catch (Exception ex) when (ex is VmiDriverException or InvalidOperationException)
            {
                failed.Add($"{what}: {ex.Message}");
                return false;
            }
        }

        bool paused = Step("paused the domain meanwhile", () => _host.Pause(_domid));
        done.Clear();
        foreach (EventMonitor m in dead.SelectMany(d => d.Record.Monitors).Distinct())
        {
            Step($"turned the {m} monitor off", () => SetMonitorOffTolerant(m));
        }

        foreach (ushort v in dead.SelectMany(d => d.Record.SinglestepVcpus).Distinct().Order())
        {
            Step($"stopped single-stepping vCPU {v}", () =>
            {
                try
                {
                    _host.SetSinglestep(_domid, new VcpuId(v), false);
                }
                catch (VmiDriverException ex) when (ex.ErrorCode is XenErrors.EOpNotSupp or XenErrors.ENoSys)
                {
                    // it could not have been on
                }
            });
        }

        RestoreDeadInt3s(dead.SelectMany(d => d.Record.Int3s).Distinct(), Step);

        if (dead.Any(d => d.Record.HasRing))
        {
            if (Step("tore its monitor ring down", () => _host.DisableMonitorRing(_domid)))
            {
                Step($"released the vCPUs its unanswered events left waiting (each answered \"continue\")", ReleaseWaitingVcpus);
            }
        }

        int pauses = dead.Sum(d => d.Record.Pauses);
        for (int i = 0; i < pauses; i++)
        {
            if (!Step("released a pause it held", () => _host.Unpause(_domid)))
            {
                break;
            }
        }

        foreach ((string path, _) in dead)
        {
            try
            {
                _host.RemoveStore(path);
            }
            catch (VmiDriverException ex)
            {
                failed.Add($"removing its record {path}: {ex.Message}");
            }
        }

        if (paused)
        {
            try
            {
                _host.Unpause(_domid);
            }
            catch (VmiDriverException ex)
            {
                failed.Add($"unpausing the domain: {ex.Message}");
            }
        }

        string summary = string.Join("; ", done.GroupBy(d => d).Select(g => g.Count() == 1 ? g.Key : $"{g.Key} (x{g.Count()})"));
        string text = $"Domain {_domid} ('{Domain.Name}') was left changed by {Owners(dead)} that ended without restoring it (killed?). Reclaimed: {(summary.Length == 0 ? "nothing" : summary)}.";
        if (dead.Any(d => d.Record.HasRing) && CpuVendor != XenCpuVendor.Unknown)
        {
            text += " A control-register or MSR write that was waiting for the dead session's answer is dropped by Xen when its ring goes (docs/xen.md).";
        }

        if (failed.Count > 0)
        {
            text += " Failed: " + string.Join(" | ", failed) + ".";
        }

        return text;
    }

    /// <summary>Monitor off; Xen's "already off" (EEXIST) and "no such monitor here" count as done.</summary>
    private void SetMonitorOffTolerant(EventMonitor monitor)
    {
        try
        {
            _host.SetMonitor(_domid, monitor, false);
        }
        catch (VmiDriverException ex) when (ex.ErrorCode is XenErrors.EExist or XenErrors.EOpNotSupp or XenErrors.ENoSys)
        {
        }
    }

    /// <summary>A fresh ring, one unsolicited "continue" per vCPU (Xen ignores it for a vCPU that waits for nothing), torn down.</summary>
    private void ReleaseWaitingVcpus()
    {
        IXenMonitorChannel channel = _host.EnableMonitorRing(_domid);
        Exception? failure = null;
        try
        {
            var ring = new VmEventRing(channel.RingPage, channel.RingPageSize, channel.Notify);
            ring.ReleasePausedVcpus(Info.VcpuCount);
        }
#pragma warning disable CA1031 // the ring must come down whatever happened; the failure is rethrown below
        catch (Exception ex)
#pragma warning restore CA1031
        {
            failure = ex;
        }

        TearDownRing(channel, processor: null);
        if (failure is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        }
    }

    /// <summary>
    /// Mirrors what this session has changed into its xenstore record (removed when nothing is left), so that if this
    /// process is killed the next session can undo it. A failure is logged: it must not stop the change itself.
    /// </summary>
    private void SaveRecord()
    {
        XenSessionRecord record = _owner with
        {
            HasRing = _channel is not null,
            Monitors = _breakpointMonitorOn ? _monitors.Append(EventMonitor.Breakpoint).Distinct().ToArray() : _monitors.ToArray(),
            Int3s = Int3Record(),
            SinglestepVcpus = _singlestepVcpus.Order().ToArray(),
            Pauses = _pauses,
        };
        try
        {
            if (!record.IsEmpty)
            {
                _host.WriteStore(_recordPath, record.Format());
                _recordWritten = true;
            }
            else if (_recordWritten)
            {
                _host.RemoveStore(_recordPath);
                _recordWritten = false;
            }
        }
        catch (VmiDriverException ex)
        {
            Log($"Keeping this session's record in xenstore ({_recordPath}) failed: {ex.Message}. If this process is killed, the next session cannot undo what it left.");
        }
    }

    private string VendorName => CpuVendor switch
    {
        XenCpuVendor.Intel => "Intel",
        XenCpuVendor.Amd => "AMD",
        _ => "of an unknown vendor",
    };

    private bool IsMemAccessRefusal(VmiDriverException ex) =>
        ex.ErrorCode is XenErrors.EInval or XenErrors.EOpNotSupp or XenErrors.ENoSys && CpuVendor != XenCpuVendor.Intel;

    private VmiDriverException MemAccessUnavailable(VmiDriverException ex) => new(
        $"Memory access restrictions (mem_access) are not available on this host: Xen {XenVersion} implements them for Intel VT-x with EPT only, " +
        $"and this host's CPU is {VendorName}. They work on an Intel VT-x host. (Xen answered: {ex.Message})",
        ex.ErrorCode,
        ex);

    private VmiDriverException MonitorUnavailable(EventMonitor monitor, VmiDriverException ex)
    {
        if (monitor.Kind == MonitorKind.Singlestep)
        {
            string why = CpuVendor == XenCpuVendor.Amd
                ? "Xen single-steps HVM guests with Intel VT-x's monitor trap flag, and this host's CPU is AMD (SVM has no such flag)"
                : $"Xen single-steps HVM guests with Intel VT-x's monitor trap flag, which this {VendorName} CPU does not offer";
            return new VmiDriverException(
                $"Single-stepping is not available on this host: {why}. It works on Intel VT-x hosts; here a breakpoint on the next instruction does the same job. (Xen {XenVersion} answered: {ex.Message})",
                ex.ErrorCode,
                ex);
        }

        return new VmiDriverException(
            $"Xen {XenVersion} on this {VendorName} CPU does not offer the {monitor} monitor. (Xen answered: {ex.Message})",
            ex.ErrorCode,
            ex);
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

        bool changed = _singlestepVcpus.Count > 0 || _monitors.Count > 0 || _int3s.Count > 0 || _breakpointMonitorOn || _originalAccess.Count > 0 || _pageWalkEventsDisabled || _viewSwitched
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

        // Only the vCPUs this session started single-stepping, or toggled by a response: never undo what was never done.
        foreach (ushort v in _singlestepVcpus.Order().ToArray())
        {
            Step(() => StopSinglestep(v));
        }

        _singlestepVcpus.Clear();

        // Every INT3 out while the domain is paused, before the ring goes: the vCPUs it releases run the original bytes.
        RemoveAllBreakpoints(Step);

        foreach (EventMonitor m in _monitors.ToArray())
        {
            Step(() => _host.SetMonitor(_domid, m, false));
        }

        _monitors.Clear();
        _breakpointMonitorOn = false;

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
            int held = _pauses + (pausedForReset ? 1 : 0);
            Step(() => TearDownRing(channel, _processor, held));
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

        if (_recordWritten)
        {
            SaveRecord(); // nothing of this session is left to undo
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

    /// <summary>
    /// Since Xen 4.15 a monitored CR or MSR write is made before its event is sent, and a Deny in the answer changes
    /// nothing, unless the monitor asked Xen to hold such writes for the answer (XEN_DOMCTL_MONITOR_OP_CONTROL_REGISTERS,
    /// which libxenctrl has no wrapper for). Found in the lab: 1439 CR4.TSD writes answered Deny, and the guest's RDTSC
    /// still faulted. Asked once per ring, with the first CR0/CR4/XCR0 or MSR monitor; the ring's teardown turns it off
    /// again. Not for CR3 alone: a CR3 write is rarely denied, it comes at every context switch, and in the nested lab the
    /// two runs that held CR3 writes (a CR3 monitor through every exit path) both stopped the whole machine (QEMU's
    /// emulated SVM left the domU halted with Xen's timer interrupt pending), the runs that did not, never did. A Deny of
    /// a write Xen has already made is refused (<see cref="DenyOfAWriteAlreadyMade"/>).
    /// </summary>
    private void HoldRegisterWritesForAnswers(EventMonitor monitor)
    {
        if (WritesHeldForAnswers)
        {
            return; // before 4.15, Xen always held the write for the answer
        }

        try
        {
            _host.EnableControlRegisterValues(_domid);
            _controlRegisterValues = true;
        }
        catch (VmiDriverException ex)
        {
            _host.SetMonitor(_domid, monitor, false);
            _monitors.Remove(monitor);
            throw new VmiDriverException(
                $"The {monitor} monitor was not turned on: Xen {XenVersion} refused to hold monitored register writes until they are answered ({ex.Message}), " +
                "so a Deny would be ignored. Check that this dom0 may use the monitor domctls (XSM/Flask policy).",
                ex.ErrorCode,
                ex);
        }
    }

    /// <summary>
    /// A Deny only keeps out a register write Xen holds for the answer; one it has already made (a CR3 write with no
    /// CR0/CR4/XCR0/MSR monitor on, or any on Xen 4.15+ if holding was not set up) cannot be undone by the answer, so
    /// such a Deny is refused instead of being silently ignored: the event is answered without it and the error says so.
    /// </summary>
    private VmiDriverException? DenyOfAWriteAlreadyMade(VmiPendingEvent pending, VmiEventResponse? response)
    {
        if (response is null || (response.Flags & VmiEventResponseFlags.Deny) == 0 || WritesHeldForAnswers
            || pending.IsAnswered || pending.Event.Reason is not (ControlRegisterWriteReason or MsrWriteReason))
        {
            return null;
        }

        return new VmiDriverException(
            $"A Deny cannot keep out this {pending.Event.Reason.Describe()} write: Xen {XenVersion} has already made it. Xen holds CR0, CR4, XCR0 and MSR " +
            "writes for the answer once such a monitor is on in the session; for CR3 writes, enable a CR0 or CR4 monitor too before the write you want to deny. " +
            "The event was answered without the Deny: the guest goes on with the write made.",
            XenErrors.EOpNotSupp);
    }

    /// <summary>
    /// With writes held for answers, Xen applies an answered CR/MSR write only when its vCPU next runs
    /// (hvm_vm_event_do_resume); a ring torn down before that frees the held write and the guest loses it (Xen's domctl.h:
    /// "can result in guest-crashes when the monitor subsystem is being turned off"). So before the teardown, with every
    /// monitor already off, the pauses this session holds are let go until each vCPU has run (its CPU time moved) or
    /// halted, for at most <see cref="WriteSettleMs"/>; then the domain is paused again as it was.
    /// </summary>
    private void LetVcpusApplyAnsweredWrites(int heldPauses)
    {
        var waiting = new Dictionary<ushort, ulong>();
        for (ushort v = 0; v < Info.VcpuCount; v++)
        {
            (bool idle, ulong time) = _host.GetVcpuRunState(_domid, new VcpuId(v));
            if (!idle)
            {
                waiting[v] = time;
            }
        }

        if (waiting.Count == 0)
        {
            return;
        }

        int released = 0;
        try
        {
            for (; released < heldPauses; released++)
            {
                _host.Unpause(_domid);
            }

            long deadline = Environment.TickCount64 + WriteSettleMs;
            while (waiting.Count > 0 && Environment.TickCount64 < deadline)
            {
                foreach ((ushort v, ulong time) in waiting.ToArray())
                {
                    (bool idle, ulong now) = _host.GetVcpuRunState(_domid, new VcpuId(v));
                    if (idle || now != time)
                    {
                        waiting.Remove(v);
                    }
                }

                if (waiting.Count > 0)
                {
                    Thread.Sleep(1);
                }
            }
        }
        finally
        {
            for (; released > 0; released--)
            {
                _host.Pause(_domid);
            }
        }
    }

    /// <summary>Answers what is left in the ring, then disables it; while Xen says vCPUs still wait for slots, drains again.</summary>
    private void TearDownRing(IXenMonitorChannel channel, VmEventProcessor? processor, int heldPauses = 0)
    {
        for (int attempt = 0; ; attempt++)
        {
            processor?.DrainAndContinue();
            if (_controlRegisterValues && processor is not null)
            {
                LetVcpusApplyAnsweredWrites(heldPauses);
            }

            try
            {
                channel.Dispose();
                _controlRegisterValues = false;
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
