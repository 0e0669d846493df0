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

/// <summary>What to break on: a virtual address, optionally only in one address space (<paramref name="Cr3"/>) or on one vCPU.</summary>
/// <param name="Address">The virtual address of the instruction.</param>
/// <param name="Cr3">Only hits while CR3 (flag bits masked off) is this page-table root are reported; others are stepped over silently.</param>
/// <param name="Vcpu">Only hits on this vCPU are reported; others are stepped over silently.</param>
public sealed record BreakpointRequest(Va Address, BreakpointKind Kind = BreakpointKind.Software, Pa? Cr3 = null, VcpuId? Vcpu = null)
{
    /// <summary>A physical-address breakpoint (Xen can set these; QEMU's gdbstub cannot and refuses them).</summary>
    public Pa? Physical { get; init; }
}

/// <summary>A breakpoint this session set and has not removed.</summary>
/// <param name="Id">Unique within the session, from 1.</param>
/// <param name="Hits">Hits reported so far (filtered-out hits are not counted).</param>
public sealed record VmiBreakpoint(int Id, Va Address, BreakpointKind Kind, Pa? Cr3, VcpuId? Vcpu, Pa? Physical, long Hits);

/// <summary>
/// Breakpoints owned by the hypervisor side. A hit arrives through <see cref="IVmiEventControl.WaitForEvents"/> as a
/// <see cref="VmiEvent"/> whose reason is a <see cref="SoftwareBreakpointReason"/>, with the vCPU's registers; the
/// answer is as for other events (continue, <see cref="VmiEventResponseFlags.ToggleSinglestep"/>, set registers).
/// Continuing steps over the breakpoint. Every breakpoint is removed on dispose and on every exit path.
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
