using System.Globalization;
using System.Management.Automation;
using Vmi.Core;

namespace Vmi.PowerShell.Commands;

/// <summary>Switches the guest's vCPUs to a view (0 is the default view).</summary>
[Cmdlet(VerbsCommon.Switch, "VmiView", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(void))]
public sealed class SwitchVmiViewCommand : VmiCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(VmiViewCompleter))]
    public ushort View { get; set; }

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        if (!ShouldProcess(Target(session, string.Format(CultureInfo.InvariantCulture, "switch to view {0}", View)), "Switch view"))
        {
            return;
        }

        try
        {
            session.Guest.SwitchToView(new View(View));
        }
        catch (Exception e) when (IsItemError(e))
        {
            WriteVmiError(e, new View(View));
        }
    }
}
