using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;
using Vmi.Xen.Native;
using Vmi.Xen.Tests.Events;

namespace Vmi.Xen.Tests.Driver;

/// <summary>A Xen in memory behind <see cref="IXenHost"/>: keeps the state the driver changes so tests can see it restored.</summary>
internal sealed unsafe class SimulatedXenHost : IXenHost
{
    public const uint GuestId = 7;

    public List<string> Calls { get; } = [];

    public List<XenDomainInfo> Domains { get; } =
    [
        new(0, "Domain-0", 4, 4UL << 30, XenDomainState.Running, IsHvm: false),
        new(GuestId, "win10", 2, 2UL << 30, XenDomainState.Running),
        new(9, "pv-guest", 1, 1UL << 30, XenDomainState.Blocked, IsHvm: false),
    ];

    public Dictionary<ulong, byte[]> Memory { get; } = [];

    public int PauseCount { get; private set; }

    public ulong MaxGpfn { get; set; } = 0x7FFFF;

    public ulong Altp2mParam { get; set; } = 2; // external

    public bool Altp2mState { get; set; }

    public View ActiveView { get; private set; }

    public Dictionary<(ushort View, ulong Gfn), MemoryAccess> Access { get; } = [];

    public HashSet<View> ViewsInXen { get; } = [];

    public Dictionary<(ushort View, ulong Gfn), ulong> Remapped { get; } = [];

    public HashSet<EventMonitor> Monitors { get; } = [];

    public HashSet<ushort> Singlestepping { get; } = [];

    public HashSet<ulong> Populated { get; } = [];

    public List<(VcpuId Vcpu, Interrupt Interrupt)> Injected { get; } = [];

    public bool PageWalkEventsDisabled { get; private set; }

    public byte[] HvmContext { get; set; } = BuildContext(2);

    public SimulatedChannel? Channel { get; private set; }

    public bool Disposed { get; private set; }

    /// <summary>Makes the named call throw once it is reached.</summary>
    public Func<string, Exception?> Fail { get; set; } = _ => null;

    public Version Version { get; } = new(4, 17);

    /// <summary>
    /// The host CPU. On AMD the simulated Xen refuses what Xen 4.17 refuses on SVM, with the same errno the lab saw:
    /// single-stepping (EOPNOTSUPP: no monitor trap flag), mem_access (EINVAL), altp2m (EOPNOTSUPP).
    /// </summary>
    public XenCpuVendor CpuVendor { get; set; } = XenCpuVendor.Intel;

    /// <summary>vCPUs paused by a request that waits for an answer (vm_event_vcpu_pause): only a response releases them.</summary>
    public HashSet<uint> WaitingVcpus { get; } = [];

    /// <summary>xenstore.</summary>
    public Dictionary<string, string> Store { get; } = new(StringComparer.Ordinal);

    private bool Amd => CpuVendor == XenCpuVendor.Amd;

    private static VmiDriverException Errno(int errno, string what) => XenErrors.Create(errno, what, GuestId);

    private void Call(string name)
    {
        Calls.Add(name);
        if (Fail(name) is { } ex)
        {
            throw ex;
        }
    }

    public IReadOnlyList<XenDomainInfo> ListDomains() => Domains;

    public XenDomainInfo? GetDomainInfo(uint domid) => Domains.FirstOrDefault(d => d.Id == domid);

    public ulong MaximumGpfn(uint domid) => MaxGpfn;

    public void Pause(uint domid)
    {
        Call("Pause");
        PauseCount++;
    }

    public void Unpause(uint domid)
    {
        Call("Unpause");
        if (PauseCount == 0)
        {
            throw new InvalidOperationException("unpause of a domain that is not paused");
        }

        PauseCount--;
        if (PauseCount == 0)
        {
            // The vCPUs that are not waiting for an answer run: each applies the register write held for it (Xen's
            // hvm_vm_event_do_resume) and its CPU time moves.
            foreach (uint v in HeldWrites.Where(v => !WaitingVcpus.Contains(v)).ToArray())
            {
                HeldWrites.Remove(v);
                AppliedWrites++;
            }

            RunTicks++;
        }
    }

    /// <summary>XEN_DOMCTL_MONITOR_OP_CONTROL_REGISTERS was sent for this ring: CR/MSR writes wait for their answers.</summary>
    public bool ControlRegisterValues { get; private set; }

