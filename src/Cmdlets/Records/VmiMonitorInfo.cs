using Vmi.Core;

namespace Vmi.PowerShell;

/// <summary>An event monitor and whether it is enabled. Binds Monitor by property name.</summary>
public sealed class VmiMonitorInfo
{
    internal VmiMonitorInfo(VmiSession session, EventMonitor monitor, bool enabled)
    {
        Session = session;
        Monitor = monitor.ToString();
        Kind = monitor.Kind;
        Parameter = monitor.Parameter;
        Enabled = enabled;
    }

    [Newtonsoft.Json.JsonIgnore, System.Management.Automation.Hidden]
    public VmiSession Session { get; }

    /// <summary>The monitor's name, as -Monitor takes it (Cr3, Msr:0xC0000082, Breakpoint...).</summary>
    public string Monitor { get; }

    public MonitorKind Kind { get; }

    public uint Parameter { get; }

    public bool Enabled { get; }

    public override string ToString() => Monitor;
}
