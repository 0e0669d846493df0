using System.Management.Automation;
using Vmi.Core;
using Vmi.Core.Drivers;

namespace Vmi.PowerShell.Commands;

/// <summary>Lists the domains of the hypervisors on this host: id, name, vCPUs, memory, state. Filters by name (wildcards) and id.</summary>
[Cmdlet(VerbsCommon.Get, "VmiDomain")]
[OutputType(typeof(VmiDomain))]
public sealed class GetVmiDomainCommand : PSCmdlet
{
    /// <summary>Only domains whose name matches one of these (wildcards allowed).</summary>
    [Parameter(Position = 0)]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(VmiDomainNameCompleter))]
    public string[]? Name { get; set; }

    /// <summary>Only domains with one of these ids.</summary>
    [Parameter]
    public uint[]? Id { get; set; }

    protected override void EndProcessing()
    {
        IReadOnlyList<VmiDomainInfo> domains;
        try
        {
            domains = VmiDriverRegistry.ListDomains();
        }
        catch (VmiException e)
        {
            // No Xen here (or it refused to list): nothing in the command can succeed.
            ThrowTerminatingError(VmiErrors.FromException(e, null));
            return;
        }

        WildcardPattern[]? patterns = Name?.Select(n => WildcardPattern.Get(n, WildcardOptions.IgnoreCase)).ToArray();
        foreach (VmiDomainInfo d in domains)
        {
            if ((patterns is null || patterns.Any(p => p.IsMatch(d.Name))) && (Id is null || Id.Contains(d.Id)))
            {
                WriteObject(new VmiDomain(d));
            }
        }
    }
}
