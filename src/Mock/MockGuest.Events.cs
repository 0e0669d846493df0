using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Mock;

/// <summary>
/// Events, as a hypervisor ring delivers them.
/// <list type="bullet">
/// <item>An event is raised by a vCPU (<see cref="Raise"/>, a <c>Trigger*</c> helper, or a scripted event
/// whose condition came true). The vCPU then blocks until the event is answered; an event it raises
/// meanwhile waits behind the answer. So each vCPU has at most one event in the ring or in a handler.</item>
/// <item>While the guest is paused no event is delivered and no scripted event fires; they follow the last Resume.</item>
/// <item>The answer takes effect on the vCPU: a control-register or MSR write happens unless denied, the
/// response's registers are set, its view is switched to, singlestep is toggled, a breakpoint is re-injected.</item>
/// <item>Every answer is recorded in <see cref="Responses"/>.</item>
/// </list>
/// </summary>
public sealed partial class MockGuest
{
    private readonly HashSet<EventMonitor> _monitors = [];
    private readonly Queue<PendingEvent> _ring = new();
    private readonly List<MockEventAnswer> _answers = [];
    private readonly List<Script> _scripts = [];
    private bool _suppressPump;

    public void EnableMonitor(EventMonitor monitor)
    {
        lock (_gate)
        {
            Enter(MockOperation.EnableMonitor, monitor);
            CheckMonitor(monitor);
            _monitors.Add(monitor);
            PumpLocked();
        }
    }

