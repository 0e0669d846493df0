using Vmi.Core;

namespace Vmi.Mock;

/// <summary>
/// Breakpoints on the mock: kept by the "hypervisor" (no byte of guest memory changes). A vCPU that executes a
/// breakpoint's address (<see cref="ExecuteAt"/>) raises a breakpoint event whether or not the Breakpoint monitor is on,
/// as QEMU's gdbstub does; Cr3 and vCPU filters are honoured. Reset and dispose remove them all.
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

            var bp = new VmiBreakpoint(_nextBreakpoint++, request.Address, request.Kind, request.Cr3, request.Vcpu, request.Physical, 0);
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
            VmiBreakpoint[] hits = [.. _breakpoints.Values.Where(b => b.Address == va && (b.Cr3 is null || b.Cr3 == root) && (b.Vcpu is null || b.Vcpu == vcpu))];
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

    private void ClearBreakpointsLocked() => _breakpoints.Clear();
}