    /// <summary>vCPUs whose answered CR/MSR write Xen holds until they next run.</summary>
    public HashSet<uint> HeldWrites { get; } = [];

    /// <summary>Held writes the vCPUs applied; and those lost because the ring went before their vCPU ran.</summary>
    public int AppliedWrites { get; private set; }

    public int LostWrites { get; private set; }

    /// <summary>Times the domain ran (every unpause to a pause count of 0): the vCPUs' CPU time.</summary>
    public ulong RunTicks { get; private set; }

    public void EnableControlRegisterValues(uint domid)
    {
        Call("EnableControlRegisterValues");
        if (Channel is null)
        {
            throw new VmiDriverException("no ring", XenErrors.ENoDev);
        }

        ControlRegisterValues = true;
    }

    public (bool Blocked, ulong CpuTime) GetVcpuRunState(uint domid, VcpuId vcpu) => (false, RunTicks);

    public MappedPage? MapPage(uint domid, Gfn gfn) => Memory.TryGetValue(gfn.Value, out byte[]? page) ? new MappedPage(gfn, page) : null;

    public void WritePage(uint domid, Gfn gfn, int offset, ReadOnlySpan<byte> data)
    {
        Call("WritePage");
        data.CopyTo(Memory[gfn.Value].AsSpan(offset));
    }

    public byte[] GetHvmContext(uint domid)
    {
        Call("GetHvmContext");
        byte[] snapshot = (byte[])HvmContext.Clone();
        AfterGetHvmContext?.Invoke();
        return snapshot;
    }

    /// <summary>Runs once a snapshot has been taken: what happens to the domain after it (an interrupt raised while paused).</summary>
    public Action? AfterGetHvmContext { get; set; }

    /// <summary>vCPUs a loaded context left down (Xen's hvm_load: a vCPU with no CPU record in the context stays down).</summary>
    public HashSet<ushort> DownVcpus { get; } = [];

    /// <summary>
    /// Loads the records of <paramref name="context"/> over the domain's, as Xen's hvm_load does: the HEADER first, each
    /// record replaces the one of the same type and instance, records it is not given keep their state, and every vCPU
    /// without a CPU record in the context is left down.
    /// </summary>
    public void SetHvmContext(uint domid, byte[] context)
    {
        Call("SetHvmContext");
        List<(ushort Code, ushort Instance, byte[] Record)> given = Records(context);
        if (given.Count == 0 || given[0].Code != HvmSaveDescriptor.CodeHeader)
        {
            throw Errno(61, "to write the HVM context (xc_domain_hvm_setcontext): no HEADER record first");
        }

        List<(ushort Code, ushort Instance, byte[] Record)> state = Records(HvmContext);
        foreach ((ushort code, ushort instance, byte[] record) in given)
        {
            int at = state.FindIndex(r => r.Code == code && r.Instance == instance);
            if (at >= 0)
            {
                state[at] = (code, instance, record);
            }
        }

        foreach ((ushort code, ushort instance, _) in state.Where(r => r.Code == HvmSaveDescriptor.CodeCpu))
        {
            if (!given.Any(r => r.Code == code && r.Instance == instance))
            {
                DownVcpus.Add(instance);
            }
        }

        HvmContext = [.. state.SelectMany(r => r.Record)];
    }

    /// <summary>The records of a context, each with its descriptor, END included.</summary>
    internal static List<(ushort Code, ushort Instance, byte[] Record)> Records(byte[] context)
    {
        var records = new List<(ushort, ushort, byte[])>();
        int offset = 0;
        while (offset + 8 <= context.Length)
        {
            HvmSaveDescriptor d = MemoryMarshal.Read<HvmSaveDescriptor>(context.AsSpan(offset));
            int end = offset + 8 + (int)d.Length;
            records.Add((d.Typecode, d.Instance, context[offset..end]));
            if (d.Typecode == HvmSaveDescriptor.CodeEnd)
            {
                break;
            }

            offset = end;
        }

        return records;
    }

    /// <summary>HVM_SAVE_CODE(LAPIC_REGS): a vCPU's local APIC page (hvm_hw_lapic_regs), IRR at 0x200.</summary>
    public const ushort CodeLapicRegs = 6;

