using System.Management.Automation;
using System.Text;

namespace Vmi.Shell.Builtins;

/// <summary>Get-Content: the lines of text files as they are read (or each file as one string with -Raw), utf8 unless told.</summary>
[Cmdlet(VerbsCommon.Get, "Content", DefaultParameterSetName = PathSet)]
[OutputType(typeof(string))]
public sealed class GetContentCommand : PSCmdlet
{
    private const string PathSet = "Path";
    private const string LiteralPathSet = "LiteralPath";

    private Encoding _encoding = TextEncodings.Utf8;

    [Parameter(Position = 0, Mandatory = true, ParameterSetName = PathSet, ValueFromPipelineByPropertyName = true)]
    public string[] Path { get; set; } = [];

    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath", "LP")]
    public string[] LiteralPath { get; set; } = [];

    /// <summary>The whole file as one string, line breaks kept.</summary>
    [Parameter]
    public SwitchParameter Raw { get; set; }

    /// <summary>utf8 (default), utf8BOM, ascii, unicode, bigendianunicode, utf32, latin1, or a code page. A byte order mark in the file wins.</summary>
    [Parameter]
    public string? Encoding { get; set; }

    /// <summary>Only the first lines.</summary>
    [Parameter]
    [Alias("First", "Head")]
    [ValidateRange(0, long.MaxValue)]
    public long TotalCount { get; set; } = -1;

    /// <summary>Only the last lines.</summary>
    [Parameter]
    [Alias("Last")]
    [ValidateRange(0, int.MaxValue)]
    public int Tail { get; set; } = -1;

    protected override void BeginProcessing() => _encoding = TextEncodings.Get(Encoding, this);

    protected override void ProcessRecord()
    {
        bool literal = ParameterSetName == LiteralPathSet;
        foreach (string path in literal ? LiteralPath : Path)
        {
            foreach (string file in FileSystemPaths.Existing(this, path, literal))
            {
                try
                {
                    Read(file);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    WriteError(BuiltinErrors.FromIO(e, BuiltinErrors.ReadFailed, file));
                }
            }
        }
    }

    private void Read(string file)
    {
        if (Directory.Exists(file))
        {
            throw new UnauthorizedAccessException($"'{file}' is a directory; Get-Content reads files.");
        }

        using var reader = new StreamReader(file, _encoding, detectEncodingFromByteOrderMarks: true);
        if (Raw)
        {
            string text = reader.ReadToEnd();
            if (text.Length > 0)
            {
                WriteObject(text);
            }

            return;
        }

        var tail = Tail >= 0 ? new Queue<string>() : null;
        long count = 0;
        while ((TotalCount < 0 || count < TotalCount) && reader.ReadLine() is string line)
        {
            count++;
            if (tail is null)
            {
                WriteObject(line);
                continue;
            }

            tail.Enqueue(line);
            if (tail.Count > Tail)
            {
                tail.Dequeue();
            }
        }

        foreach (string line in tail ?? new Queue<string>())
        {
            WriteObject(line);
        }
    }
}
