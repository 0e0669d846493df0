using System.Management.Automation;
using System.Text;

namespace Vmi.Shell.Builtins;

/// <summary>Set-Content: replaces a file's content with the values, one per line (utf8 without a BOM unless told).</summary>
[Cmdlet(VerbsCommon.Set, "Content", DefaultParameterSetName = PathSet, SupportsShouldProcess = true)]
public sealed class SetContentCommand : PSCmdlet
{
    private const string PathSet = "Path";
    private const string LiteralPathSet = "LiteralPath";

    private readonly StringBuilder _text = new();

    [Parameter(Position = 0, Mandatory = true, ParameterSetName = PathSet)]
    public string[] Path { get; set; } = [];

    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet)]
    [Alias("PSPath", "LP")]
    public string[] LiteralPath { get; set; } = [];

    [Parameter(Position = 1, Mandatory = true, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [AllowNull]
    [AllowEmptyCollection]
    public object?[]? Value { get; set; }

    [Parameter]
    public string? Encoding { get; set; }

    /// <summary>Join the values without line breaks, and end without one.</summary>
    [Parameter]
    public SwitchParameter NoNewline { get; set; }

    protected override void ProcessRecord()
    {
        foreach (object? value in Value ?? [])
        {
            _text.Append(value is null ? string.Empty : LanguagePrimitives.ConvertTo<string>(value));
            if (!NoNewline)
            {
                _text.Append('\n');
            }
        }
    }

    protected override void EndProcessing()
    {
        Encoding encoding = TextEncodings.Get(Encoding, this);
        bool literal = ParameterSetName == LiteralPathSet;
        foreach (string path in literal ? LiteralPath : Path)
        {
            string? file = FileSystemPaths.ForWriting(this, path, literal);
            if (file is null || !ShouldProcess(file, "Set Content"))
            {
                continue;
            }

            try
            {
                File.WriteAllText(file, _text.ToString(), encoding);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                WriteError(BuiltinErrors.FromIO(e, BuiltinErrors.WriteFailed, file));
            }
        }
    }
}
