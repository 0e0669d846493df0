using System.Management.Automation;
using Vmi.Os.Linux;

namespace Vmi.PowerShell.Commands;

/// <summary>Lists the guest's processes from its kernel's task list (no profile: layouts from the kernel's BTF).</summary>
[Cmdlet(VerbsCommon.Get, "VmiProcess")]
[OutputType(typeof(VmiProcess))]
public sealed class GetVmiProcessCommand : VmiCmdlet
{
    /// <summary>Process names (as /proc shows them); wildcards allowed.</summary>
    [Parameter(Position = 0)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[]? Name { get; set; }

    /// <summary>Process ids.</summary>
    [Parameter]
    [Alias("Pid")]
    public int[]? Id { get; set; }

    /// <summary>A Volatility 3 ISF profile (JSON or .json.gz) of the guest's kernel, for struct layouts instead of the kernel's BTF; kept for the session.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Profile { get; set; }

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        var patterns = Name?.Select(n => new WildcardPattern(n, WildcardOptions.IgnoreCase)).ToArray();
        var warnings = new List<string>();
        List<LinuxProcess> processes;
        try
        {
            LinuxKernel kernel = LinuxSessions.Get(session, Profile is null ? null : GetUnresolvedProviderPathFromPSPath(Profile));
            processes = kernel.GetProcesses(warning: warnings.Add).ToList();
        }
        catch (Exception e) when (IsItemError(e))
        {
            ThrowTerminatingError(VmiErrors.FromException(e, session));
            return;
        }

        warnings.ForEach(WriteWarning);
        foreach (LinuxProcess p in processes)
        {
            if ((patterns is null || patterns.Any(w => w.IsMatch(p.Name))) && (Id is null || Id.Contains(p.Pid)))
            {
                WriteObject(new VmiProcess(session, p));
            }
        }
    }
}
