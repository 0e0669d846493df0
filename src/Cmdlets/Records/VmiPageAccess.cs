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

    public VmiSession Session { get; }

    public ulong Gfn { get; }

    public ulong Pa => Gfn << 12;

    public ushort View { get; }

    public MemoryAccess Access { get; }

    public override string ToString() => $"0x{Gfn:x} view {View}: {Access}";
}
