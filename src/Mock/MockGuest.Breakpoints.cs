using Vmi.Core;

namespace Vmi.Mock;

/// <summary>
/// Breakpoints and watchpoints on the mock: kept by the "hypervisor" (no byte of guest memory changes). A vCPU that
/// executes a breakpoint's address (<see cref="ExecuteAt"/>) or accesses a watched byte (<see cref="AccessAt"/>) raises an
/// event whether or not the Breakpoint monitor is on, as QEMU's gdbstub does; Cr3 and vCPU filters are honoured. Reset
/// and dispose remove them all.
/// </summary>
public sealed partial class MockGuest : IVmiBreakpoints
{
    private readonly SortedDictionary<int, VmiBreakpoint> _breakpoints = [];
    private int _nextBreakpoint = 1;

    public IReadOnlyList<VmiBreakpoint> Breakpoints
    {
        get
        {
            lock (_gate)
            {
                return [.. _breakpoints.Values];
            }
        }
    }

    public VmiBreakpoint SetBreakpoint(BreakpointRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (request.Vcpu is VcpuId v)
            {
                Vcpu(v);
            }

            request.Validate();
            var bp = new VmiBreakpoint(_nextBreakpoint++, request.Address, request.IsWatchpoint ? BreakpointKind.Hardware : request.Kind, request.Cr3, request.Vcpu, request.Physical, 0)
            {
                Access = request.Access,
                Length = request.Length,
            };
            _breakpoints[bp.Id] = bp;
            return bp;
        }
    }

    public bool RemoveBreakpoint(int id)
    {
        lock (_gate)
        {
            return _breakpoints.Remove(id);
        }
    }

    /// <summary>The vCPU executes the instruction at <paramref name="va"/>: a breakpoint there (matching its filters) raises an event. Returns whether one did.</summary>
    public bool ExecuteAt(VcpuId vcpu, Va va)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            VcpuState v = Vcpu(vcpu);
            Pa root = v.Registers.TranslationRoot;
            VmiBreakpoint[] hits = [.. _breakpoints.Values.Where(b => b.Access == BreakpointAccess.Execute && b.Address == va && (b.Cr3 is null || b.Cr3 == root) && (b.Vcpu is null || b.Vcpu == vcpu))];
            if (hits.Length == 0)
            {
                return false;
            }

            foreach (VmiBreakpoint b in hits)
            {
                _breakpoints[b.Id] = b with { Hits = b.Hits + 1 };
            }

            v.Registers = v.Registers with { Rip = va.Value };
            RaiseLocked(vcpu, v, BreakpointReason(v, va, 0));
            return true;
        }
    }

    /// <summary>
    /// The vCPU reads or writes <paramref name="length"/> bytes at virtual address <paramref name="va"/> (an instruction at
    /// its RIP): a watchpoint covering any of them whose access matches (Write for a write, Read for a read, ReadWrite for
    /// both; Cr3 and vCPU filters honoured) raises a watchpoint event, as after the instruction. Returns whether one did.
    /// </summary>
    public bool AccessAt(VcpuId vcpu, Va va, int length, MemoryAccess access)
    {
        if (access is not (MemoryAccess.R or MemoryAccess.W))
        {
            throw new ArgumentException($"A data access is a read (R) or a write (W), not {access}.", nameof(access));
        }

        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            VcpuState v = Vcpu(vcpu);
            Pa root = v.Registers.TranslationRoot;
            BreakpointAccess kind = access == MemoryAccess.W ? BreakpointAccess.Write : BreakpointAccess.Read;
            VmiBreakpoint[] hits = [.. _breakpoints.Values.Where(b => (b.Access == kind || b.Access == BreakpointAccess.ReadWrite) && b.Physical is null && b.Covers(va.Value, length) && (b.Cr3 is null || b.Cr3 == root) && (b.Vcpu is null || b.Vcpu == vcpu))];
            if (hits.Length == 0)
            {
                return false;
            }

            foreach (VmiBreakpoint b in hits)
            {
                _breakpoints[b.Id] = b with { Hits = b.Hits + 1 };
            }

            RaiseLocked(vcpu, v, new WatchpointReason(hits[0].Address, hits[0].Access, hits[0].Length));
            return true;
        }
    }

    private void ClearBreakpointsLocked() => _breakpoints.Clear();
}
