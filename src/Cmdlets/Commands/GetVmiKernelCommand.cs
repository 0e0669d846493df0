using System.Management.Automation;
using Vmi.Os.Linux;

namespace Vmi.PowerShell.Commands;

/// <summary>Finds the guest's Linux kernel in its memory (no profile): banner, KASLR slide, paging mode, where symbols and types came from.</summary>
[Cmdlet(VerbsCommon.Get, "VmiKernel")]
[OutputType(typeof(VmiKernel))]
public sealed class GetVmiKernelCommand : VmiCmdlet
{
    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        try
        {
            LinuxKernel kernel = LinuxSessions.Get(session);
            WriteObject(new VmiKernel(session, kernel.Info));
        }
        catch (Exception e) when (IsItemError(e))
        {
            WriteVmiError(e, session);
        }
    }
}
