using System.Globalization;

namespace Vmi.Xen;

/// <summary>The run state of a Xen domain, as xl list shows it.</summary>
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum XenDomainState
{
    Running,
    Blocked,
    Paused,
    Shutdown,
    Crashed,
    Dying,

    /// <summary>Neither running nor blocked (waiting for a physical CPU).</summary>
    Runnable,
}

/// <summary>The maker of the host's CPU: what Xen can do for introspection depends on it (VT-x or SVM).</summary>
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum XenCpuVendor
{
    Unknown,
    Intel,
    Amd,
}

/// <summary>One domain on this host (Get-VmiDomain).</summary>
/// <param name="VcpuCount">Virtual CPUs (the highest vCPU id plus one).</param>
/// <param name="MemoryBytes">Memory the domain holds now (its current pages times 4096).</param>
/// <param name="IsHvm">True for HVM and PVH guests: the kinds the driver can introspect.</param>
public sealed record XenDomainInfo(uint Id, string Name, int VcpuCount, ulong MemoryBytes, XenDomainState State, bool IsHvm = true)
{
    /// <summary>
    /// A PVH guest (type = "pvh"): an HVM container with no device model and no emulated PIC. Everything the driver does
    /// works on it as on HVM: no call the driver makes needs a device model (docs/xen.md).
    /// </summary>
    public bool IsPvh { get; init; }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Id} {Name} ({(IsPvh ? "PVH, " : IsHvm ? string.Empty : "PV, ")}{VcpuCount} vCPU, {MemoryBytes / (1024 * 1024)} MiB, {State})");
}

/// <summary>Which domain to connect to: by id or by name (the name in xenstore, /local/domain/ID/name).</summary>
public sealed record XenDomainSelector
{
    private XenDomainSelector(uint? id, string? name)
    {
        Id = id;
        Name = name;
    }

    public uint? Id { get; }

    public string? Name { get; }

    public static XenDomainSelector ById(uint id) => new(id, null);

    public static XenDomainSelector ByName(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        return new XenDomainSelector(null, name);
    }

    /// <summary>A number is taken as a domain id, anything else as a name.</summary>
    public static XenDomainSelector Parse(string text)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(text);
        return uint.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out uint id) ? ById(id) : ByName(text.Trim());
    }

    public override string ToString() => Id is { } id ? string.Create(CultureInfo.InvariantCulture, $"domain id {id}") : $"domain '{Name}'";
}

/// <summary>How to connect.</summary>
public sealed record XenConnectOptions
{
    public static XenConnectOptions Default { get; } = new();

    /// <summary>Observe only: memory and registers are read; nothing is written, trapped or switched (no altp2m, no monitor ring).</summary>
    public bool ReadOnly { get; init; }

    /// <summary>
    /// Run <see cref="XenDriver.ResetState"/> on SIGINT (Ctrl+C), as on SIGTERM and process exit. A host that turns
    /// Ctrl+C into "stop the pipeline" (an interactive PowerShell) sets this to false, and the session's state stays.
    /// </summary>
    public bool ResetOnInterrupt { get; init; } = true;

    /// <summary>Connect to a Xen newer than the newest release this driver was checked against (its vm_event version is still checked on every event).</summary>
    public bool AllowUntestedXenVersion { get; init; }
}