    /// <summary>Raises <paramref name="vector"/> in the vCPU's LAPIC IRR, as vlapic_set_irq does for an event channel upcall.</summary>
    public void RaiseVector(ushort vcpu, byte vector) => HvmContext[LapicIrrOffset(vcpu, vector)] |= (byte)(1 << (vector % 8));

    public bool VectorPending(ushort vcpu, byte vector) => (HvmContext[LapicIrrOffset(vcpu, vector)] & (1 << (vector % 8))) != 0;

    private int LapicIrrOffset(ushort vcpu, byte vector)
    {
        int body = Vmi.Xen.HvmContext.FindRecord(HvmContext, CodeLapicRegs, vcpu, 1024);
        return body + 0x200 + (vector / 32 * 16) + (vector % 32 / 8);
    }

    public ulong GetHvmParam(uint domid, uint param) => param == XenCtrl.HvmParamAltp2m ? Altp2mParam : 0;

    public MemoryAccess GetMemAccess(uint domid, View view, Gfn gfn) =>
        Amd ? throw Errno(XenErrors.EInval, $"to read the access of frame {gfn} in view {view}")
        : Access.TryGetValue((view.Value, gfn.Value), out MemoryAccess a) ? a : MemoryAccess.RWX;

    public void SetMemAccess(uint domid, View view, Gfn first, uint count, MemoryAccess access)
    {
        Call($"SetMemAccess {view} {first} {count} {access}");
        if (Amd)
        {
            throw Errno(XenErrors.EInval, $"to set the access of {count} frame(s) from {first} in view {view}");
        }

        for (uint i = 0; i < count; i++)
        {
            Access[(view.Value, first.Value + i)] = access;
        }
    }

    public bool GetAltp2mState(uint domid) => Amd ? throw Errno(XenErrors.EOpNotSupp, "to report the altp2m state") : Altp2mState;

    public void SetAltp2mState(uint domid, bool enabled)
    {
        Call("SetAltp2mState " + enabled);
        if (Amd)
        {
            throw Errno(XenErrors.EOpNotSupp, "to enable altp2m");
        }

        Altp2mState = enabled;
    }

    public View CreateView(uint domid, MemoryAccess defaultAccess)
    {
        Call("CreateView");
        var v = new View((ushort)(ViewsInXen.Count + 1));
        ViewsInXen.Add(v);
        return v;
    }

    public void DestroyView(uint domid, View view)
    {
        Call("DestroyView " + view);
        if (ActiveView == view)
        {
            throw new VmiDriverException("view in use", XenErrors.EBusy);
        }

        ViewsInXen.Remove(view);
        foreach (var key in Access.Keys.Where(k => k.View == view.Value).ToArray())
        {
            Access.Remove(key);
        }

        foreach (var key in Remapped.Keys.Where(k => k.View == view.Value).ToArray())
        {
            Remapped.Remove(key); // a destroyed view takes its remappings with it
        }
    }

    public void SwitchToView(uint domid, View view)
    {
        Call("SwitchToView " + view);
        ActiveView = view;
    }

    public void ChangeGfn(uint domid, View view, Gfn oldGfn, Gfn? newGfn)
    {
        Call("ChangeGfn");
        if (newGfn is { } n)
        {
            Remapped[(view.Value, oldGfn.Value)] = n.Value;
        }
        else
        {
            Remapped.Remove((view.Value, oldGfn.Value));
        }
    }

    public void PopulatePhysmap(uint domid, Gfn gfn)
    {
        Call("Populate " + gfn);
        Populated.Add(gfn.Value);
    }

    public void DecreaseReservation(uint domid, Gfn gfn)
    {
        Call("Decrease " + gfn);
        Populated.Remove(gfn.Value);
    }

    public void InjectEvent(uint domid, VcpuId vcpu, Interrupt interrupt)
    {
        Call("Inject");
        Injected.Add((vcpu, interrupt));
    }

    public IXenMonitorChannel EnableMonitorRing(uint domid)
    {
        Call("EnableMonitorRing");
        if (Channel is not null)
        {
            throw new VmiDriverException("ring already enabled", XenErrors.EBusy);
        }

        Channel = new SimulatedChannel(this);
        return Channel;
    }

