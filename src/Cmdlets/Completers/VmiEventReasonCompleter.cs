using Vmi.Core;

namespace Vmi.PowerShell;

/// <summary>Completes Wait-VmiEvent -Reason with the reasons' names.</summary>
public sealed class VmiEventReasonCompleter : VmiCompleter
{
    protected override IEnumerable<(string Text, string Tooltip)> Candidates(VmiSession? session) =>
        EventReason.Names.Select(n => (n, "event reason"));
}
