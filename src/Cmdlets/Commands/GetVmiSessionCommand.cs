using System.Management.Automation;

namespace Vmi.PowerShell.Commands;

/// <summary>Lists the open sessions of this runspace, or the default one.</summary>
[Cmdlet(VerbsCommon.Get, "VmiSession", DefaultParameterSetName = AllSet)]
[OutputType(typeof(VmiSession))]
public sealed class GetVmiSessionCommand : PSCmdlet
{
    public const string AllSet = "All";
    public const string IdSet = "Id";
    public const string DefaultSet = "Default";

    /// <summary>Session names to list; wildcards allowed.</summary>
    [Parameter(Position = 0, ParameterSetName = AllSet)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(VmiSessionCompleter))]
    public string[]? Name { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = IdSet)]
    [ArgumentCompleter(typeof(VmiSessionIdCompleter))]
    public int[]? Id { get; set; }

    /// <summary>Only the default session (the one cmdlets use without -Session).</summary>
    [Parameter(Mandatory = true, ParameterSetName = DefaultSet)]
    public SwitchParameter Default { get; set; }

    protected override void ProcessRecord()
    {
        if (Default)
        {
            if (VmiSessionRegistry.Default is { } d)
            {
                WriteObject(d);
            }

            return;
        }

        foreach (VmiSession s in VmiSessionRegistry.Current)
        {
            if (Id is not null && !Id.Contains(s.Id))
            {
                continue;
            }

            if (Name is not null && !Name.Any(n => WildcardPattern.Get(n, WildcardOptions.IgnoreCase).IsMatch(s.Name)))
            {
                continue;
            }

            WriteObject(s);
        }
    }
}
