using Vmi.Core;
using Vmi.Core.Drivers;

[assembly: VmiDriverProvider(typeof(Vmi.Qemu.QemuDriverProvider))]

namespace Vmi.Qemu;

/// <summary>Opens a QEMU/KVM VM by its QMP socket: a unix socket path or HOST:PORT.</summary>
public sealed class QemuDriverProvider : IVmiDriverProvider
{
    public string Name => "Qemu";

    public VmiTargetKinds Kinds => VmiTargetKinds.Socket;

    public VmiOpenedDriver? TryOpen(VmiTarget target)
    {
        ArgumentNullException.ThrowIfNull(target);
        if (target.Kind != VmiTargetKinds.Socket || target.Path is null)
        {
            return null;
        }

        QemuDriver qemu = QemuDriver.Connect(target.Path, new QemuConnectOptions { ReadOnly = target.ReadOnly });
        string? name = Path.GetFileName(Path.GetDirectoryName(target.Path));
        return new VmiOpenedDriver(qemu, string.IsNullOrEmpty(name) ? "qemu" : name, qemu.Description);
    }

    public IReadOnlyList<VmiDomainInfo> ListDomains() => [];
}
