using System.Globalization;
using Vmi.Core;

namespace Vmi.PowerShell;

/// <summary>Completes -View with the default view and the views the session created.</summary>
public sealed class VmiViewCompleter : VmiCompleter
{
    protected override IEnumerable<(string Text, string Tooltip)> Candidates(VmiSession? session)
    {
        if (session is null || !session.Supports(VmiCapability.ViewControl))
        {
            return [];
        }

        VmiGuest guest = session.Guest;
        return new[] { (guest.DefaultView.ToString(), "the default view") }
            .Concat(guest.Views.Order().Select(v => (v.ToString(), string.Format(CultureInfo.InvariantCulture, "view {0} of {1}", v, session.Name))))
            .ToArray();
    }
}
