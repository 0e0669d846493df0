using System.Management.Automation;

namespace Vmi.PowerShell.Commands;

/// <summary>Resumes a guest paused with Suspend-VmiDomain (one Resume per Suspend).</summary>
[Cmdlet(VerbsLifecycle.Resume, "VmiDomain", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(VmiSession))]
public sealed class ResumeVmiDomainCommand : VmiCmdlet
{
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        if (!ShouldProcess(Target(session, "all vCPUs"), "Resume guest"))
        {
            return;
        }

        try
        {
            session.Guest.Resume();
            if (PassThru)
            {
                WriteObject(session);
            }
        }
        catch (Exception e) when (IsItemError(e))
        {
            WriteVmiError(e, session);
        }
    }
}
