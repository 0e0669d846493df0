using System.Diagnostics.CodeAnalysis;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Core;

/// <summary>
/// Read-only by construction: wraps a driver and implements only the query capabilities (read memory, query access,
/// query registers). Nothing that changes the guest — writes, registers, access, views, events, pause — is there to call.
/// </summary>
internal sealed class ReadOnlyDriver : IVmiDriver, IVmiRead, IVmiQueryProtection, IVmiQueryRegisters
{
    private readonly IVmiDriver _inner;
    private readonly IVmiRead? _read;
    private readonly IVmiQueryProtection? _protection;
    private readonly IVmiQueryRegisters? _registers;

    public ReadOnlyDriver(IVmiDriver inner)
    {
        _inner = inner;
        _read = inner as IVmiRead;
        _protection = inner as IVmiQueryProtection;
        _registers = inner as IVmiQueryRegisters;
    }

    public string Name => _inner.Name;

    public VmiInfo Info => _inner.Info;

    public IVmiDriver Inner => _inner;

    /// <summary>True when the wrapped driver has <paramref name="capability"/> (so refusing it is read-only, not unsupported).</summary>
    public bool InnerSupports(VmiCapability capability) => capability switch
    {
        VmiCapability.Read => _read is not null,
        VmiCapability.Write => _inner is IVmiWrite,
        VmiCapability.QueryProtection => _protection is not null,
        VmiCapability.SetProtection => _inner is IVmiSetProtection,
        VmiCapability.QueryRegisters => _registers is not null,
        VmiCapability.SetRegisters => _inner is IVmiSetRegisters,
        VmiCapability.ViewControl => _inner is IVmiViewControl,
        VmiCapability.EventControl => _inner is IVmiEventControl,
        VmiCapability.VmControl => _inner is IVmiVmControl,
        _ => false,
    };

    public bool TryMapPage(Gfn gfn, [NotNullWhen(true)] out MappedPage? page)
    {
        if (_read is null)
        {
            throw new CapabilityNotSupportedException(_inner.Name, VmiCapability.Read);
        }

        return _read.TryMapPage(gfn, out page);
    }

    public MemoryAccess GetMemoryAccess(Gfn gfn, View view) =>
        (_protection ?? throw new CapabilityNotSupportedException(_inner.Name, VmiCapability.QueryProtection)).GetMemoryAccess(gfn, view);

    public Registers GetRegisters(VcpuId vcpu) =>
        (_registers ?? throw new CapabilityNotSupportedException(_inner.Name, VmiCapability.QueryRegisters)).GetRegisters(vcpu);

    public void Dispose() => _inner.Dispose();
}

/// <summary>A change was asked of a guest opened read-only: names the guest and what was refused.</summary>
public sealed class GuestReadOnlyException(string driverName, VmiCapability capability)
    : VmiException($"The guest ({driverName} driver) was opened read-only: {CapabilityNotSupportedException.Describe(capability)} would change it. Open it without read-only to do that.")
{
    public string DriverName { get; } = driverName;

    public VmiCapability Capability { get; } = capability;
}
