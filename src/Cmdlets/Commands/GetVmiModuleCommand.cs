using System.Management.Automation;
using Vmi.Os.Linux;

namespace Vmi.PowerShell.Commands;

/// <summary>Lists the guest kernel's loaded modules (name, base, size) from its modules list.</summary>
[Cmdlet(VerbsCommon.Get, "VmiModule")]
[OutputType(typeof(VmiModule))]
public sealed class GetVmiModuleCommand : VmiCmdlet
{
    /// <summary>Module names; wildcards allowed.</summary>
    [Parameter(Position = 0)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[]? Name { get; set; }

    /// <summary>A Volatility 3 ISF profile (JSON or .json.gz) of the guest's kernel, for struct layouts instead of the kernel's BTF; kept for the session.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Profile { get; set; }

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        var patterns = Name?.Select(n => new WildcardPattern(n, WildcardOptions.IgnoreCase)).ToArray();
        var warnings = new List<string>();
        List<LinuxModule> modules;
        try
        {
            LinuxKernel kernel = LinuxSessions.Get(session, Profile is null ? null : GetUnresolvedProviderPathFromPSPath(Profile));
            modules = kernel.GetModules(warning: warnings.Add).ToList();
        }
        catch (Exception e) when (IsItemError(e))
        {
            ThrowTerminatingError(VmiErrors.FromException(e, session));
            return;
        }

        warnings.ForEach(WriteWarning);
        foreach (LinuxModule m in modules)
        {
            if (patterns is null || patterns.Any(w => w.IsMatch(m.Name)))
            {
                WriteObject(new VmiModule(session, m));
            }
        }
    }
}
