using System.Collections;
using System.Globalization;
using System.Management.Automation;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Vmi.Shell.Builtins;

/// <summary>
/// ConvertTo-Json: its input as JSON text — several inputs as an array. Objects deeper than -Depth (2 by default)
/// are written as their text, with a warning, as pwsh does.
/// </summary>
[Cmdlet(VerbsData.ConvertTo, "Json")]
[OutputType(typeof(string))]
public sealed class ConvertToJsonCommand : PSCmdlet
{
    private readonly List<object?> _input = [];
    private bool _truncated;

    [Parameter(Position = 0, Mandatory = true, ValueFromPipeline = true)]
    [AllowNull]
    public object? InputObject { get; set; }

    [Parameter]
    [ValidateRange(0, 100)]
    public int Depth { get; set; } = 2;

    /// <summary>No indentation or line breaks.</summary>
    [Parameter]
    public SwitchParameter Compress { get; set; }

    /// <summary>Enum values by name rather than number.</summary>
    [Parameter]
    public SwitchParameter EnumsAsStrings { get; set; }

    /// <summary>An array even for a single input.</summary>
    [Parameter]
    public SwitchParameter AsArray { get; set; }

    protected override void ProcessRecord() => _input.Add(InputObject);

    protected override void EndProcessing()
    {
        if (_input.Count == 0)
        {
            return;
        }

        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions
        {
            Indented = !Compress,
            Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
            NewLine = "\n",
        }))
        {
            if (_input.Count == 1 && !AsArray)
            {
                Write(writer, _input[0], 0);
            }
            else
            {
                writer.WriteStartArray();
                foreach (object? o in _input)
                {
                    Write(writer, o, 1);
                }

                writer.WriteEndArray();
            }
        }

        if (_truncated)
        {
            WriteWarning($"Resulting JSON is truncated as serialization has exceeded the set depth of {Depth}.");
        }

        WriteObject(Encoding.UTF8.GetString(stream.ToArray()));
    }

    private void Write(Utf8JsonWriter w, object? value, int level)
    {
        PSObject? wrapper = value as PSObject;
        object? o = wrapper?.BaseObject ?? value;
        switch (o)
        {
            case null or DBNull:
                w.WriteNullValue();
                return;
            case string or char or Guid or Uri:
                w.WriteStringValue(o.ToString());
                return;
            case bool b:
                w.WriteBooleanValue(b);
                return;
            case Enum e:
                if (EnumsAsStrings)
                {
                    w.WriteStringValue(e.ToString());
                }
                else if (Convert.GetTypeCode(e) == TypeCode.UInt64)
                {
                    w.WriteNumberValue(Convert.ToUInt64(e, CultureInfo.InvariantCulture));
                }
                else
                {
                    w.WriteNumberValue(Convert.ToInt64(e, CultureInfo.InvariantCulture));
                }

                return;
            case double d when double.IsNaN(d) || double.IsInfinity(d):
                w.WriteStringValue(d.ToString(CultureInfo.InvariantCulture));
                return;
            case float f when float.IsNaN(f) || float.IsInfinity(f):
                w.WriteStringValue(f.ToString(CultureInfo.InvariantCulture));
                return;
            case sbyte or byte or short or ushort or int or uint or long:
                w.WriteNumberValue(Convert.ToInt64(o, CultureInfo.InvariantCulture));
                return;
            case ulong u:
                w.WriteNumberValue(u);
                return;
            case float f:
                w.WriteNumberValue(f);
                return;
            case double d:
                w.WriteNumberValue(d);
                return;
            case decimal m:
                w.WriteNumberValue(m);
                return;
            case System.Numerics.BigInteger big:
                w.WriteStringValue(big.ToString(CultureInfo.InvariantCulture));
                return;
            case DateTime dt:
                w.WriteStringValue(dt.ToString("yyyy-MM-ddTHH:mm:ss.FFFFFFFK", CultureInfo.InvariantCulture));
                return;
            case DateTimeOffset dto:
                w.WriteStringValue(dto.ToString("yyyy-MM-ddTHH:mm:ss.FFFFFFFzzz", CultureInfo.InvariantCulture));
                return;
        }

        if (level > Depth)
        {
            _truncated = true;
            w.WriteStringValue(LanguagePrimitives.ConvertTo<string>(value));
            return;
        }

        switch (o)
        {
            case IDictionary dictionary:
                w.WriteStartObject();
                foreach (DictionaryEntry entry in dictionary)
                {
                    w.WritePropertyName(entry.Key?.ToString() ?? string.Empty);
                    Write(w, entry.Value, level + 1);
                }

                w.WriteEndObject();
                return;
            case IEnumerable items:
                w.WriteStartArray();
                foreach (object? item in items)
                {
                    Write(w, item, level + 1);
                }

                w.WriteEndArray();
                return;
        }

        w.WriteStartObject();
        foreach (PSPropertyInfo p in (wrapper ?? PSObject.AsPSObject(o)).Properties)
        {
            if ((p.MemberType & (PSMemberTypes.Property | PSMemberTypes.NoteProperty | PSMemberTypes.AliasProperty | PSMemberTypes.ScriptProperty | PSMemberTypes.CodeProperty)) == 0)
            {
                continue;
            }

            object? v;
            try
            {
                v = p.Value;
            }
            catch (GetValueException)
            {
                v = null;
            }

            w.WritePropertyName(p.Name);
            Write(w, v, level + 1);
        }

        w.WriteEndObject();
    }
}
