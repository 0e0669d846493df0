using System.Management.Automation;
using Vmi.Core;

namespace Vmi.PowerShell.Commands;

/// <summary>Lists the session's breakpoints with their hit counts.</summary>
[Cmdlet(VerbsCommon.Get, "VmiBreakpoint")]
[OutputType(typeof(VmiBreakpointInfo))]
public sealed class GetVmiBreakpointCommand : VmiCmdlet
{
    /// <summary>Only these breakpoints (default: all).</summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    public int[]? Id { get; set; }

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        try
        {
            foreach (VmiBreakpoint bp in session.Use(core => core.Breakpoints().Breakpoints))
            {
                if (Id is null || Id.Contains(bp.Id))
                {
                    WriteObject(new VmiBreakpointInfo(session, bp));
                }
            }
        }
        catch (Exception e) when (IsItemError(e))
        {
            WriteVmiError(e, session);
        }
    }
}
