using Vmi.Core;

namespace Vmi.PowerShell;

/// <summary>An altp2m view created by New-VmiView. Binds View by property name.</summary>
public sealed class VmiViewInfo
{
    internal VmiViewInfo(VmiSession session, ushort view, MemoryAccess? defaultAccess)
    {
        Session = session;
        View = view;
        DefaultAccess = defaultAccess;
    }

    [Newtonsoft.Json.JsonIgnore, System.Management.Automation.Hidden]
    public VmiSession Session { get; }

    public ushort View { get; }

    /// <summary>The access new frames get in the view, when this session created it.</summary>
    public MemoryAccess? DefaultAccess { get; }

    public override string ToString() => View.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
