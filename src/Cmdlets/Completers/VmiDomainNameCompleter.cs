using System.Globalization;

namespace Vmi.PowerShell;

/// <summary>Completes Xen domain names. On a host without Xen it offers nothing (and never writes an error).</summary>
public sealed class VmiDomainNameCompleter : VmiCompleter
{
    protected override IEnumerable<(string Text, string Tooltip)> Candidates(VmiSession? session) =>
        DriverFactory.ListXenDomains()
            .Where(d => d.Id != 0)
            .Select(d => (d.Name, string.Format(CultureInfo.InvariantCulture, "Domain {0}: {1} vCPU, {2} MiB, {3}", d.Id, d.VcpuCount, d.MemoryBytes / (1024 * 1024), d.State)));
}
