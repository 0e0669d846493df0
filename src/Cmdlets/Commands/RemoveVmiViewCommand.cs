using System.Globalization;
using System.Management.Automation;
using Vmi.Core;

namespace Vmi.PowerShell.Commands;

/// <summary>Destroys altp2m views (vCPUs in them go back to the default view).</summary>
[Cmdlet(VerbsCommon.Remove, "VmiView", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(void))]
public sealed class RemoveVmiViewCommand : VmiCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(VmiViewCompleter))]
    public ushort[]? View { get; set; }

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        foreach (ushort view in View!)
        {
            if (!ShouldProcess(Target(session, string.Format(CultureInfo.InvariantCulture, "view {0}", view)), "Destroy view"))
            {
                continue;
            }

            try
            {
                session.Guest.DestroyView(new View(view));
            }
            catch (Exception e) when (IsItemError(e))
            {
                WriteVmiError(e, new View(view));
            }
        }
    }
}
