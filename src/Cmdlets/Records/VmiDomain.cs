using Vmi.Core.Drivers;

namespace Vmi.PowerShell;

/// <summary>One domain of a hypervisor on this host (Get-VmiDomain). Piped into Connect-VmiDomain, it connects by <see cref="Id"/>.</summary>
public sealed class VmiDomain
{
    internal VmiDomain(VmiDomainInfo info)
    {
        Hypervisor = info.Hypervisor;
        Id = info.Id;
        Name = info.Name;
        VcpuCount = info.VcpuCount;
        MemoryBytes = info.MemoryBytes;
        State = info.State;
        IsHvm = info.CanIntrospect;
    }

    /// <summary>The driver that lists it ("Xen").</summary>
    public string Hypervisor { get; }

    public uint Id { get; }

    public string Name { get; }

    /// <summary>Virtual CPUs.</summary>
    public int VcpuCount { get; }

    /// <summary>Memory the domain holds now, in bytes.</summary>
    public ulong MemoryBytes { get; }

    /// <summary>Memory the domain holds now, in MiB (as xl list shows it).</summary>
    public ulong MemoryMiB => MemoryBytes / (1024 * 1024);

    /// <summary>The hypervisor's word for its state (Running, Paused, ...).</summary>
    public string State { get; }

    /// <summary>True for the guests Connect-VmiDomain can introspect (Xen: HVM and PVH guests, not dom0).</summary>
    public bool IsHvm { get; }

    public override string ToString() => Name;
}
