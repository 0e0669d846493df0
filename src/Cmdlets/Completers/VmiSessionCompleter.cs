using System.Globalization;

namespace Vmi.PowerShell;

/// <summary>Completes -Session with the names of the open sessions.</summary>
public sealed class VmiSessionCompleter : VmiCompleter
{
    protected override IEnumerable<(string Text, string Tooltip)> Candidates(VmiSession? session) =>
        VmiSessionRegistry.Current.Select(s => (s.Name, string.Format(CultureInfo.InvariantCulture, "Session {0}: {1} ({2} driver){3}", s.Id, s.Source, s.Driver, s.ReadOnly ? ", read-only" : string.Empty)));
}
