using System.Globalization;
using Vmi.Core.Drivers;

namespace Vmi.PowerShell;

/// <summary>Completes domain names of the hypervisors on this host. On a host without one it offers nothing (and never writes an error).</summary>
public sealed class VmiDomainNameCompleter : VmiCompleter
{
    protected override IEnumerable<(string Text, string Tooltip)> Candidates(VmiSession? session) =>
        VmiDriverRegistry.ListDomains()
            .Where(d => d.CanIntrospect)
            .Select(d => (d.Name, string.Format(CultureInfo.InvariantCulture, "{0} domain {1}: {2} vCPU, {3} MiB, {4}", d.Hypervisor, d.Id, d.VcpuCount, d.MemoryBytes / (1024 * 1024), d.State)));
}