    public void SetMonitor(uint domid, EventMonitor monitor, bool enable)
    {
        Call($"SetMonitor {monitor} {enable}");
        if (Channel is null)
        {
            throw new VmiDriverException("no ring", XenErrors.ENoDev);
        }

        if (Amd && monitor.Kind == MonitorKind.Singlestep)
        {
            throw Errno(XenErrors.EOpNotSupp, (enable ? "to enable the " : "to disable the ") + monitor + " monitor");
        }

        if (enable)
        {
            Monitors.Add(monitor);
        }
        else
        {
            Monitors.Remove(monitor);
        }
    }

    public void SetSinglestep(uint domid, VcpuId vcpu, bool enable)
    {
        Call($"SetSinglestep {vcpu} {enable}");
        if (Amd)
        {
            throw Errno(XenErrors.EOpNotSupp, (enable ? "to start" : "to stop") + $" single-stepping vCPU {vcpu}");
        }

        if (enable)
        {
            Singlestepping.Add(vcpu.Value);
        }
        else
        {
            Singlestepping.Remove(vcpu.Value);
        }
    }

    public void SetInguestPagefaultDisabled(uint domid, bool disabled)
    {
        Call("SetInguestPagefaultDisabled " + disabled);
        PageWalkEventsDisabled = disabled;
    }

    /// <summary>As Xen's vm_event_disable: the ring goes, monitors stay on, vCPUs waiting for an answer stay paused.</summary>
    public void DisableMonitorRing(uint domid)
    {
        Call("DisableMonitorRing (left behind)");
        if (Channel is { } c)
        {
            c.Abandon();
        }
    }

    public string? ReadStore(string path) => Store.GetValueOrDefault(path);

    public IReadOnlyList<string> ListStore(string path) =>
        Store.Keys.Where(k => k.StartsWith(path + "/", StringComparison.Ordinal)).Select(k => k[(path.Length + 1)..].Split('/')[0]).Distinct().ToList();

    public void WriteStore(string path, string value)
    {
        Call("WriteStore");
        Store[path] = value;
    }

    public void RemoveStore(string path)
    {
        Call("RemoveStore");
        foreach (string k in Store.Keys.Where(k => k == path || k.StartsWith(path + "/", StringComparison.Ordinal)).ToArray())
        {
            Store.Remove(k);
        }
    }

    /// <summary>What SIGKILL does to the session's records: its process is gone (a PID now reused by another process).</summary>
    public void KillSessions()
    {
        foreach (string k in Store.Keys.ToArray())
        {
            XenSessionRecord r = XenSessionRecord.Parse(Store[k])!;
            Store[k] = (r with { StartTicks = r.StartTicks + 1 }).Format();
        }
    }

    public void Dispose() => Disposed = true;

    /// <summary>Xen's side of the monitor ring: requests put by the test, responses read back.</summary>
    internal sealed class SimulatedChannel(SimulatedXenHost host) : IXenMonitorChannel
    {
        private readonly byte* _page = (byte*)NativeMemory.AlignedAlloc(4096, 4096);
        private uint _reqProd;
        private uint _rspCons;
        private int _signals;

        public byte* RingPage => _page;

        public int RingPageSize => 4096;

        public bool Open { get; private set; } = true;

        public int Notifications { get; private set; }

        public List<VmEventSt> Responses { get; } = [];

        public void Put(VmEventSt request)
        {
            if ((request.Flags & VmEventAbi.FlagVcpuPaused) != 0)
            {
                host.WaitingVcpus.Add(request.VcpuId);
            }

            Unsafe.WriteUnaligned(_page + 64 + ((_reqProd & 7) * VmEventSt.Size), request);
            _reqProd++;
            ((VmEventSringHeader*)_page)->ReqProd = _reqProd;
            Interlocked.Increment(ref _signals);
        }

        public bool Wait(int timeoutMs)
        {
            if (Interlocked.Exchange(ref _signals, 0) > 0)
            {
                return true;
            }

            Thread.Sleep(Math.Min(timeoutMs, 5));
            return false;
        }

