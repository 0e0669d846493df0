using System.Management.Automation;

namespace Vmi.PowerShell.Commands;

/// <summary>Pauses the whole guest. Pauses nest: each Suspend needs a Resume. Disconnect resumes whatever is left.</summary>
[Cmdlet(VerbsLifecycle.Suspend, "VmiDomain", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(VmiSession))]
public sealed class SuspendVmiDomainCommand : VmiCmdlet
{
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        if (!ShouldProcess(Target(session, "all vCPUs"), "Pause guest"))
        {
            return;
        }

        try
        {
            session.Guest.Pause();
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
