using System.Globalization;
using System.Management.Automation;
using Vmi.Core;

namespace Vmi.PowerShell.Commands;

/// <summary>Creates an altp2m view: a second set of guest-physical mappings and permissions.</summary>
[Cmdlet(VerbsCommon.New, "VmiView", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(VmiViewInfo))]
public sealed class NewVmiViewCommand : VmiCmdlet
{
    /// <summary>The access every frame has in the new view until changed (default RWX).</summary>
    [Parameter(Position = 0)]
    public MemoryAccess DefaultAccess { get; set; } = MemoryAccess.RWX;

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        if (!ShouldProcess(Target(session, string.Format(CultureInfo.InvariantCulture, "new view with default access {0}", DefaultAccess)), "Create view"))
        {
            return;
        }

        try
        {
            View view = session.Guest.CreateView(DefaultAccess);
            WriteObject(new VmiViewInfo(session, view.Value, DefaultAccess));
        }
        catch (Exception e) when (IsItemError(e))
        {
            WriteVmiError(e, session);
        }
    }
}
