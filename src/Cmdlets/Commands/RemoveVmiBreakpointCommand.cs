using System.Globalization;
using System.Management.Automation;
using Vmi.Core;

namespace Vmi.PowerShell.Commands;

/// <summary>Removes breakpoints by id (Get-VmiBreakpoint | Remove-VmiBreakpoint removes them all).</summary>
[Cmdlet(VerbsCommon.Remove, "VmiBreakpoint", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(void))]
public sealed class RemoveVmiBreakpointCommand : VmiCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    public int[]? Id { get; set; }

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        RequireWritable(session, "remove a breakpoint");
        foreach (int id in Id!)
        {
            if (!ShouldProcess(Target(session, string.Format(CultureInfo.InvariantCulture, "breakpoint {0}", id)), "Remove breakpoint"))
            {
                continue;
            }

            try
            {
                if (!session.Use(core => core.Breakpoints().RemoveBreakpoint(id)))
                {
                    WriteError(VmiErrors.InvalidArgument(string.Format(CultureInfo.InvariantCulture, "The session has no breakpoint {0}: Get-VmiBreakpoint lists them.", id), id));
                }
            }
            catch (Exception e) when (IsItemError(e))
            {
                WriteVmiError(e, id);
            }
        }
    }
}
