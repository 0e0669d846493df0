using Vmi.Core;

namespace Vmi.PowerShell;

/// <summary>A breakpoint of a session. Binds Id by property name (Remove-VmiBreakpoint).</summary>
public sealed class VmiBreakpointInfo
{
    internal VmiBreakpointInfo(VmiSession session, VmiBreakpoint breakpoint)
    {
        Session = session;
        Id = breakpoint.Id;
        Address = breakpoint.Physical?.Value ?? breakpoint.Address.Value;
        Physical = breakpoint.Physical is not null;
        Kind = breakpoint.Kind;
        Cr3 = breakpoint.Cr3?.Value;
        Vcpu = breakpoint.Vcpu?.Value;
        Hits = breakpoint.Hits;
        Access = breakpoint.Access;
        Length = breakpoint.Length;
    }

    [Newtonsoft.Json.JsonIgnore, System.Management.Automation.Hidden]
    public VmiSession Session { get; }

    public int Id { get; }

    /// <summary>The virtual address (or the physical one when <see cref="Physical"/>).</summary>
    public ulong Address { get; }

    public bool Physical { get; }

    public BreakpointKind Kind { get; }

    /// <summary>Only hits in this address space are reported (null: any).</summary>
    public ulong? Cr3 { get; }

    /// <summary>Only hits on this vCPU are reported (null: any).</summary>
    public ushort? Vcpu { get; }

    /// <summary>Hits reported so far.</summary>
    public long Hits { get; }

    /// <summary>Execute for a breakpoint; Write, Read or ReadWrite for a watchpoint.</summary>
    public BreakpointAccess Access { get; }

    /// <summary>Bytes watched (1 for a breakpoint).</summary>
    public int Length { get; }

    public override string ToString() => Access == BreakpointAccess.Execute ? $"breakpoint {Id} at 0x{Address:x}" : $"watchpoint {Id} ({Access}, {Length} bytes) at 0x{Address:x}";
}
