using System.Diagnostics.CodeAnalysis;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Mock;

/// <summary>
/// An in-memory guest that implements every driver capability, for tests and demos.
/// <list type="bullet">
/// <item>Memory is sparse (<see cref="SparseMemory"/>): a frame exists once populated. <see cref="TryMapPage"/>
/// returns false for frames never populated (and above <see cref="MaxGfn"/>); <see cref="WritePage"/> to such a
/// frame throws <see cref="GfnNotPresentException"/>. Test code populates memory through <see cref="Memory"/>,
/// <see cref="WritePhysical"/> or a <see cref="PageTableBuilder"/>. Pages handed out are the live frame arrays.</item>
/// <item>Reads and writes through the capabilities see the default view (view 0), as a hypervisor's foreign
/// mapping does; <see cref="ReadPhysical(View, Pa, Span{byte})"/> reads as a vCPU in a view would, with its GFN remaps.</item>
/// <item>Views: view 0 always exists with RWX unless set. <see cref="CreateView"/> makes views 1 to 9 whose
/// frames all start with the given access; <see cref="SwitchToView"/> moves every vCPU (as Xen's domain-wide
/// switch does); an event response moves one vCPU. A view some vCPU is in cannot be destroyed.</item>
/// <item>Events behave like a hypervisor ring: see <see cref="Raise"/> and <see cref="TakeEvents"/>.</item>
/// <item>Every capability call is logged in <see cref="Calls"/>; <see cref="FailNext"/> makes the next matching call throw.</item>
/// </list>
/// Thread-safe: one thread may wait for events while others raise them or use the other capabilities.
/// </summary>
public sealed partial class MockGuest :
    IVmiDriver, IVmiRead, IVmiWrite, IVmiQueryProtection, IVmiSetProtection, IVmiQueryRegisters, IVmiSetRegisters,
    IVmiViewControl, IVmiEventControl, IVmiVmControl
{
    /// <summary>The default highest frame: 4 GiB of guest-physical address space.</summary>
    public static readonly Gfn DefaultMaxGfn = new(0xF_FFFF);

    /// <summary>Views 1 to <see cref="MaxViews"/> - 1 can be created (Xen allows ten altp2m views including the host's).</summary>
    public const int MaxViews = 10;

    /// <summary>The call log keeps this many of the most recent calls.</summary>
    public const int CallLogCapacity = 100_000;

    private readonly object _gate = new();
    private readonly VcpuState[] _vcpus;
    private readonly Dictionary<ushort, ViewState> _views = [];
    private readonly HashSet<ulong> _allocatedGfns = [];
    private readonly Queue<MockCall> _calls = new();
    private readonly int[] _callCounts = new int[Enum.GetValues<MockOperation>().Length];
    private readonly List<(MockOperation Operation, Exception Exception, Func<MockCall, bool>? When)> _faults = [];
    private int _pauseCount;
    private bool _disposed;

    /// <summary>A guest with <paramref name="vcpuCount"/> vCPUs (paging off) and empty memory up to <paramref name="maxGfn"/>.</summary>
    public MockGuest(int vcpuCount = 1, Gfn? maxGfn = null)
    {
        if (vcpuCount is < 1 or > 512)
        {
            throw new ArgumentOutOfRangeException(nameof(vcpuCount), vcpuCount, "A mock guest has 1 to 512 vCPUs.");
        }

        Memory = new SparseMemory(maxGfn ?? DefaultMaxGfn);
        _vcpus = new VcpuState[vcpuCount];
        for (int i = 0; i < vcpuCount; i++)
        {
            _vcpus[i] = new VcpuState(ResetRegisters());
        }

        _views[0] = new ViewState(MemoryAccess.RWX);
        Info = new VmiInfo(Amd64.PageSize, Amd64.PageShift, Memory.MaxGfn, vcpuCount);
    }

    public string Name => "Mock";

    /// <summary>The guest's facts; <see cref="MockGuestBuilder.WithPhysicalAddressWidth"/> changes its width before a session opens.</summary>
    public VmiInfo Info { get; internal set; }

    public SparseMemory Memory { get; }

    public Gfn MaxGfn => Memory.MaxGfn;

    public int VcpuCount => _vcpus.Length;

    /// <summary>True once disposed; the state stays readable for tests.</summary>
    public bool IsDisposed
    {
        get
        {
            lock (_gate)
            {
                return _disposed;
            }
        }
    }

    /// <summary>A new, empty address space in this guest's memory. Point a vCPU's CR3 at its <see cref="PageTableBuilder.Cr3"/>.</summary>
    public PageTableBuilder CreateAddressSpace(PagingMode mode, Pa? tableBase = null) => new(Memory, mode, tableBase);

    // ------------------------------------------------------------------ call log and fault injection

    /// <summary>The capability calls made so far, oldest first (the last <see cref="CallLogCapacity"/>).</summary>
    public IReadOnlyList<MockCall> Calls
    {
        get
        {
            lock (_gate)
            {
                return _calls.ToArray();
            }
        }
    }

    /// <summary>How many times <paramref name="operation"/> was called (never trimmed).</summary>
    public int CallCount(MockOperation operation)
    {
        lock (_gate)
        {
            return _callCounts[(int)operation];
        }
    }

    public void ClearCalls()
    {
        lock (_gate)
        {
            _calls.Clear();
            Array.Clear(_callCounts);
        }
    }

    /// <summary>
    /// Makes the next call of <paramref name="operation"/> (for which <paramref name="when"/> holds, if given) throw
    /// <paramref name="exception"/> — by default a <see cref="VmiDriverException"/> naming the call. Each
    /// registration fires once; register several to fail several calls. A failed call changes nothing.
    /// </summary>
    public void FailNext(MockOperation operation, Exception? exception = null, Func<MockCall, bool>? when = null)
    {
        lock (_gate)
        {
            _faults.Add((operation, exception ?? new VmiDriverException($"Injected failure of {operation} (MockGuest.FailNext)."), when));
        }
    }

    /// <summary>Fault registrations that have not fired yet.</summary>
    public int PendingFaults
    {
        get
        {
            lock (_gate)
            {
                return _faults.Count;
            }
        }
    }

    /// <summary>
    /// When set, the guest's restorable state (pauses, restricted frames, monitors, views, disposed) is written to this
    /// file at every capability call and at dispose, so that a test can watch it from outside the process (e.g. that a
    /// signal restored the guest before the process ended). One line: <c>paused=1 restricted=2 monitors=1 views=1 disposed=False</c>.
    /// </summary>
    public string? StateFile { get; set; }

    /// <summary>The state line <see cref="StateFile"/> receives. Call under <see cref="_gate"/>.</summary>
    private string StateLine()
    {
        int restricted = _views.Values.Sum(v => v.Access.Count(kv => kv.Value != MemoryAccess.RWX));
        return $"paused={_pauseCount} restricted={restricted} monitors={_monitors.Count} views={_views.Count - 1} disposed={_disposed}";
    }

    /// <summary>Writes the state line (write then rename: a reader never sees half a line). Call under <see cref="_gate"/>.</summary>
    private void WriteState()
    {
        if (StateFile is not { } file)
        {
            return;
        }

        string temp = file + ".tmp";
        File.WriteAllText(temp, StateLine() + "\n");
        File.Move(temp, file, overwrite: true);
    }

    /// <summary>Logs the call, then throws if a fault is registered for it. Call under <see cref="_gate"/>.</summary>
    private void Enter(MockOperation operation, params object?[] arguments)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        WriteState(); // the state the previous call left
        var call = new MockCall(operation, arguments);
        if (_calls.Count >= CallLogCapacity)
        {
            _calls.Dequeue();
        }

        _calls.Enqueue(call);
        _callCounts[(int)operation]++;
        for (int i = 0; i < _faults.Count; i++)
        {
            (MockOperation op, Exception exception, Func<MockCall, bool>? when) = _faults[i];
            if (op == operation && (when is null || when(call)))
            {
                _faults.RemoveAt(i);
                throw exception;
            }
        }
    }

    // ------------------------------------------------------------------ memory

    public bool TryMapPage(Gfn gfn, [NotNullWhen(true)] out MappedPage? page)
    {
        lock (_gate)
        {
            Enter(MockOperation.MapPage, gfn);
        }

        if (gfn > MaxGfn || !Memory.TryGetFrame(gfn, out byte[]? frame))
        {
            page = null;
            return false;
        }

        page = new MappedPage(gfn, frame);
        return true;
    }

    public void WritePage(Gfn gfn, int offset, ReadOnlySpan<byte> data)
    {
        lock (_gate)
        {
            Enter(MockOperation.WritePage, gfn, offset, data.Length);
            if (offset < 0 || offset > Amd64.PageSize || data.Length > Amd64.PageSize - offset)
            {
                throw new ArgumentOutOfRangeException(nameof(offset), $"A write of {data.Length} bytes at offset {offset} does not fit in one {Amd64.PageSize}-byte frame.");
            }

            if (gfn > MaxGfn || !Memory.TryGetFrame(gfn, out byte[]? frame))
            {
                throw new GfnNotPresentException(gfn, "it is not populated in the mock guest, so it cannot be written");
            }

            data.CopyTo(frame.AsSpan(offset));
        }
    }

    /// <summary>Writes physical memory directly (no call logged), populating frames as needed. For setting up tests.</summary>
    public void WritePhysical(Pa pa, ReadOnlySpan<byte> data) => Memory.Write(pa, data);

    /// <summary>Reads physical memory as the default view sees it.</summary>
    public void ReadPhysical(Pa pa, Span<byte> destination) => ReadPhysical(View.Default, pa, destination);

    /// <summary>Reads physical memory as a vCPU in <paramref name="view"/> sees it: GFN remaps of the view are followed.</summary>
    public void ReadPhysical(View view, Pa pa, Span<byte> destination)
    {
        int done = 0;
        while (done < destination.Length)
        {
            ulong address = pa.Value + (ulong)done;
            int offset = (int)(address & Amd64.PageMask);
            int chunk = Math.Min((int)Amd64.PageSize - offset, destination.Length - done);
            Gfn gfn = ResolveViewGfn(view, new Gfn(address >> Amd64.PageShift));
            Memory.Read(Amd64.PaFromGfn(gfn) + (ulong)offset, destination.Slice(done, chunk));
            done += chunk;
        }
    }

    /// <summary>The frame that <paramref name="gfn"/> reaches in <paramref name="view"/> (itself unless remapped).</summary>
    public Gfn ResolveViewGfn(View view, Gfn gfn)
    {
        lock (_gate)
        {
            ViewState state = GetView(view);
            return state.Remaps.TryGetValue(gfn.Value, out ulong target) ? new Gfn(target) : gfn;
        }
    }

    /// <summary>Translates <paramref name="va"/> as <paramref name="vcpu"/> would now (its CR3, paging mode, CR4.PSE/EFER.NXE and the guest's physical width).</summary>
    public TranslationResult TranslateForVcpu(VcpuId vcpu, Va va) => TranslateAs(GetRegistersUnlogged(vcpu), va);

    /// <summary>The one translation the mock's own operations use: the same rules VmiCore applies for these registers.</summary>
    internal TranslationResult TranslateAs(Registers r, Va va)
    {
        var reader = new PageTableBuilder.MemoryTableReader(Memory);
        return Amd64.Translate(ref reader, r.PagingMode, r.TranslationRoot, va, Info.PhysicalAddressWidth, trace: null, r.PagingFeatures);
    }

    // ------------------------------------------------------------------ protection

    public MemoryAccess GetMemoryAccess(Gfn gfn, View view)
    {
        lock (_gate)
        {
            Enter(MockOperation.GetMemoryAccess, gfn, view);
            CheckGfn(gfn);
            return AccessOf(GetView(view), gfn);
        }
    }

    public void SetMemoryAccess(Gfn gfn, View view, MemoryAccess access, MemoryAccessOptions options = MemoryAccessOptions.None)
    {
        lock (_gate)
        {
            Enter(MockOperation.SetMemoryAccess, gfn, view, access, options);
            CheckGfn(gfn);
            CheckAccess(access);
            GetView(view).Access[gfn.Value] = access;
            PumpLocked();
        }
    }

    /// <summary>Sets a range in one call (one call logged).</summary>
    public void SetMemoryAccess(Gfn first, ulong count, View view, MemoryAccess access, MemoryAccessOptions options = MemoryAccessOptions.None)
    {
        lock (_gate)
        {
            Enter(MockOperation.SetMemoryAccess, first, count, view, access, options);
            if (count == 0)
            {
                return;
            }

            CheckGfn(first);
            if (count - 1 > MaxGfn.Value - first.Value)
            {
                throw new ArgumentOutOfRangeException(nameof(count), $"Frames {first} to {first + (count - 1)} run past the guest's last frame {MaxGfn}.");
            }

            CheckAccess(access);
            ViewState state = GetView(view);
            for (ulong i = 0; i < count; i++)
            {
                state.Access[first.Value + i] = access;
            }

            PumpLocked();
        }
    }

    private static MemoryAccess AccessOf(ViewState state, Gfn gfn) =>
        state.Access.TryGetValue(gfn.Value, out MemoryAccess a) ? a : state.DefaultAccess;

    private static void CheckAccess(MemoryAccess access)
    {
        if ((access & ~MemoryAccess.RWX) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(access), access, "Memory access is a combination of R, W and X.");
        }
    }

    private void CheckGfn(Gfn gfn)
    {
        if (gfn > MaxGfn)
        {
            throw new ArgumentOutOfRangeException(nameof(gfn), $"Guest frame {gfn} is beyond the guest's last frame {MaxGfn}.");
        }
    }

    // ------------------------------------------------------------------ registers

    public Registers GetRegisters(VcpuId vcpu)
    {
        lock (_gate)
        {
            Enter(MockOperation.GetRegisters, vcpu);
            return Vcpu(vcpu).Registers;
        }
    }

    public void SetRegisters(VcpuId vcpu, Registers registers)
    {
        ArgumentNullException.ThrowIfNull(registers);
        lock (_gate)
        {
            Enter(MockOperation.SetRegisters, vcpu);
            Vcpu(vcpu).Registers = registers;
        }
    }

    /// <summary>The vCPU's registers without logging a call (for test assertions).</summary>
    public Registers GetRegistersUnlogged(VcpuId vcpu)
    {
        lock (_gate)
        {
            return Vcpu(vcpu).Registers;
        }
    }

    /// <summary>Replaces the vCPU's registers without logging a call (for test setup).</summary>
    public void SetRegistersUnlogged(VcpuId vcpu, Registers registers)
    {
        ArgumentNullException.ThrowIfNull(registers);
        lock (_gate)
        {
            Vcpu(vcpu).Registers = registers;
        }
    }

    /// <summary>Changes the vCPU's registers without logging a call (for test setup).</summary>
    public void UpdateRegisters(VcpuId vcpu, Func<Registers, Registers> update)
    {
        ArgumentNullException.ThrowIfNull(update);
        lock (_gate)
        {
            VcpuState v = Vcpu(vcpu);
            v.Registers = update(v.Registers) ?? throw new ArgumentException("The update returned no registers.", nameof(update));
        }
    }

    /// <summary>An MSR of the vCPU: the architectural ones live in <see cref="Registers"/>, others in a side table (0 until written).</summary>
    public ulong GetMsr(VcpuId vcpu, uint msr)
    {
        lock (_gate)
        {
            VcpuState v = Vcpu(vcpu);
            return ReadMsr(v, msr);
        }
    }

    private VcpuState Vcpu(VcpuId vcpu)
    {
        if (vcpu.Value >= _vcpus.Length)
        {
            throw new VcpuNotFoundException(vcpu, _vcpus.Length);
        }

        return _vcpus[vcpu.Value];
    }

    private static Registers ResetRegisters() => new()
    {
        Rip = 0xFFF0,
        Rflags = 0x2,
        Cr0 = 0x10, // ET; paging off
        Cs = new SegmentRegister(0xF000, 0xFFFF_0000, 0xFFFF, 0x9B),
    };

    // ------------------------------------------------------------------ views

    public View DefaultView => View.Default;

    public IReadOnlyCollection<View> Views
    {
        get
        {
            lock (_gate)
            {
                return _views.Keys.Where(k => k != 0).Order().Select(k => new View(k)).ToArray();
            }
        }
    }

    public View CreateView(MemoryAccess defaultAccess)
    {
        lock (_gate)
        {
            Enter(MockOperation.CreateView, defaultAccess);
            CheckAccess(defaultAccess);
            for (ushort id = 1; id < MaxViews; id++)
            {
                if (!_views.ContainsKey(id))
                {
                    _views[id] = new ViewState(defaultAccess);
                    return new View(id);
                }
            }

            throw new VmiException($"All {MaxViews - 1} views are in use: destroy one before creating another.");
        }
    }

    public void DestroyView(View view)
    {
        lock (_gate)
        {
            Enter(MockOperation.DestroyView, view);
            if (view == View.Default)
            {
                throw new VmiException("View 0 is the default view and cannot be destroyed.");
            }

            GetView(view);
            foreach (VcpuState v in _vcpus)
            {
                if (v.View == view)
                {
                    throw new VmiException($"View {view} is in use by a vCPU: switch its vCPUs to another view (view 0) before destroying it.");
                }
            }

            _views.Remove(view.Value);
        }
    }

    /// <summary>Moves every vCPU to <paramref name="view"/>.</summary>
    public void SwitchToView(View view)
    {
        lock (_gate)
        {
            Enter(MockOperation.SwitchToView, view);
            GetView(view);
            foreach (VcpuState v in _vcpus)
            {
                v.View = view;
            }

            PumpLocked();
        }
    }

    public void ChangeViewGfn(View view, Gfn oldGfn, Gfn newGfn)
    {
        lock (_gate)
        {
            Enter(MockOperation.ChangeViewGfn, view, oldGfn, newGfn);
            if (view == View.Default)
            {
                throw new VmiException("Frames cannot be remapped in the default view 0: create a view and remap there.");
            }

            ViewState state = GetView(view);
            CheckGfn(oldGfn);
            CheckGfn(newGfn);
            if (!Memory.IsPopulated(newGfn))
            {
                throw new GfnNotPresentException(newGfn, "it is not populated, so no view can map it (allocate it first)");
            }

            state.Remaps[oldGfn.Value] = newGfn.Value;
        }
    }

    public void ResetViewGfn(View view, Gfn gfn)
    {
        lock (_gate)
        {
            Enter(MockOperation.ResetViewGfn, view, gfn);
            GetView(view).Remaps.Remove(gfn.Value);
        }
    }

    /// <summary>The view <paramref name="vcpu"/> runs in.</summary>
    public View GetVcpuView(VcpuId vcpu)
    {
        lock (_gate)
        {
            return Vcpu(vcpu).View;
        }
    }

    /// <summary>The remaps of <paramref name="view"/> (old GFN to new GFN), a snapshot.</summary>
    public IReadOnlyDictionary<Gfn, Gfn> GetViewRemaps(View view)
    {
        lock (_gate)
        {
            return GetView(view).Remaps.ToDictionary(p => new Gfn(p.Key), p => new Gfn(p.Value));
        }
    }

    private ViewState GetView(View view) =>
        _views.TryGetValue(view.Value, out ViewState? state) ? state : throw new ViewNotFoundException(view);

    // ------------------------------------------------------------------ VM control

    /// <summary>How many pauses are outstanding (0: running).</summary>
    public int PauseCount
    {
        get
        {
            lock (_gate)
            {
                return _pauseCount;
            }
        }
    }

    public bool IsPaused => PauseCount > 0;

    public void Pause()
    {
        lock (_gate)
        {
            Enter(MockOperation.Pause);
            _pauseCount++;
        }
    }

    public void Resume()
    {
        lock (_gate)
        {
            Enter(MockOperation.Resume);
            if (_pauseCount == 0)
            {
                throw new VmiException("The guest is not paused: Resume was called more times than Pause.");
            }

            _pauseCount--;
            PumpLocked();
        }
    }

    public Gfn AllocateGfn()
    {
        lock (_gate)
        {
            Enter(MockOperation.AllocateGfn);
            Gfn gfn = Memory.AllocateAboveHighest();
            _allocatedGfns.Add(gfn.Value);
            return gfn;
        }
    }

    public void AllocateGfn(Gfn gfn)
    {
        lock (_gate)
        {
            Enter(MockOperation.AllocateGfn, gfn);
            CheckGfn(gfn);
            Memory.PopulateNew(gfn);
            _allocatedGfns.Add(gfn.Value);
        }
    }

    public void FreeGfn(Gfn gfn)
    {
        lock (_gate)
        {
            Enter(MockOperation.FreeGfn, gfn);
            CheckGfn(gfn);
            Memory.Free(gfn);
            _allocatedGfns.Remove(gfn.Value);
            foreach (ViewState view in _views.Values)
            {
                foreach (ulong old in view.Remaps.Where(p => p.Value == gfn.Value).Select(p => p.Key).ToArray())
                {
                    view.Remaps.Remove(old);
                }
            }
        }
    }

    /// <summary>Frames allocated through <see cref="AllocateGfn()"/> and not freed (ResetState frees them).</summary>
    public IReadOnlyCollection<Gfn> AllocatedGfns
    {
        get
        {
            lock (_gate)
            {
                return _allocatedGfns.Order().Select(g => new Gfn(g)).ToArray();
            }
        }
    }

    public void InjectInterrupt(VcpuId vcpu, Interrupt interrupt)
    {
        lock (_gate)
        {
            Enter(MockOperation.InjectInterrupt, vcpu, interrupt);
            Vcpu(vcpu).Interrupts.Add(interrupt);
        }
    }

    /// <summary>Interrupts injected into <paramref name="vcpu"/> (by InjectInterrupt and by re-injecting responses), oldest first.</summary>
    public IReadOnlyList<Interrupt> GetInjectedInterrupts(VcpuId vcpu)
    {
        lock (_gate)
        {
            return Vcpu(vcpu).Interrupts.ToArray();
        }
    }

    /// <summary>
    /// Undoes what the capabilities changed: monitors off, every view's access back to RWX (view 0) and views
    /// destroyed with vCPUs back in view 0, singlestep off, frames allocated through <see cref="AllocateGfn()"/>
    /// freed, pauses released, and every waiting vCPU answered with Continue. Scripted events not yet fired stay.
    /// </summary>
    public void ResetState()
    {
        lock (_gate)
        {
            Enter(MockOperation.ResetState);
            _monitors.Clear();
            foreach (VcpuState v in _vcpus)
            {
                v.View = View.Default;
                v.Singlestep = false;
            }

            foreach (ushort id in _views.Keys.Where(k => k != 0).ToArray())
            {
                _views.Remove(id);
            }

            _views[0].Access.Clear();
            foreach (ulong gfn in _allocatedGfns)
            {
                if (Memory.IsPopulated(new Gfn(gfn)))
                {
                    Memory.Free(new Gfn(gfn));
                }
            }

            _allocatedGfns.Clear();
            _pauseCount = 0;
            ClearBreakpointsLocked();
            ReleaseAllLocked(MockAnswerSource.ResetState);
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            Enter(MockOperation.Dispose);
            ClearBreakpointsLocked();
            ReleaseAllLocked(MockAnswerSource.Dispose);
            _disposed = true;
            WriteState();
            Monitor.PulseAll(_gate);
        }
    }

    // ------------------------------------------------------------------ state

    private sealed class ViewState(MemoryAccess defaultAccess)
    {
        public MemoryAccess DefaultAccess { get; } = defaultAccess;

        public Dictionary<ulong, MemoryAccess> Access { get; } = [];

        public Dictionary<ulong, ulong> Remaps { get; } = [];
    }

    private sealed class VcpuState(Registers registers)
    {
        public Registers Registers { get; set; } = registers;

        public View View { get; set; }

        public bool Singlestep { get; set; }

        public int FastSinglesteps { get; set; }

        public int Emulations { get; set; }

        public List<Interrupt> Interrupts { get; } = [];

        public Dictionary<uint, ulong> OtherMsrs { get; } = [];

        /// <summary>The event the vCPU is blocked on (delivered to the ring or taken by a handler).</summary>
        public PendingEvent? Outstanding { get; set; }

        /// <summary>Events the vCPU will raise once its outstanding one is answered.</summary>
        public Queue<PendingEvent> Backlog { get; } = new();
    }
}
