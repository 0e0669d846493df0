using Vmi.Core;

namespace Vmi.PowerShell;

/// <summary>A watchpoint fired (Set-VmiBreakpoint -Access Write|Read|ReadWrite): the vCPU accessed the watched bytes; RIP is the instruction after the access.</summary>
public sealed class VmiWatchpointEvent : VmiEventRecord
{
    internal VmiWatchpointEvent(VmiSession session, VmiEvent e, long sequence, WatchpointReason r)
        : base(session, e, sequence)
    {
        Address = r.Address.Value;
        Access = r.Access;
        Length = r.Length;
    }

    public override string Reason => "Watchpoint";

    /// <summary>The watched virtual address.</summary>
    public ulong Address { get; }

    /// <summary>The watchpoint's access: Write, Read or ReadWrite.</summary>
    public BreakpointAccess Access { get; }

    /// <summary>Bytes watched.</summary>
    public int Length { get; }

    public override string Details => $"{Access} watch at VA 0x{Address:x} ({Length} bytes)";
}
