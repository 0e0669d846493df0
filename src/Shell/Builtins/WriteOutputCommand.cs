using System.Management.Automation;

namespace Vmi.Shell.Builtins;

/// <summary>Write-Output: sends its arguments (or its input) down the pipeline, enumerating collections unless -NoEnumerate.</summary>
[Cmdlet(VerbsCommunications.Write, "Output")]
[OutputType(typeof(object))]
public sealed class WriteOutputCommand : PSCmdlet
{
    [Parameter(Position = 0, Mandatory = true, ValueFromPipeline = true, ValueFromRemainingArguments = true)]
    [AllowNull]
    [AllowEmptyCollection]
    public PSObject? InputObject { get; set; }

    /// <summary>Write a collection as one object.</summary>
    [Parameter]
    public SwitchParameter NoEnumerate { get; set; }

    protected override void ProcessRecord() => WriteObject(InputObject, enumerateCollection: !NoEnumerate);
}
