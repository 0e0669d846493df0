using System.Collections;
using System.Management.Automation;
using System.Text;
using System.Xml;
using System.Xml.Linq;

namespace Vmi.Shell.Builtins;

/// <summary>
/// Export-Clixml: writes its input to a CLIXML file, each input object a top-level object as pwsh writes it, so
/// pwsh's Import-Clixml (and vmi's) reads the same objects back.
/// </summary>
[Cmdlet(VerbsData.Export, "Clixml", DefaultParameterSetName = PathSet, SupportsShouldProcess = true)]
public sealed class ExportClixmlCommand : PSCmdlet
{
    private const string PathSet = "ByPath";
    private const string LiteralPathSet = "ByLiteralPath";

    private readonly Batch _objects = [];

    [Parameter(Position = 0, Mandatory = true, ParameterSetName = PathSet)]
    public string Path { get; set; } = string.Empty;

    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath", "LP")]
    public string LiteralPath { get; set; } = string.Empty;

    [Parameter(Mandatory = true, ValueFromPipeline = true)]
    [AllowNull]
    public PSObject? InputObject { get; set; }

    /// <summary>How many levels of contained objects are kept (2 by default, as pwsh).</summary>
    [Parameter]
    [ValidateRange(1, int.MaxValue - 1)]
    public int Depth { get; set; } = 2;

    /// <summary>Replace a read-only file.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <summary>Never replace an existing file.</summary>
    [Parameter]
    [Alias("NoOverwrite")]
    public SwitchParameter NoClobber { get; set; }

    [Parameter]
    public string? Encoding { get; set; }

    protected override void ProcessRecord() => _objects.Add(InputObject);

    protected override void EndProcessing()
    {
        Encoding encoding = TextEncodings.Get(Encoding, this);
        bool literal = ParameterSetName == LiteralPathSet;
        string path = literal ? LiteralPath : Path;
        string? file = FileSystemPaths.ForWriting(this, path, literal);
        if (file is null || !ShouldProcess(file, "Export-Clixml"))
        {
            return;
        }

        if (NoClobber && File.Exists(file))
        {
            ThrowTerminatingError(BuiltinErrors.Create(
                new IOException($"The file '{file}' already exists (-NoClobber)."), BuiltinErrors.NoClobber, ErrorCategory.ResourceExists, file));
        }

        try
        {
            if (Force && File.Exists(file))
            {
                File.SetAttributes(file, File.GetAttributes(file) & ~FileAttributes.ReadOnly);
            }

            var settings = new XmlWriterSettings { Encoding = encoding, Indent = true };
            using XmlWriter writer = XmlWriter.Create(file, settings);
            TopLevel(_objects, Depth).Save(writer);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            ThrowTerminatingError(BuiltinErrors.FromIO(e, BuiltinErrors.WriteFailed, file));
        }
    }

    /// <summary>
    /// The public serializer writes one top-level object. The objects are serialized as one list (one level deeper),
    /// then the list's elements become the top-level objects: the references between them stay valid, and the list's
    /// own type name, private to this class, is never referred to by them.
    /// </summary>
    private static XDocument TopLevel(Batch objects, int depth)
    {
        XDocument document = XDocument.Parse(PSSerializer.Serialize(objects, depth + 1));
        XElement root = document.Root!;
        XNamespace ns = root.Name.Namespace;
        XElement list = root.Elements(ns + "Obj").Single();
        XElement? items = list.Element(ns + "LST") ?? list.Element(ns + "IE");
        List<XElement> elements = items?.Elements().ToList() ?? [];
        list.Remove();
        root.Add(elements);
        return document;
    }

    /// <summary>The input, as a list of a type nothing else has.</summary>
    private sealed class Batch : ArrayList;
}
