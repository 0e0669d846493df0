using System.Management.Automation;

namespace Vmi.Shell.Builtins;

/// <summary>Get-Location: the current location (relative paths in every command are taken from it).</summary>
[Cmdlet(VerbsCommon.Get, "Location")]
[OutputType(typeof(PathInfo))]
public sealed class GetLocationCommand : PSCmdlet
{
    protected override void ProcessRecord() => WriteObject(SessionState.Path.CurrentLocation);
}
