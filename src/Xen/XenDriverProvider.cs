using System.Globalization;
using Vmi.Core;
using Vmi.Core.Drivers;

[assembly: VmiDriverProvider(typeof(Vmi.Xen.XenDriverProvider))]

namespace Vmi.Xen;

/// <summary>
/// Opens Xen domains of this host by name or id, and lists them. Ctrl+C (SIGINT) does not reset a domain opened here:
/// in an interactive host it stops a pipeline, not the session; process exit and close still restore the guest.
/// </summary>
public sealed class XenDriverProvider : IVmiDriverProvider
{
    public string Name => "Xen";

    public VmiTargetKinds Kinds => VmiTargetKinds.Domain;

    public VmiOpenedDriver? TryOpen(VmiTarget target)
    {
        ArgumentNullException.ThrowIfNull(target);
        if (target.Kind != VmiTargetKinds.Domain)
        {
            return null;
        }

        XenDomainSelector selector = target.Id is { } id ? XenDomainSelector.ById(id) : XenDomainSelector.ByName(target.Name!);
        XenDriver xen = WithXen(() => XenDriver.Connect(selector, new XenConnectOptions { ReadOnly = target.ReadOnly, ResetOnInterrupt = false }));
        XenDomainInfo d = xen.Domain;
        return new VmiOpenedDriver(xen, d.Name, string.Format(CultureInfo.InvariantCulture, "Xen domain {0} '{1}'", d.Id, d.Name))
        {
            Notice = xen.Notice, // a domain left changed by a killed session: what was undone, or what a read-write connect would undo
        };
    }

    public IReadOnlyList<VmiDomainInfo> ListDomains() =>
        WithXen(XenDriver.ListDomains)
            .Select(d => new VmiDomainInfo(Name, d.Id, d.Name, d.VcpuCount, d.MemoryBytes, d.State.ToString(), d.IsHvm && d.Id != 0))
            .ToArray();

    /// <summary>Runs <paramref name="action"/> on a host that can talk to Xen; otherwise throws <see cref="VmiDriverUnavailableException"/> saying why.</summary>
    private T WithXen<T>(Func<T> action)
    {
        try
        {
            XenDriver.CheckHost();
        }
        catch (VmiDriverException e)
        {
            throw new VmiDriverUnavailableException(Name, e.Message, e);
        }

        try
        {
            return action();
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            throw new VmiDriverUnavailableException(Name, e.Message, e); // the Xen tools (libxenctrl & co.) are not installed
        }
    }
}
