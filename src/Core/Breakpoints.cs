namespace Vmi.Core;

/// <summary>How the hypervisor side implements a breakpoint.</summary>
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum BreakpointKind : byte
{
    /// <summary>A breakpoint the hypervisor keeps out of guest memory where it can (QEMU: a gdbstub Z0 point, no byte of the guest changes; Xen: INT3 written by the engine).</summary>
    Software,

    /// <summary>A hardware execution breakpoint (a debug register; QEMU: gdbstub Z1, 4 at most under KVM).</summary>
    Hardware,
}

/// <summary>What a breakpoint reports: executing its address, or (a watchpoint) a data access to the bytes it covers.</summary>
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum BreakpointAccess : byte
{
    /// <summary>A breakpoint: the instruction at the address is about to execute.</summary>
    Execute,

    /// <summary>A watchpoint on writes (gdbstub Z2): reported after the writing instruction.</summary>
    Write,

    /// <summary>A watchpoint on reads (gdbstub Z3; x86 debug registers have no read-only mode, so not under KVM).</summary>
    Read,

    /// <summary>A watchpoint on reads and writes (gdbstub Z4).</summary>
    ReadWrite,
}

/// <summary>What to break on: a virtual address, optionally only in one address space (<paramref name="Cr3"/>) or on one vCPU.</summary>
/// <param name="Address">The virtual address of the instruction (of the data, for a watchpoint).</param>
/// <param name="Cr3">Only hits while CR3 (flag bits masked off) is this page-table root are reported; others are stepped over silently.</param>
/// <param name="Vcpu">Only hits on this vCPU are reported; others are stepped over silently.</param>
public sealed record BreakpointRequest(Va Address, BreakpointKind Kind = BreakpointKind.Software, Pa? Cr3 = null, VcpuId? Vcpu = null)
{
    /// <summary>A physical-address breakpoint (Xen can set these; QEMU's gdbstub cannot and refuses them).</summary>
    public Pa? Physical { get; init; }

    /// <summary>Execute (a breakpoint, the default) or the data access a watchpoint reports.</summary>
    public BreakpointAccess Access { get; init; } = BreakpointAccess.Execute;

    /// <summary>How many bytes from <see cref="Address"/> a watchpoint covers: 1, 2, 4 or 8, the address a multiple of it (as debug registers need). 1 for a breakpoint.</summary>
    public int Length { get; init; } = 1;

    /// <summary>True for a watchpoint (a data access), false for a breakpoint (execution).</summary>
    public bool IsWatchpoint => Access != BreakpointAccess.Execute;

    /// <summary>Throws <see cref="ArgumentException"/> naming the fix when the request cannot be a breakpoint on any hypervisor.</summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Access))
        {
            throw new ArgumentException($"{Access} is not a breakpoint access: use Execute, Write, Read or ReadWrite.", nameof(Access));
        }

        if (!IsWatchpoint)
        {
            if (Length != 1)
            {
                throw new ArgumentException($"A breakpoint on execution covers one instruction: leave the length at 1 (it is {Length}), or watch data with a Write, Read or ReadWrite access.", nameof(Length));
            }

            return;
        }

        if (Length is not (1 or 2 or 4 or 8))
        {
            throw new ArgumentException($"A watchpoint covers 1, 2, 4 or 8 bytes (not {Length}): watch a larger variable with several watchpoints.", nameof(Length));
        }

        ulong at = Physical?.Value ?? Address.Value;
        if (at % (ulong)Length != 0)
        {
            throw new ArgumentException($"A watchpoint of {Length} bytes must start at a multiple of {Length} (0x{at:x} is not): watch 0x{at & ~((ulong)Length - 1):x} instead, or use a shorter length.", nameof(Length));
        }
    }
}

/// <summary>A breakpoint (or watchpoint) this session set and has not removed.</summary>
/// <param name="Id">Unique within the session, from 1.</param>
/// <param name="Hits">Hits reported so far (filtered-out hits are not counted).</param>
public sealed record VmiBreakpoint(int Id, Va Address, BreakpointKind Kind, Pa? Cr3, VcpuId? Vcpu, Pa? Physical, long Hits)
{
    /// <summary>Execute for a breakpoint; the data access a watchpoint reports.</summary>
    public BreakpointAccess Access { get; init; } = BreakpointAccess.Execute;

    /// <summary>Bytes covered (1 for a breakpoint).</summary>
    public int Length { get; init; } = 1;

    /// <summary>True when <paramref name="address"/>..+<paramref name="length"/> overlaps the bytes this watchpoint covers.</summary>
    public bool Covers(ulong address, int length)
    {
        ulong start = Physical?.Value ?? Address.Value;
        return address < start + (ulong)Length && start < address + (ulong)Math.Max(length, 1);
    }
}

/// <summary>A watchpoint fired: the vCPU accessed the bytes it covers. The vCPU stopped after the accessing instruction (RIP is the next one).</summary>
/// <param name="Address">The watched address QEMU reports (the watchpoint's start), or the accessed one where the hypervisor says.</param>
/// <param name="Access">The watchpoint's access (Write, Read or ReadWrite).</param>
/// <param name="Length">Bytes the watchpoint covers.</param>
public sealed record WatchpointReason(Va Address, BreakpointAccess Access, int Length) : EventReason;

/// <summary>
/// Breakpoints and watchpoints owned by the hypervisor side. A hit arrives through <see cref="IVmiEventControl.WaitForEvents"/>
/// as a <see cref="VmiEvent"/> whose reason is a <see cref="SoftwareBreakpointReason"/> (a <see cref="WatchpointReason"/>
/// for a watchpoint), with the vCPU's registers; the answer is as for other events (continue,
/// <see cref="VmiEventResponseFlags.ToggleSinglestep"/>, set registers). Continuing steps over the breakpoint. Every
/// breakpoint and watchpoint is removed on dispose and on every exit path.
/// </summary>
public interface IVmiBreakpoints
{
    /// <summary>Sets a breakpoint and returns it. Throws <see cref="VmiNotSupportedException"/> for what the hypervisor cannot do.</summary>
    VmiBreakpoint SetBreakpoint(BreakpointRequest request);

    /// <summary>Removes the breakpoint; false if the session has none with this id.</summary>
    bool RemoveBreakpoint(int id);

    /// <summary>The breakpoints set and not removed, with their hit counts, in id order.</summary>
    IReadOnlyList<VmiBreakpoint> Breakpoints { get; }
}

/// <summary>The driver cannot do this at all (not a missing capability interface, a limit of the hypervisor); the message names the alternative.</summary>
public sealed class VmiNotSupportedException(string message) : VmiException(message);

/// <summary>Reaching the breakpoint capability of a core's driver.</summary>
public static class VmiBreakpointExtensions
{
    /// <summary>The driver's breakpoints, or a <see cref="VmiNotSupportedException"/> naming the driver when it has none.</summary>
    public static IVmiBreakpoints Breakpoints(this VmiCore core)
    {
        ArgumentNullException.ThrowIfNull(core);
        return core.Driver as IVmiBreakpoints
            ?? throw new VmiNotSupportedException($"The {core.Driver.Name} driver does not support breakpoints: they need a live hypervisor (QEMU, Xen) or the mock.");
    }
}
