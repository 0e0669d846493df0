using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Text.Json;

namespace Vmi.Os.Linux;

/// <summary>
/// A Volatility 3 ISF profile (the JSON dwarf2json writes from a kernel's DWARF, which vmi-rs reads too): struct
/// layouts from <c>user_types</c> (fields with byte offsets and types; anonymous members marked <c>"anonymous": true</c>),
/// sizes from <c>base_types</c> and <c>enums</c>, link-time addresses from <c>symbols</c>, and the kernel's banner from
/// <c>symbols.linux_banner.constant_data</c>. The fallback source of layouts for a kernel built without BTF. Every
/// lookup is bounded; a malformed profile ends in <see cref="LinuxIntrospectionException"/> naming where.
/// </summary>
public sealed class IsfProfile : IKernelTypes
{
    /// <summary>The largest profile read (a whole kernel's ISF is some 100 MB uncompressed).</summary>
    public const long MaxSize = 1L << 30;

    private const int MaxDepth = 64;
    private const int MaxMemberVisits = 1 << 16;

    private readonly Dictionary<string, JsonElement> _userTypes;
    private readonly Dictionary<string, JsonElement> _baseTypes;
    private readonly Dictionary<string, JsonElement> _enums;
    private readonly Dictionary<string, ulong> _symbols;

    private IsfProfile(string name, string? format, string? banner, Dictionary<string, JsonElement> userTypes, Dictionary<string, JsonElement> baseTypes,
        Dictionary<string, JsonElement> enums, Dictionary<string, ulong> symbols)
    {
        Name = name;
        Format = format;
        Banner = banner;
        _userTypes = userTypes;
        _baseTypes = baseTypes;
        _enums = enums;
        _symbols = symbols;
    }

    /// <summary>The file name the profile was read from.</summary>
    public string Name { get; }

    /// <summary>metadata.format (dwarf2json writes "6.2.0"), when given.</summary>
    public string? Format { get; }

    /// <summary>The banner of the kernel the profile was made from (linux_banner's constant data), without its newline; null when the profile has none.</summary>
    public string? Banner { get; }

    /// <summary>Link-time addresses of the profile's symbols.</summary>
    public IReadOnlyDictionary<string, ulong> Symbols => _symbols;

    public string Description => $"the profile '{Name}'";

    /// <summary>User types (structs and unions).</summary>
    public int Count => _userTypes.Count;