        public void Notify()
        {
            Notifications++;
            uint prod = ((VmEventSringHeader*)_page)->RspProd;
            while (_rspCons != prod)
            {
                VmEventSt rsp = Unsafe.ReadUnaligned<VmEventSt>(_page + 64 + ((_rspCons & 7) * VmEventSt.Size));
                Responses.Add(rsp);
                _rspCons++;
                if ((rsp.Flags & VmEventAbi.FlagVcpuPaused) != 0)
                {
                    host.WaitingVcpus.Remove(rsp.VcpuId); // Xen matches responses to no request
                    if (host.ControlRegisterValues && (rsp.Flags & VmEventAbi.FlagDeny) == 0
                        && rsp.Reason is VmEventAbi.ReasonWriteCtrlreg or VmEventAbi.ReasonMovToMsr)
                    {
                        host.HeldWrites.Add(rsp.VcpuId);
                    }
                }
            }
        }

        /// <summary>Answer EBUSY this many times (vCPUs waiting for ring slots), putting one more request each time.</summary>
        public int BusyTimes { get; set; }

        public void Dispose()
        {
            host.Call("DisableMonitorRing");
            if (BusyTimes > 0)
            {
                BusyTimes--;
                Put(XenRingSimulator.Request(1, VmEventAbi.ReasonCpuid));
                throw new VmiDriverException("vCPUs wait for ring slots", XenErrors.EBusy);
            }

            if ((int)(_reqProd - _rspCons) > 0)
            {
                throw new InvalidOperationException($"the ring was torn down with {_reqProd - _rspCons} request(s) unanswered: their vCPUs would stay paused");
            }

            Open = false;
            host.Channel = null;
            host.LostWrites += host.HeldWrites.Count; // vm_event_cleanup_domain frees what was held
            host.HeldWrites.Clear();
            host.ControlRegisterValues = false;
            NativeMemory.AlignedFree(_page);
        }

        /// <summary>Xen drops the ring (its consumer is gone); the page stays allocated for the dead consumer's stale pointers.</summary>
        public void Abandon()
        {
            Open = false;
            host.Channel = null;
        }
    }

    /// <summary>An HVM context with a header record, CPU, MTRR and XSAVE records per vCPU, and the end record.</summary>
    public static byte[] BuildContext(int vcpus)
    {
        var records = new List<byte>();
        void Add(ushort code, ushort instance, byte[] body)
        {
            var d = new HvmSaveDescriptor { Typecode = code, Instance = instance, Length = (uint)body.Length };
            records.AddRange(MemoryMarshal.AsBytes(new ReadOnlySpan<HvmSaveDescriptor>(ref d)).ToArray());
            records.AddRange(body);
        }

        Add(HvmSaveDescriptor.CodeHeader, 0, new byte[24]);
        for (ushort v = 0; v < vcpus; v++)
        {
            HvmHwCpu cpu = default;
            cpu.Rax = 0x1000u + v;
            cpu.Rip = 0xfffff800_12345000 + v;
            cpu.Cr3 = 0x1aa000 + (v * 0x1000u);
            cpu.Cr0 = 0x80050033;
            cpu.Cr4 = 0x350ef8;
            cpu.MsrEfer = 0xd01;
            cpu.MsrLstar = 0xfffff800_00401000;
            cpu.CsSel = 0x10;
            cpu.CsArbytes = 0xA9B;
            cpu.CsLimit = 0xFFFFFFFF;
            cpu.IdtrBase = 0xfffff800_0000a000;
            cpu.IdtrLimit = 0xfff;
            cpu.Tsc = 123456789;
            Add(HvmSaveDescriptor.CodeCpu, v, MemoryMarshal.AsBytes(new ReadOnlySpan<HvmHwCpu>(ref cpu)).ToArray());
        }

        for (ushort v = 0; v < vcpus; v++)
        {
            HvmHwMtrr mtrr = default;
            mtrr.MsrPatCr = 0x0007010600070106;
            Add(HvmSaveDescriptor.CodeMtrr, v, MemoryMarshal.AsBytes(new ReadOnlySpan<HvmHwMtrr>(ref mtrr)).ToArray());
            byte[] xsave = new byte[600];
            BitConverter.TryWriteBytes(xsave.AsSpan(8), 0x7UL);
            Add(HvmSaveDescriptor.CodeCpuXsave, v, xsave);
        }

        for (ushort v = 0; v < vcpus; v++)
        {
            Add(CodeLapicRegs, v, new byte[1024]);
        }

        Add(HvmSaveDescriptor.CodeEnd, 0, []);
        return [.. records];
    }
}
