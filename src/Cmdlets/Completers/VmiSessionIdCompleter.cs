using System.Globalization;

namespace Vmi.PowerShell;

/// <summary>Completes -Id of Get-VmiSession with the ids of the open sessions (not with file names).</summary>
public sealed class VmiSessionIdCompleter : VmiCompleter
{
    protected override IEnumerable<(string Text, string Tooltip)> Candidates(VmiSession? session) =>
        VmiSessionRegistry.Current.Select(s => (s.Id.ToString(CultureInfo.InvariantCulture), string.Format(CultureInfo.InvariantCulture, "Session {0}: {1} ({2} driver)", s.Name, s.Source, s.Driver)));
}