    /// <summary>Disables a monitor; disabling one that is not enabled does nothing.</summary>
    public void DisableMonitor(EventMonitor monitor)
    {
        lock (_gate)
        {
            Enter(MockOperation.DisableMonitor, monitor);
            CheckMonitor(monitor);
            _monitors.Remove(monitor);
        }
    }

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
                PumpLocked();
                return _ring.Count;
            }
        }
    }

    /// <summary>Every answer given so far, in order: the event, the response, and who answered.</summary>
    public IReadOnlyList<MockEventAnswer> Responses
    {
        get
        {
            lock (_gate)
            {
                return _answers.ToArray();
            }
        }
    }

    /// <summary>Scripted events whose condition has not come true yet.</summary>
    public int ScriptedEventsRemaining
    {
        get
        {
            lock (_gate)
            {
                return _scripts.Count;
            }
        }
    }

    /// <summary>
    /// Blocks until the ring holds events, <paramref name="timeout"/> passes (<see cref="Timeout.InfiniteTimeSpan"/> for
    /// ever, zero to poll) or <paramref name="cancellationToken"/> fires; true when events are pending.
    /// </summary>
    public bool WaitForPending(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        if (timeout < TimeSpan.Zero && timeout != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "A timeout is zero (poll), positive, or Timeout.InfiniteTimeSpan.");
        }

        using (cancellationToken.Register(static s => ((MockGuest)s!).Wake(), this))
        {
            lock (_gate)
            {
                PumpLocked();
                long start = Environment.TickCount64;
                while (_ring.Count == 0)
                {
                    if (cancellationToken.IsCancellationRequested)
                    {
                        return false;
                    }

                    ObjectDisposedException.ThrowIf(_disposed, this);

                    int wait = Timeout.Infinite;
                    if (timeout != Timeout.InfiniteTimeSpan)
                    {
                        double remaining = timeout.TotalMilliseconds - (Environment.TickCount64 - start);
                        if (remaining <= 0)
                        {
                            return false;
                        }

                        wait = (int)Math.Min(Math.Ceiling(remaining), int.MaxValue - 1);
                    }

                    Monitor.Wait(_gate, wait);
                }

                return true;
            }
        }
    }

    /// <summary>Takes at most <paramref name="maxEvents"/> events from the ring, in ring order; their vCPUs stay blocked until answered.</summary>
    public IReadOnlyList<VmiPendingEvent> TakeEvents(int maxEvents)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxEvents, 1);
        lock (_gate)
        {
            Enter(MockOperation.WaitForEvents, maxEvents);
            ObjectDisposedException.ThrowIf(_disposed, this);
            PumpLocked();
            var taken = new List<VmiPendingEvent>(Math.Min(maxEvents, _ring.Count));
            while (taken.Count < maxEvents && _ring.TryDequeue(out PendingEvent? next))
            {
                taken.Add(new VmiPendingEvent(next.Event, next));
            }

            return taken;
        }
    }

    /// <summary>
    /// Answers a taken event (recorded as <see cref="MockAnswerSource.Handler"/>). An invalid response (see
    /// <see cref="VmiEventResponse.Validate"/>, or a view that does not exist) releases the event and throws.
    /// </summary>
    public void Answer(VmiPendingEvent pending, VmiEventResponse response)
    {
        ArgumentNullException.ThrowIfNull(pending);
        ArgumentNullException.ThrowIfNull(response);
        PendingEvent mine = Own(pending);
        lock (_gate)
        {
            try
            {
                response.Validate(pending.Event);
                if (response.View is { } view && !_views.ContainsKey(view.Value))
                {
                    throw new ViewNotFoundException(view);
                }
            }
            catch
            {
                if (pending.TryMarkAnswered())
                {
                    AnswerLocked(mine, VmiEventResponse.Continue, MockAnswerSource.Fallback);
                }

                throw;
            }

            if (pending.TryMarkAnswered())
            {
                AnswerLocked(mine, response, MockAnswerSource.Handler);
            }
        }
    }

    /// <summary>Lets a taken event's vCPU go on with Continue (recorded as <see cref="MockAnswerSource.Fallback"/>).</summary>
    public void Release(VmiPendingEvent pending)
    {
        ArgumentNullException.ThrowIfNull(pending);
        PendingEvent mine = Own(pending);
        lock (_gate)
        {
            if (pending.TryMarkAnswered())
            {
                AnswerLocked(mine, VmiEventResponse.Continue, MockAnswerSource.Fallback);
            }
        }
    }

    private static PendingEvent Own(VmiPendingEvent pending) =>
        pending.DriverState as PendingEvent ?? throw new ArgumentException("The event was not taken from this mock guest.", nameof(pending));

    private void Wake()
    {
        lock (_gate)
        {
            Monitor.PulseAll(_gate);
        }
    }

    // ------------------------------------------------------------------ raising

    /// <summary>
    /// <paramref name="vmiEvent"/>'s vCPU raises it: it enters the ring now, or once the vCPU's current event is
    /// answered and the guest is not paused. The task completes with the response when the event is answered.
    /// </summary>
    public Task<VmiEventResponse> Raise(VmiEvent vmiEvent)
    {
        ArgumentNullException.ThrowIfNull(vmiEvent);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            VcpuState v = Vcpu(vmiEvent.Vcpu);
            var pending = new PendingEvent(vmiEvent);
            v.Backlog.Enqueue(pending);
            DeliverLocked();
            return pending.Task;
        }
    }

    /// <summary>Raises the events in order (a script given up front); events of one vCPU queue behind each other.</summary>
    public IReadOnlyList<Task<VmiEventResponse>> RaiseAll(IEnumerable<VmiEvent> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        return events.Select(Raise).ToArray();
    }

    /// <summary>Raises <paramref name="reason"/> on <paramref name="vcpu"/> if <paramref name="monitor"/> is enabled (singlestep: or the vCPU's singlestep is on); returns whether it was raised.</summary>
    public bool TriggerMonitored(VcpuId vcpu, EventMonitor monitor, EventReason reason)
    {
        ArgumentNullException.ThrowIfNull(reason);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            VcpuState v = Vcpu(vcpu);
            if (!IsMonitored(v, monitor))
            {
                return false;
            }

            RaiseLocked(vcpu, v, reason);
            return true;
        }
    }

    /// <summary>
    /// The vCPU writes <paramref name="newValue"/> to <paramref name="register"/>. With the monitor on, an event is
    /// raised and the write happens when it is answered without Deny; otherwise the write happens now. Returns whether an event was raised.
    /// </summary>
    public bool TriggerControlRegisterWrite(VcpuId vcpu, ControlRegister register, ulong newValue)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            VcpuState v = Vcpu(vcpu);
            if (IsMonitored(v, EventMonitor.ControlRegisterWrite(register)))
            {
                RaiseLocked(vcpu, v, new ControlRegisterWriteReason(register, newValue, ReadCr(v.Registers, register)));
                return true;
            }

            v.Registers = WithCr(v.Registers, register, newValue);
            return false;
        }
    }

    /// <summary>As <see cref="TriggerControlRegisterWrite"/>, for an MSR.</summary>
    public bool TriggerMsrWrite(VcpuId vcpu, uint msr, ulong newValue)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            VcpuState v = Vcpu(vcpu);
            if (IsMonitored(v, EventMonitor.MsrWrite(msr)))
            {
                RaiseLocked(vcpu, v, new MsrWriteReason(msr, newValue, ReadMsr(v, msr)));
                return true;
            }

            WriteMsr(v, msr, newValue);
            return false;
        }
    }

    /// <summary>
    /// The vCPU executes INT3 at <paramref name="va"/> (default: its RIP). Raises a breakpoint event if the monitor is
    /// on; the frame is found through the vCPU's page tables (a <see cref="PageFaultException"/> if unmapped).
    /// </summary>
    public bool TriggerBreakpoint(VcpuId vcpu, Va? va = null, uint instructionLength = 1)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            VcpuState v = Vcpu(vcpu);
            if (!IsMonitored(v, EventMonitor.Breakpoint))
            {
                return false;
            }

            RaiseLocked(vcpu, v, BreakpointReason(v, va, instructionLength));
            return true;
        }
    }

    /// <summary>The vCPU executes one instruction: a singlestep event if the monitor is on or the vCPU's singlestep was toggled on.</summary>
    public bool TriggerSinglestep(VcpuId vcpu)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            VcpuState v = Vcpu(vcpu);
            if (!IsMonitored(v, EventMonitor.Singlestep))
            {
                return false;
            }

            var rip = new Va(v.Registers.Rip);
            RaiseLocked(vcpu, v, new SinglestepReason(GfnOf(v, rip), rip));
            return true;
        }
    }

    public bool TriggerCpuid(VcpuId vcpu, uint leaf, uint subleaf = 0, uint instructionLength = 2) =>
        TriggerMonitored(vcpu, EventMonitor.Cpuid, new CpuidReason(leaf, subleaf, instructionLength));

    public bool TriggerGuestRequest(VcpuId vcpu) => TriggerMonitored(vcpu, EventMonitor.GuestRequest, new GuestRequestReason());

    /// <summary>
    /// The vCPU accesses <paramref name="pa"/> with <paramref name="access"/>. An event is raised only when the view the
    /// vCPU is in forbids some of that access; returns whether it was.
    /// </summary>
    public bool TriggerMemoryAccess(VcpuId vcpu, Pa pa, MemoryAccess access, Va? gla = null)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            VcpuState v = Vcpu(vcpu);
            CheckGfn(Amd64.GfnFromPa(pa));
            if (!Forbids(v, pa, access))
            {
                return false;
            }

            RaiseLocked(vcpu, v, new MemoryAccessReason(pa, gla, access));
            return true;
        }
    }

    // ------------------------------------------------------------------ scripted events

    /// <summary>Once <paramref name="monitor"/> is enabled (and the guest runs), <paramref name="vcpu"/> raises <paramref name="reason"/> once.</summary>
    public void ScriptMonitoredEvent(VcpuId vcpu, EventMonitor monitor, EventReason reason)
    {
        ArgumentNullException.ThrowIfNull(reason);
        AddScript(vcpu, v => IsMonitored(v, monitor), _ => reason);
    }

    /// <summary>Once CR monitoring of <paramref name="register"/> is enabled, <paramref name="vcpu"/> writes <paramref name="newValue"/> to it (once).</summary>
    public void ScriptControlRegisterWrite(VcpuId vcpu, ControlRegister register, ulong newValue) =>
        AddScript(vcpu, v => IsMonitored(v, EventMonitor.ControlRegisterWrite(register)), v => new ControlRegisterWriteReason(register, newValue, ReadCr(v.Registers, register)));

    /// <summary>Once MSR monitoring of <paramref name="msr"/> is enabled, <paramref name="vcpu"/> writes <paramref name="newValue"/> to it (once).</summary>
    public void ScriptMsrWrite(VcpuId vcpu, uint msr, ulong newValue) =>
        AddScript(vcpu, v => IsMonitored(v, EventMonitor.MsrWrite(msr)), v => new MsrWriteReason(msr, newValue, ReadMsr(v, msr)));

    /// <summary>
    /// Once breakpoint monitoring is enabled, <paramref name="vcpu"/> hits INT3 at <paramref name="va"/> (once). The frame is
    /// found now, through the vCPU's current page tables (a <see cref="PageFaultException"/> if <paramref name="va"/> is unmapped).
    /// </summary>
    public void ScriptBreakpoint(VcpuId vcpu, Va va, uint instructionLength = 1)
    {
        SoftwareBreakpointReason reason;
        lock (_gate)
        {
            reason = BreakpointReason(Vcpu(vcpu), va, instructionLength);
        }

        AddScript(vcpu, v => IsMonitored(v, EventMonitor.Breakpoint), _ => reason);
    }

    /// <summary>Once the view <paramref name="vcpu"/> is in forbids <paramref name="access"/> to <paramref name="pa"/>, the vCPU makes that access (once).</summary>
    public void ScriptMemoryAccess(VcpuId vcpu, Pa pa, MemoryAccess access, Va? gla = null) =>
        AddScript(vcpu, v => Forbids(v, pa, access), _ => new MemoryAccessReason(pa, gla, access));

    private void AddScript(VcpuId vcpu, Func<VcpuState, bool> condition, Func<VcpuState, EventReason> reason)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            Vcpu(vcpu);
            _scripts.Add(new Script(vcpu, condition, reason));
            PumpLocked();
        }
    }

    private sealed record Script(VcpuId Vcpu, Func<VcpuState, bool> Condition, Func<VcpuState, EventReason> Reason);

    // ------------------------------------------------------------------ vCPU event state

    /// <summary>True while <paramref name="vcpu"/> waits for the answer to an event.</summary>
    public bool IsVcpuBlocked(VcpuId vcpu)
    {
        lock (_gate)
        {
            return Vcpu(vcpu).Outstanding is not null;
        }
    }

    /// <summary>True when singlestep was toggled on for <paramref name="vcpu"/> by an event response.</summary>
    public bool IsSinglestepping(VcpuId vcpu)
    {
        lock (_gate)
        {
            return Vcpu(vcpu).Singlestep;
        }
    }

    /// <summary>How many fast-singlestep responses <paramref name="vcpu"/> carried out.</summary>
    public int GetFastSinglestepCount(VcpuId vcpu)
    {
        lock (_gate)
        {
            return Vcpu(vcpu).FastSinglesteps;
        }
    }

    /// <summary>How many Emulate responses <paramref name="vcpu"/> carried out.</summary>
    public int GetEmulationCount(VcpuId vcpu)
    {
        lock (_gate)
        {
            return Vcpu(vcpu).Emulations;
        }
    }

    // ------------------------------------------------------------------ internals

    private static void CheckMonitor(EventMonitor monitor)
    {
        if (!Enum.IsDefined(monitor.Kind)
            || (monitor.Kind == MonitorKind.ControlRegister && !Enum.IsDefined((ControlRegister)monitor.Parameter))
            || (monitor.Kind is not (MonitorKind.ControlRegister or MonitorKind.Msr) && monitor.Parameter != 0))
        {
            throw new ArgumentException($"{monitor.Kind} with parameter 0x{monitor.Parameter:x} is not an event monitor. Use one of: {string.Join(", ", EventMonitor.Names)}.", nameof(monitor));
        }
    }

    private bool IsMonitored(VcpuState v, EventMonitor monitor) =>
        _monitors.Contains(monitor) || (monitor.Kind == MonitorKind.Singlestep && v.Singlestep);

    private bool Forbids(VcpuState v, Pa pa, MemoryAccess access) =>
        (access & ~AccessOf(GetView(v.View), Amd64.GfnFromPa(pa))) != 0;

    private SoftwareBreakpointReason BreakpointReason(VcpuState v, Va? va, uint instructionLength)
    {
        Va at = va ?? new Va(v.Registers.Rip);
        return new SoftwareBreakpointReason(GfnOf(v, at), at, instructionLength);
    }

    private Gfn GfnOf(VcpuState v, Va va)
    {
        TranslationResult r = TranslateAs(v.Registers, va);
        if (!r.Success)
        {
            if (r.Fault == WalkFaultKind.NonCanonical)
            {
                throw new NonCanonicalAddressException(va, v.Registers.PagingMode);
            }

            throw new PageFaultException(va, v.Registers.TranslationRoot, r.FaultLevel, r.Fault);
        }

        return Amd64.GfnFromPa(r.Pa);
    }

    private void RaiseLocked(VcpuId id, VcpuState v, EventReason reason)
    {
        VmiEventFlags flags = VmiEventFlags.VcpuPaused | (v.View != View.Default ? VmiEventFlags.AltP2m : VmiEventFlags.None);
        v.Backlog.Enqueue(new PendingEvent(new VmiEvent(id, v.View, flags, v.Registers, reason)));
        DeliverLocked();
    }

    /// <summary>Fires scripted events whose condition holds, then delivers. Nothing happens while paused.</summary>
    private void PumpLocked()
    {
        if (_suppressPump || _pauseCount > 0 || _disposed)
        {
            return;
        }

        for (int i = 0; i < _scripts.Count; i++)
        {
            Script s = _scripts[i];
            VcpuState v = _vcpus[s.Vcpu.Value];
            if (s.Condition(v))
            {
                _scripts.RemoveAt(i--);
                RaiseLocked(s.Vcpu, v, s.Reason(v));
            }
        }

        DeliverLocked();
    }

    /// <summary>Moves each unblocked vCPU's next event into the ring.</summary>
    private void DeliverLocked()
    {
        if (_pauseCount > 0 || _disposed)
        {
            return;
        }

        bool any = false;
        foreach (VcpuState v in _vcpus)
        {
            if (v.Outstanding is null && v.Backlog.TryDequeue(out PendingEvent? next))
            {
                v.Outstanding = next;
                _ring.Enqueue(next);
                any = true;
            }
        }

        if (any)
        {
            Monitor.PulseAll(_gate);
        }
    }

    private void AnswerLocked(PendingEvent pending, VmiEventResponse response, MockAnswerSource source)
    {
        if (pending.Answered)
        {
            return;
        }

        pending.Answered = true;
        VmiEvent e = pending.Event;
        VcpuState v = _vcpus[e.Vcpu.Value];
        Apply(v, e, response);
        _answers.Add(new MockEventAnswer(e, response, source));
        if (ReferenceEquals(v.Outstanding, pending))
        {
            v.Outstanding = null;
        }

        pending.Complete(response);
        PumpLocked();
    }

    private void Apply(VcpuState v, VmiEvent e, VmiEventResponse response)
    {
        VmiEventResponseFlags flags = response.Flags;
        bool deny = (flags & VmiEventResponseFlags.Deny) != 0;
        bool reinject = (flags & VmiEventResponseFlags.ReinjectInterrupt) != 0;
        switch (e.Reason)
        {
            case ControlRegisterWriteReason cr when !deny:
                v.Registers = WithCr(v.Registers, cr.Register, cr.NewValue);
                break;
            case MsrWriteReason msr when !deny:
                WriteMsr(v, msr.Msr, msr.NewValue);
                break;
            case SoftwareBreakpointReason bp when reinject:
                v.Interrupts.Add(Interrupt.Breakpoint(bp.InstructionLength));
                break;
            case DebugExceptionReason db when reinject:
                v.Interrupts.Add(new Interrupt(db.Vector, db.Type, null, db.InstructionLength));
                break;
        }

        if (response.Registers is { } wanted)
        {
            v.Registers = v.Registers.WithGeneralPurpose(wanted); // validated: only these differ from the event's
        }

        bool fast = (flags & VmiEventResponseFlags.ToggleFastSinglestep) != 0;
        if (response.View is { } view && !fast && _views.ContainsKey(view.Value))
        {
            v.View = view;
        }

        if ((flags & VmiEventResponseFlags.ToggleSinglestep) != 0)
        {
            v.Singlestep = !v.Singlestep;
        }

        if (fast)
        {
            v.FastSinglesteps++;
        }

        if ((flags & VmiEventResponseFlags.Emulate) != 0)
        {
            v.Emulations++;
        }
    }

    /// <summary>Answers every event in the ring, in handlers, and waiting behind others, with Continue.</summary>
    private void ReleaseAllLocked(MockAnswerSource source)
    {
        var all = new List<PendingEvent>();
        foreach (VcpuState v in _vcpus)
        {
            if (v.Outstanding is { } o)
            {
                all.Add(o);
            }

            all.AddRange(v.Backlog);
            v.Backlog.Clear();
        }

        _ring.Clear();
        _suppressPump = true;
        try
        {
            foreach (PendingEvent p in all)
            {
                AnswerLocked(p, VmiEventResponse.Continue, source);
            }
        }
        finally
        {
            _suppressPump = false;
        }
    }

    private static ulong ReadCr(Registers r, ControlRegister register) => register switch
    {
        ControlRegister.Cr0 => r.Cr0,
        ControlRegister.Cr3 => r.Cr3,
        ControlRegister.Cr4 => r.Cr4,
        ControlRegister.Xcr0 => r.Xcr0,
        _ => throw new ArgumentOutOfRangeException(nameof(register), register, "Use Cr0, Cr3, Cr4 or Xcr0."),
    };

    private static Registers WithCr(Registers r, ControlRegister register, ulong value) => register switch
    {
        ControlRegister.Cr0 => r with { Cr0 = value },
        ControlRegister.Cr3 => r with { Cr3 = value },
        ControlRegister.Cr4 => r with { Cr4 = value },
        ControlRegister.Xcr0 => r with { Xcr0 = value },
        _ => throw new ArgumentOutOfRangeException(nameof(register), register, "Use Cr0, Cr3, Cr4 or Xcr0."),
    };

    private static ulong ReadMsr(VcpuState v, uint msr)
    {
        Registers r = v.Registers;
        return msr switch
        {
            0x174 => r.SysenterCs,
            0x175 => r.SysenterEsp,
            0x176 => r.SysenterEip,
            0x277 => r.MsrPat,
            0xC000_0080 => r.MsrEfer,
            0xC000_0081 => r.MsrStar,
            0xC000_0082 => r.MsrLstar,
            0xC000_0083 => r.MsrCstar,
            0xC000_0084 => r.MsrSyscallMask,
            0xC000_0102 => r.ShadowGs,
            0xC000_0103 => r.TscAux,
            _ => v.OtherMsrs.GetValueOrDefault(msr),
        };
    }

    private static void WriteMsr(VcpuState v, uint msr, ulong value)
    {
        Registers r = v.Registers;
        v.Registers = msr switch
        {
            0x174 => r with { SysenterCs = value },
            0x175 => r with { SysenterEsp = value },
            0x176 => r with { SysenterEip = value },
            0x277 => r with { MsrPat = value },
            0xC000_0080 => r with { MsrEfer = value },
            0xC000_0081 => r with { MsrStar = value },
            0xC000_0082 => r with { MsrLstar = value },
            0xC000_0083 => r with { MsrCstar = value },
            0xC000_0084 => r with { MsrSyscallMask = value },
            0xC000_0102 => r with { ShadowGs = value },
            0xC000_0103 => r with { TscAux = value },
            _ => r,
        };
        if (ReferenceEquals(v.Registers, r))
        {
            v.OtherMsrs[msr] = value;
        }
    }

    private sealed class PendingEvent(VmiEvent vmiEvent)
    {
        private readonly TaskCompletionSource<VmiEventResponse> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public VmiEvent Event { get; } = vmiEvent;

        public bool Answered { get; set; }

        public Task<VmiEventResponse> Task => _completion.Task;

        public void Complete(VmiEventResponse response) => _completion.TrySetResult(response);
    }
}
