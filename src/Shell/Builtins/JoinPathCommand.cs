using System.Management.Automation;

namespace Vmi.Shell.Builtins;

/// <summary>Join-Path: joins a parent path and child paths with the provider's separator; -Resolve gives the existing items.</summary>
[Cmdlet(VerbsCommon.Join, "Path")]
[OutputType(typeof(string))]
public sealed class JoinPathCommand : PSCmdlet
{
    [Parameter(Position = 0, Mandatory = true, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath")]
    public string[] Path { get; set; } = [];

    [Parameter(Position = 1, ValueFromPipelineByPropertyName = true)]
    [AllowNull]
    [AllowEmptyString]
    public string? ChildPath { get; set; }

    [Parameter(Position = 2, ValueFromRemainingArguments = true)]
    public string[] AdditionalChildPath { get; set; } = [];

    /// <summary>Write the items the joined path names (wildcards expanded); an error if there are none.</summary>
    [Parameter]
    public SwitchParameter Resolve { get; set; }

    protected override void ProcessRecord()
    {
        foreach (string parent in Path)
        {
            string joined = parent;
            foreach (string? child in AdditionalChildPath.Prepend(ChildPath))
            {
                if (!string.IsNullOrEmpty(child))
                {
                    joined = SessionState.Path.Combine(joined, child);
                }
            }

            if (!Resolve)
            {
                WriteObject(joined);
                continue;
            }

            try
            {
                foreach (PathInfo p in SessionState.Path.GetResolvedPSPathFromPSPath(joined))
                {
                    WriteObject(p.Path);
                }
            }
            catch (Exception e) when (e is ItemNotFoundException or System.Management.Automation.DriveNotFoundException or ProviderNotFoundException)
            {
                WriteError(BuiltinErrors.FromIO(e, BuiltinErrors.PathNotFound, joined));
            }
        }
    }
}
