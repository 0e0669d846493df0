using Vmi.Xen;

namespace Vmi.PowerShell;

/// <summary>One Xen domain on this host (Get-VmiDomain). Piped into Connect-VmiDomain, it connects by <see cref="Id"/>.</summary>
public sealed class VmiDomain
{
    internal VmiDomain(XenDomainInfo info)
    {
        Id = info.Id;
        Name = info.Name;
        VcpuCount = info.VcpuCount;
        MemoryBytes = info.MemoryBytes;
        State = info.State;
        IsHvm = info.IsHvm;
    }

    public uint Id { get; }

    public string Name { get; }

    /// <summary>Virtual CPUs.</summary>
    public int VcpuCount { get; }

    /// <summary>Memory the domain holds now, in bytes.</summary>
    public ulong MemoryBytes { get; }

    /// <summary>Memory the domain holds now, in MiB (as xl list shows it).</summary>
    public ulong MemoryMiB => MemoryBytes / (1024 * 1024);

    public XenDomainState State { get; }

    /// <summary>True for HVM and PVH guests: the kinds Connect-VmiDomain can introspect.</summary>
    public bool IsHvm { get; }

    public override string ToString() => Name;
}
