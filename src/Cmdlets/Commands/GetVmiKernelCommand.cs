using System.Management.Automation;
using Vmi.Os.Linux;

namespace Vmi.PowerShell.Commands;

/// <summary>Finds the guest's Linux kernel in its memory (no profile): banner, KASLR slide, paging mode, where symbols and types came from.</summary>
[Cmdlet(VerbsCommon.Get, "VmiKernel")]
[OutputType(typeof(VmiKernel))]
public sealed class GetVmiKernelCommand : VmiCmdlet
{
    /// <summary>A Volatility 3 ISF profile (JSON or .json.gz) of the guest's kernel, for struct layouts instead of the kernel's BTF; kept for the session.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Profile { get; set; }

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        try
        {
            LinuxKernel kernel = LinuxSessions.Get(session, Profile is null ? null : GetUnresolvedProviderPathFromPSPath(Profile));
            WriteObject(new VmiKernel(session, kernel.Info));
        }
        catch (Exception e) when (IsItemError(e))
        {
            WriteVmiError(e, session);
        }
    }
}