    /// <summary>Reads an ISF file: JSON, or JSON compressed with gzip (.json.gz). Throws <see cref="LinuxIntrospectionException"/> saying what is wrong.</summary>
    public static IsfProfile Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string name = Path.GetFileName(path);
        byte[] bytes;
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists)
            {
                throw new LinuxIntrospectionException($"The profile '{path}' does not exist. Give the path of a Volatility 3 ISF JSON file made from this kernel's debug info (see docs/linux.md).");
            }

            if (info.Length > MaxSize)
            {
                throw new LinuxIntrospectionException($"The profile '{path}' is {info.Length} bytes, larger than the {MaxSize >> 20} MiB a profile may be.");
            }

            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LinuxIntrospectionException($"The profile '{path}' cannot be read: {e.Message}", e);
        }

        return Parse(bytes, name);
    }

    /// <summary>Parses an ISF document (JSON, or gzip-compressed JSON) named <paramref name="name"/> in messages.</summary>
    public static IsfProfile Parse(byte[] bytes, string name)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        ArgumentNullException.ThrowIfNull(name);
        if (bytes is [0x1f, 0x8b, ..])
        {
            bytes = Gunzip(bytes, name);
        }
        else if (bytes is [0xfd, (byte)'7', (byte)'z', (byte)'X', (byte)'Z', 0, ..])
        {
            throw new LinuxIntrospectionException($"The profile '{name}' is compressed with xz, which is not read here: decompress it first (xz -dk '{name}') and give the .json file.");
        }

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = 256 });
        }
        catch (JsonException e)
        {
            throw new LinuxIntrospectionException($"The profile '{name}' is not valid JSON ({e.Message}). -Profile takes a Volatility 3 ISF JSON file, as dwarf2json writes it.", e);
        }

        try
        {
            JsonElement root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("user_types", out JsonElement userTypes) || userTypes.ValueKind != JsonValueKind.Object)
            {
                throw new LinuxIntrospectionException($"The profile '{name}' is not an ISF profile: it has no \"user_types\" object. -Profile takes a Volatility 3 ISF JSON file, as dwarf2json writes it.");
            }

            string? format = root.TryGetProperty("metadata", out JsonElement meta) && meta.ValueKind == JsonValueKind.Object
                && meta.TryGetProperty("format", out JsonElement f) && f.ValueKind == JsonValueKind.String ? f.GetString() : null;
            var symbols = new Dictionary<string, ulong>(StringComparer.Ordinal);
            string? banner = null;
            if (root.TryGetProperty("symbols", out JsonElement syms) && syms.ValueKind == JsonValueKind.Object)
            {
                foreach (JsonProperty s in syms.EnumerateObject())
                {
                    if (s.Value.ValueKind == JsonValueKind.Object && s.Value.TryGetProperty("address", out JsonElement a) && a.ValueKind == JsonValueKind.Number && a.TryGetUInt64(out ulong address))
                    {
                        symbols[s.Name] = address;
                    }
                }

                if (syms.TryGetProperty("linux_banner", out JsonElement lb) && lb.ValueKind == JsonValueKind.Object
                    && lb.TryGetProperty("constant_data", out JsonElement data) && data.ValueKind == JsonValueKind.String
                    && data.TryGetBytesFromBase64(out byte[]? raw))
                {
                    banner = Encoding.UTF8.GetString(raw).TrimEnd('\0').TrimEnd('\n');
                }
            }

            return new IsfProfile(name, format, banner, Objects(userTypes), Objects(root, "base_types"), Objects(root, "enums"), symbols);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new LinuxIntrospectionException($"The profile '{name}' is malformed: {e.Message}", e);
        }
    }

    private static Dictionary<string, JsonElement> Objects(JsonElement root, string property) =>
        root.TryGetProperty(property, out JsonElement e) && e.ValueKind == JsonValueKind.Object ? Objects(e) : new(StringComparer.Ordinal);

    private static Dictionary<string, JsonElement> Objects(JsonElement obj)
    {
        var d = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (JsonProperty p in obj.EnumerateObject())
        {
            if (p.Value.ValueKind == JsonValueKind.Object)
            {
                d[p.Name] = p.Value;
            }
        }

        return d;
    }

    private static byte[] Gunzip(byte[] bytes, string name)
    {
        try
        {
            using var input = new GZipStream(new MemoryStream(bytes), CompressionMode.Decompress);
            using var output = new MemoryStream();
            byte[] buffer = new byte[1 << 16];
            int n;
            while ((n = input.Read(buffer)) > 0)
            {
                if (output.Length + n > MaxSize)
                {
                    throw new LinuxIntrospectionException($"The profile '{name}' decompresses to more than {MaxSize >> 20} MiB, more than a profile may be.");
                }

                output.Write(buffer, 0, n);
            }

            return output.ToArray();
        }
        catch (InvalidDataException e)
        {
            throw new LinuxIntrospectionException($"The profile '{name}' looks gzip-compressed but cannot be decompressed: {e.Message}", e);
        }
    }

    public bool TryGetField(string structName, string path, out KernelField field)
    {
        ArgumentNullException.ThrowIfNull(structName);
        ArgumentNullException.ThrowIfNull(path);
        field = default;
        try
        {
            if (!_userTypes.TryGetValue(structName, out JsonElement current))
            {
                return false;
            }

            ulong offset = 0;
            JsonElement type = default;
            string[] parts = path.Split('.');
            for (int i = 0; i < parts.Length; i++)
            {
                if (i > 0 && !TryStruct(type, out current))
                {
                    return false; // a path through something that is not a struct or union
                }

                int budget = MaxMemberVisits;
                if (!TryFindMember(current, parts[i], 0, ref budget, out type, out ulong memberOffset))
                {
                    return false;
                }

                offset += memberOffset;
            }

            field = new KernelField(structName + "." + path, offset, SizeOf(type, 0));
            return true;
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or KeyNotFoundException)
        {
            throw new LinuxIntrospectionException($"The profile '{Name}' is malformed where it describes {structName}.{path}: {e.Message}", e);
        }
    }

    public bool TryGetStructArray(string structName, string path, out KernelField field, out string elementStruct, out ulong elementSize, out uint count)
    {
        elementStruct = string.Empty;
        elementSize = 0;
        count = 0;
        if (!TryGetField(structName, path, out field) || !TryMemberType(structName, path, out JsonElement type))
        {
            return false;
        }

        try
        {
            if (Kind(type) != "array" || !type.TryGetProperty("subtype", out JsonElement sub) || Kind(sub) is not ("struct" or "union")
                || !type.TryGetProperty("count", out JsonElement c) || !c.TryGetUInt32(out count))
            {
                field = default;
                return false;
            }

            elementStruct = sub.GetProperty("name").GetString() ?? string.Empty;
            elementSize = SizeOf(sub, 0);
            return true;
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or KeyNotFoundException)
        {
            throw new LinuxIntrospectionException($"The profile '{Name}' is malformed where it describes {structName}.{path}: {e.Message}", e);
        }
    }

    /// <summary>The type descriptor of the member at <paramref name="path"/> (its last part).</summary>
    private bool TryMemberType(string structName, string path, out JsonElement type)
    {
        type = default;
        if (!_userTypes.TryGetValue(structName, out JsonElement current))
        {
            return false;
        }

        string[] parts = path.Split('.');
        for (int i = 0; i < parts.Length; i++)
        {
            int budget = MaxMemberVisits;
            if ((i > 0 && !TryStruct(type, out current)) || !TryFindMember(current, parts[i], 0, ref budget, out type, out _))
            {
                return false;
            }
        }

        return true;
    }

    private static string? Kind(JsonElement type) =>
        type.ValueKind == JsonValueKind.Object && type.TryGetProperty("kind", out JsonElement k) && k.ValueKind == JsonValueKind.String ? k.GetString() : null;

    /// <summary>The user type a struct or union descriptor names (a bitfield never is one).</summary>
    private bool TryStruct(JsonElement type, out JsonElement definition)
    {
        definition = default;
        return Kind(type) is "struct" or "union" or "class"
            && type.TryGetProperty("name", out JsonElement n) && n.ValueKind == JsonValueKind.String
            && _userTypes.TryGetValue(n.GetString()!, out definition);
    }

    private bool TryFindMember(JsonElement structDef, string name, int depth, ref int budget, out JsonElement type, out ulong offset)
    {
        type = default;
        offset = 0;
        if (depth > MaxDepth || budget <= 0 || !structDef.TryGetProperty("fields", out JsonElement fields) || fields.ValueKind != JsonValueKind.Object)
        {
            return false;
        }

        if (fields.TryGetProperty(name, out JsonElement f) && f.ValueKind == JsonValueKind.Object && !IsAnonymous(f))
        {
            type = f.GetProperty("type");
            offset = f.GetProperty("offset").GetUInt64();
            return true;
        }

        foreach (JsonProperty p in fields.EnumerateObject())
        {
            if (--budget <= 0)
            {
                return false; // anonymous members that contain each other: a crafted profile, not a kernel's
            }

            if (p.Value.ValueKind == JsonValueKind.Object && IsAnonymous(p.Value) && p.Value.TryGetProperty("type", out JsonElement anonType)
                && TryStruct(anonType, out JsonElement inner) && TryFindMember(inner, name, depth + 1, ref budget, out type, out ulong innerOffset))
            {
                offset = p.Value.GetProperty("offset").GetUInt64() + innerOffset;
                return true;
            }
        }

        return false;
    }

    private static bool IsAnonymous(JsonElement field) =>
        field.TryGetProperty("anonymous", out JsonElement a) && a.ValueKind == JsonValueKind.True;

    private ulong SizeOf(JsonElement type, int depth)
    {
        if (depth > MaxDepth)
        {
            return 0;
        }

        switch (Kind(type))
        {
            case "base":
                return Size(_baseTypes, type.GetProperty("name").GetString());
            case "pointer":
                return _baseTypes.TryGetValue("pointer", out JsonElement p) && p.TryGetProperty("size", out JsonElement ps) && ps.TryGetUInt64(out ulong size) ? size : 8;
            case "array":
                ulong count = type.GetProperty("count").GetUInt64();
                ulong element = SizeOf(type.GetProperty("subtype"), depth + 1);
                return element != 0 && count > ulong.MaxValue / element ? ulong.MaxValue : count * element;
            case "struct" or "union" or "class":
                return Size(_userTypes, type.GetProperty("name").GetString());
            case "enum":
                return Size(_enums, type.GetProperty("name").GetString());
            case "bitfield":
                return SizeOf(type.GetProperty("type"), depth + 1);
            default:
                return 0;
        }
    }

    private static ulong Size(Dictionary<string, JsonElement> table, string? name) =>
        name is not null && table.TryGetValue(name, out JsonElement t) && t.TryGetProperty("size", out JsonElement s) && s.TryGetUInt64(out ulong size) ? size : 0;

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"ISF profile '{Name}' ({Count} types, {_symbols.Count} symbols)");
}
