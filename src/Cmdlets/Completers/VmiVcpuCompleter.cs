using System.Globalization;

namespace Vmi.PowerShell;

/// <summary>Completes -Vcpu with the vCPU numbers of the session.</summary>
public sealed class VmiVcpuCompleter : VmiCompleter
{
    protected override IEnumerable<(string Text, string Tooltip)> Candidates(VmiSession? session)
    {
        if (session is null)
        {
            yield break;
        }

        for (int i = 0; i < session.VcpuCount; i++)
        {
            yield return (i.ToString(CultureInfo.InvariantCulture), string.Format(CultureInfo.InvariantCulture, "vCPU {0} of {1}", i, session.Name));
        }
    }
}
