using Vmi.Core;

namespace Vmi.PowerShell;

/// <summary>Completes -Monitor with the monitor names; the ones already enabled come first (for Disable-VmiMonitor).</summary>
public sealed class VmiMonitorCompleter : VmiCompleter
{
    protected override IEnumerable<(string Text, string Tooltip)> Candidates(VmiSession? session)
    {
        string[] enabled = session is not null && session.Supports(VmiCapability.EventControl)
            ? session.Guest.EnabledMonitors.Select(m => m.ToString()).ToArray()
            : [];
        return enabled.Select(m => (m, "enabled"))
            .Concat(EventMonitor.Names.Where(n => !enabled.Contains(n, StringComparer.OrdinalIgnoreCase)).Select(n => (n, "event monitor")));
    }
}
