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

        WildcardPattern[]? names = Name?.Select(Pattern).ToArray();
        foreach (VmiSession s in VmiSessionRegistry.Current)
        {
            if (Id is not null && !Id.Contains(s.Id))
            {
                continue;
            }

            if (names is not null && !names.Any(n => n.IsMatch(s.Name)))
            {
                continue;
            }

            WriteObject(s);
        }
    }

    /// <summary>The pattern of a -Name, checked now: one that does not parse ('[') is a clear error, not a WildcardPatternException.</summary>
    private WildcardPattern Pattern(string name)
    {
        var pattern = WildcardPattern.Get(name, WildcardOptions.IgnoreCase);
        try
        {
            pattern.IsMatch(string.Empty); // the pattern is parsed on first use
        }
        catch (WildcardPatternException e)
        {
            ThrowTerminatingError(new ErrorRecord(
                new ArgumentException(string.Format(System.Globalization.CultureInfo.CurrentCulture, Messages.WildcardInvalid, name, e.Message), e),
                VmiErrorIds.InvalidWildcard, ErrorCategory.InvalidArgument, name));
        }

        return pattern;
    }
}
