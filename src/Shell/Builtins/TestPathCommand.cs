using System.Management.Automation;

namespace Vmi.Shell.Builtins;

/// <summary>Test-Path: whether items exist at the paths (wildcards allowed with -Path), or whether a path is well-formed (-IsValid).</summary>
[Cmdlet(VerbsDiagnostic.Test, "Path", DefaultParameterSetName = PathSet)]
[OutputType(typeof(bool))]
public sealed class TestPathCommand : PSCmdlet
{
    private const string PathSet = "Path";
    private const string LiteralPathSet = "LiteralPath";

    [Parameter(Position = 0, Mandatory = true, ParameterSetName = PathSet, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString]
    [AllowEmptyCollection]
    [AllowNull]
    public string?[]? Path { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath", "LP")]
    [AllowEmptyString]
    [AllowEmptyCollection]
    [AllowNull]
    public string?[]? LiteralPath { get; set; }

    [Parameter]
    [Alias("Type")]
    public TestPathType PathType { get; set; } = TestPathType.Any;

    [Parameter]
    public SwitchParameter IsValid { get; set; }

    protected override void ProcessRecord()
    {
        bool literal = ParameterSetName == LiteralPathSet;
        foreach (string? path in (literal ? LiteralPath : Path) ?? [null])
        {
            WriteObject(!string.IsNullOrWhiteSpace(path) && Test(path, literal));
        }
    }

    private bool Test(string path, bool literal)
    {
        try
        {
            if (IsValid)
            {
                return SessionState.Path.IsValid(path);
            }

            if (!InvokeProvider.Item.Exists(path, force: false, literalPath: literal))
            {
                return false;
            }

            return PathType == TestPathType.Any
                || InvokeProvider.Item.IsContainer(literal ? WildcardPattern.Escape(path) : path) == (PathType == TestPathType.Container);
        }
        catch (Exception e) when (e is ItemNotFoundException or System.Management.Automation.DriveNotFoundException or ProviderNotFoundException or PSArgumentException
            or NotSupportedException or ProviderInvocationException or UnauthorizedAccessException or IOException)
        {
            return false; // nothing there that can be reached is "no", as in PowerShell
        }
    }
}
