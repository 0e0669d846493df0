using Vmi.Core;

namespace Vmi.PowerShell;

/// <summary>The access permissions of one guest frame in one view. Binds Gfn and View by property name.</summary>
public sealed class VmiPageAccess
{
    internal VmiPageAccess(VmiSession session, ulong gfn, ushort view, MemoryAccess access)
    {
        Session = session;
        Gfn = gfn;
        View = view;
        Access = access;
    }

    [Newtonsoft.Json.JsonIgnore, System.Management.Automation.Hidden]
    public VmiSession Session { get; }

    public ulong Gfn { get; }

    /// <summary>The frame's first byte; with <see cref="Physical"/> it pipes into Read-VmiMemory as a physical read.</summary>
    public ulong Pa => Gfn << 12;

    public bool Physical => true;

    public ushort View { get; }

    public MemoryAccess Access { get; }

    public override string ToString() => $"0x{Gfn:x} view {View}: {Access}";
}
