using System.Management.Automation;

namespace Vmi.Shell.Builtins;

/// <summary>Set-Location: changes the current location (home without a path); -PassThru writes the new one.</summary>
[Cmdlet(VerbsCommon.Set, "Location", DefaultParameterSetName = PathSet)]
[OutputType(typeof(PathInfo))]
public sealed class SetLocationCommand : PSCmdlet
{
    private const string PathSet = "Path";
    private const string LiteralPathSet = "LiteralPath";

    [Parameter(Position = 0, ParameterSetName = PathSet, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    public string Path { get; set; } = "~";

    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath", "LP")]
    public string LiteralPath { get; set; } = string.Empty;

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        string path = ParameterSetName == LiteralPathSet ? WildcardPattern.Escape(LiteralPath) : Path;
        try
        {
            PathInfo now = SessionState.Path.SetLocation(path);
            if (PassThru)
            {
                WriteObject(now);
            }
        }
        catch (Exception e) when (e is ItemNotFoundException or System.Management.Automation.DriveNotFoundException or ProviderNotFoundException
            or PSArgumentException or PSInvalidOperationException or NotSupportedException)
        {
            WriteError(BuiltinErrors.FromIO(e, BuiltinErrors.PathNotFound, path));
        }
    }
}
