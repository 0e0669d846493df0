using Vmi.Core;
using Vmi.Xen;

namespace Vmi.PowerShell;

/// <summary>Creates the drivers Connect-VmiDomain offers. The one place the cmdlets name a driver type.</summary>
internal static class DriverFactory
{
    public static IVmiDriver CreateMock() => Vmi.Mock.DemoGuest.Create();

    /// <summary>A memory image by content; <paramref name="cr3"/> overrides (or supplies) the image's CR3.</summary>
    public static Vmi.Dump.MemoryImage OpenImage(string path, ulong? cr3) =>
        Vmi.Dump.MemoryImage.Open(path, new Vmi.Dump.MemoryImageOptions { Cr3 = cr3 });

    /// <summary>
    /// A Xen domain by name or id. Ctrl+C in PowerShell stops a pipeline; it must not reset the session, so the driver
    /// does not reset on SIGINT (process exit and Disconnect-VmiDomain still restore the guest).
    /// </summary>
    public static XenDriver ConnectXen(XenDomainSelector selector, bool readOnly) =>
        WithXen(() => XenDriver.Connect(selector, new XenConnectOptions { ReadOnly = readOnly, ResetOnInterrupt = false }));

    /// <summary>A QEMU/KVM VM by its QMP socket (unix path or HOST:PORT). The driver restores the VM on exit and SIGTERM.</summary>
    public static Vmi.Qemu.QemuDriver ConnectQemu(string qmp, bool readOnly) =>
        Vmi.Qemu.QemuDriver.Connect(qmp, new Vmi.Qemu.QemuConnectOptions { ReadOnly = readOnly });

    /// <summary>The Xen domains on this host.</summary>
    public static IReadOnlyList<XenDomainInfo> ListXenDomains() => WithXen(XenDriver.ListDomains);

    /// <summary>Runs <paramref name="action"/> on a host that can talk to Xen; otherwise throws <see cref="VmiXenUnavailableException"/> saying why.</summary>
    private static T WithXen<T>(Func<T> action)
    {
        try
        {
            XenDriver.CheckHost();
        }
        catch (VmiDriverException e)
        {
            throw new VmiXenUnavailableException(e);
        }

        try
        {
            return action();
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            throw new VmiXenUnavailableException(e); // the Xen tools (libxenctrl & co.) are not installed
        }
    }
}

/// <summary>This host cannot introspect Xen domains (no Xen, not dom0, not root, no Xen tools); the message says which.</summary>
public sealed class VmiXenUnavailableException(Exception reason)
    : VmiException(reason?.Message ?? "Xen is not available on this host.", reason);
