using System.Management.Automation;
using System.Xml;

namespace Vmi.Shell.Builtins;

/// <summary>Import-Clixml: the objects of CLIXML files (from Export-Clixml, vmi's or pwsh's), as deserialized objects.</summary>
[Cmdlet(VerbsData.Import, "Clixml", DefaultParameterSetName = PathSet)]
public sealed class ImportClixmlCommand : PSCmdlet
{
    private const string PathSet = "ByPath";
    private const string LiteralPathSet = "ByLiteralPath";

    [Parameter(Position = 0, Mandatory = true, ParameterSetName = PathSet, ValueFromPipelineByPropertyName = true)]
    public string[] Path { get; set; } = [];

    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath", "LP")]
    public string[] LiteralPath { get; set; } = [];

    protected override void ProcessRecord()
    {
        bool literal = ParameterSetName == LiteralPathSet;
        foreach (string path in literal ? LiteralPath : Path)
        {
            foreach (string file in FileSystemPaths.Existing(this, path, literal))
            {
                object[] objects;
                try
                {
                    objects = PSSerializer.DeserializeAsList(File.ReadAllText(file));
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    WriteError(BuiltinErrors.FromIO(e, BuiltinErrors.ReadFailed, file));
                    continue;
                }
                catch (XmlException e)
                {
                    WriteError(BuiltinErrors.Create(
                        new InvalidDataException($"'{file}' is not a CLIXML file: {e.Message}", e), BuiltinErrors.BadClixml, ErrorCategory.InvalidData, file));
                    continue;
                }

                foreach (object o in objects)
                {
                    WriteObject(o);
                }
            }
        }
    }
}
