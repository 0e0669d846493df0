using System.Buffers.Binary;
using System.Text;

namespace Vmi.Os.Linux;

/// <summary>BTF type kinds (include/uapi/linux/btf.h).</summary>
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum BtfKind : byte
{
    Unknown = 0,
    Int = 1,
    Ptr = 2,
    Array = 3,
    Struct = 4,
    Union = 5,
    Enum = 6,
    Fwd = 7,
    Typedef = 8,
    Volatile = 9,
    Const = 10,
    Restrict = 11,
    Func = 12,
    FuncProto = 13,
    Var = 14,
    DataSec = 15,
    Float = 16,
    DeclTag = 17,
    TypeTag = 18,
    Enum64 = 19,
}

/// <summary>A member of a struct or union as BTF describes it: bit offset, bitfield width (0: not a bitfield) and type.</summary>
public readonly record struct BtfMember(string Name, int TypeId, uint BitOffset, byte BitfieldSize);

/// <summary>A resolved field: its byte offset from the start of the outer struct, its size in bytes, and its type.</summary>
public readonly record struct BtfField(string Path, ulong Offset, ulong Size, int TypeId, uint BitOffset, byte BitfieldSize);

/// <summary>
/// The kernel's BTF (the .BTF section between __start_BTF and __stop_BTF), parsed from bytes with every offset,
/// count and reference checked: a hostile or damaged blob ends in <see cref="LinuxIntrospectionException"/>, never
/// an unbounded loop or allocation.
/// </summary>
public sealed class BtfTypes : IKernelTypes
{
    public const ushort Magic = 0xEB9F;
    private const int HeaderSize = 24;
    private const int MaxDepth = 64;
    private const int MaxMemberVisits = 1 << 16;

    private readonly byte[] _strings;
    private readonly byte[] _types;
    private readonly int[] _offset; // per type of this blob (index 1 = FirstId): where its btf_type record starts in _types
    private readonly BtfTypes? _base;
    private readonly int _firstId;
    private readonly int _baseStrings; // split BTF: string offsets below this are the base's
    private Dictionary<string, int>? _structs;

    private BtfTypes(byte[] strings, byte[] types, int[] offset, BtfTypes? baseTypes)
    {
        _strings = strings;
        _types = types;
        _offset = offset;
        _base = baseTypes;
        _firstId = baseTypes is null ? 1 : baseTypes.LastId + 1;
        _baseStrings = baseTypes is null ? 0 : baseTypes.StringsLength;
    }

    /// <summary>The types this blob holds itself, <see cref="FirstId"/> upward (the base's are not counted).</summary>
    public int Count => _offset.Length - 1;

    /// <summary>The first type id of this blob: 1 for a kernel's BTF (0 is void); for split BTF, the base's last id plus one.</summary>
    public int FirstId => _firstId;

    /// <summary>The last type id of this blob (<see cref="FirstId"/> - 1 when it holds no types).</summary>
    public int LastId => _firstId + Count - 1;

    /// <summary>For split BTF (a module's), the BTF its ids and string offsets continue (the kernel's); else null.</summary>
    public BtfTypes? Base => _base;

    /// <summary>The length of the string space: for split BTF, the base's and this blob's together.</summary>
    public int StringsLength => _baseStrings + _strings.Length;

    /// <summary>Parses a BTF blob. Throws <see cref="LinuxIntrospectionException"/> naming the first thing wrong.</summary>
    public static BtfTypes Parse(ReadOnlySpan<byte> blob) => Parse(blob, null);

    /// <summary>
    /// Parses split BTF (a module's .BTF, what /sys/kernel/btf/&lt;module&gt; serves): its type ids continue after
    /// <paramref name="baseTypes"/>' last id, and its string offsets after the base's string section, so names and
    /// member types resolve through the base and this blob together.
    /// </summary>
    public static BtfTypes ParseSplit(ReadOnlySpan<byte> blob, BtfTypes baseTypes)
    {
        ArgumentNullException.ThrowIfNull(baseTypes);
        if (baseTypes.Base is not null)
        {
            throw new ArgumentException("The base of split BTF must itself be a base BTF (a kernel's).", nameof(baseTypes));
        }

        return Parse(blob, baseTypes);
    }

    private static BtfTypes Parse(ReadOnlySpan<byte> blob, BtfTypes? baseTypes)
    {
        if (blob.Length < HeaderSize)
        {
            throw Bad($"the blob is {blob.Length} bytes, shorter than its {HeaderSize}-byte header");
        }

        ushort magic = BinaryPrimitives.ReadUInt16LittleEndian(blob);
        if (magic != Magic)
        {
            throw Bad($"magic 0x{magic:x4} is not 0xeb9f");
        }

        if (blob[2] != 1)
        {
            throw Bad($"version {blob[2]} is not 1");
        }

        uint hdrLen = BinaryPrimitives.ReadUInt32LittleEndian(blob[4..]);
        uint typeOff = BinaryPrimitives.ReadUInt32LittleEndian(blob[8..]);
        uint typeLen = BinaryPrimitives.ReadUInt32LittleEndian(blob[12..]);
        uint strOff = BinaryPrimitives.ReadUInt32LittleEndian(blob[16..]);
        uint strLen = BinaryPrimitives.ReadUInt32LittleEndian(blob[20..]);
        if (hdrLen < HeaderSize || hdrLen > (uint)blob.Length)
        {
            throw Bad($"header length {hdrLen} is outside the blob");
        }

        ulong data = (ulong)blob.Length - hdrLen;
        if ((ulong)typeOff + typeLen > data || (ulong)strOff + strLen > data)
        {
            throw Bad($"the type section ({typeOff}+{typeLen}) or string section ({strOff}+{strLen}) runs past the blob's {data} data bytes");
        }

        byte[] types = blob.Slice((int)(hdrLen + typeOff), (int)typeLen).ToArray();
        byte[] strings = blob.Slice((int)(hdrLen + strOff), (int)strLen).ToArray();
        if (baseTypes is null && (strings.Length == 0 || strings[0] != 0))
        {
            throw Bad("the string section does not start with the empty string");
        }

        if (baseTypes is not null && (long)baseTypes.StringsLength + strings.Length > int.MaxValue)
        {
            throw Bad($"the string section ({strings.Length} bytes) and the base's together are too long");
        }

        var offsets = new List<int> { -1 };
        int firstId = baseTypes is null ? 1 : baseTypes.LastId + 1;
        int p = 0;
        while (p < types.Length)
        {
            if (p + 12 > types.Length)
            {
                throw Bad($"type {firstId + offsets.Count - 1} at byte {p} is cut short");
            }

            uint info = BinaryPrimitives.ReadUInt32LittleEndian(types.AsSpan(p + 4));
            int vlen = (int)(info & 0xFFFF);
            var kind = (BtfKind)((info >> 24) & 0x1F);
            int extra = kind switch
            {
                BtfKind.Int => 4,
                BtfKind.Ptr or BtfKind.Fwd or BtfKind.Typedef or BtfKind.Volatile or BtfKind.Const or BtfKind.Restrict
                    or BtfKind.Func or BtfKind.Float or BtfKind.TypeTag => 0,
                BtfKind.Array => 12,
                BtfKind.Struct or BtfKind.Union => 12 * vlen,
                BtfKind.Enum => 8 * vlen,
                BtfKind.FuncProto => 8 * vlen,
                BtfKind.Var => 4,
                BtfKind.DataSec => 12 * vlen,
                BtfKind.DeclTag => 4,
                BtfKind.Enum64 => 12 * vlen,
                _ => throw Bad($"type {firstId + offsets.Count - 1} has unknown kind {(int)kind}"),
            };
            if (p + 12 + extra > types.Length)
            {
                throw Bad($"type {firstId + offsets.Count - 1} ({kind}, {vlen} entries) runs past the type section");
            }

            offsets.Add(p);
            p += 12 + extra;
        }

        if ((long)firstId + offsets.Count > int.MaxValue)
        {
            throw Bad("its type ids run past the largest id");
        }

        return new BtfTypes(strings, types, offsets.ToArray(), baseTypes);
    }

    private static LinuxIntrospectionException Bad(string what) => new($"The BTF blob is not valid: {what}.");

    public BtfKind KindOf(int id) => Locate(id, out BtfTypes? owner, out int at) ? (BtfKind)((owner.U32(at + 4) >> 24) & 0x1F) : BtfKind.Unknown;

    public string NameOf(int id) => Locate(id, out BtfTypes? owner, out int at) ? owner.String(owner.U32(at)) : string.Empty;

    public int VlenOf(int id) => Locate(id, out BtfTypes? owner, out int at) ? (int)(owner.U32(at + 4) & 0xFFFF) : 0;

    /// <summary>Whether <paramref name="id"/> names a type here or, for split BTF, in the base (0, void, is no type).</summary>
    public bool Contains(int id) => Locate(id, out _, out _);

    /// <summary>Which blob holds type <paramref name="id"/> (this one or the base) and where its record starts in it.</summary>
    private bool Locate(int id, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out BtfTypes? owner, out int at)
    {
        if (id >= _firstId && id - _firstId + 1 < _offset.Length)
        {
            owner = this;
            at = _offset[id - _firstId + 1];
            return true;
        }

        if (_base is not null && id < _firstId)
        {
            return _base.Locate(id, out owner, out at);
        }

        owner = null;
        at = 0;
        return false;
    }

    private bool KindFlag(int id) => Locate(id, out BtfTypes? owner, out int at) && (owner.U32(at + 4) & 0x8000_0000) != 0;

    private uint SizeOrType(int id) => Locate(id, out BtfTypes? owner, out int at) ? owner.U32(at + 8) : 0;

    /// <summary>The <paramref name="index"/>th u32 after type <paramref name="id"/>'s 12-byte record (its kind's extra data).</summary>
    private uint Extra(int id, int index) => Locate(id, out BtfTypes? owner, out int at) ? owner.U32(at + 12 + (index * 4)) : 0;

    private uint U32(int at) => BinaryPrimitives.ReadUInt32LittleEndian(_types.AsSpan(at));

    private string String(uint off)
    {
        if (off < (uint)_baseStrings)
        {
            return _base!.String(off);
        }

        off -= (uint)_baseStrings;
        if (off >= _strings.Length)
        {
            return string.Empty;
        }

        ReadOnlySpan<byte> s = _strings.AsSpan((int)off);
        int end = s.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? s : s[..end]);
    }

    /// <summary>Whether <paramref name="off"/> lies inside the string space (for split BTF, the base's and this blob's).</summary>
    public bool IsStringOffset(uint off) => off < (uint)StringsLength;

    /// <summary>The id of the struct (or union) called <paramref name="name"/> with a body (not a forward declaration).</summary>
    public bool TryFindStruct(string name, out int id)
    {
        if (_structs is null)
        {
            var d = new Dictionary<string, int>(StringComparer.Ordinal);
            for (int i = 1; i < _offset.Length; i++)
            {
                var k = (BtfKind)((U32(_offset[i] + 4) >> 24) & 0x1F);
                if (k is BtfKind.Struct or BtfKind.Union)
                {
                    uint nameOff = U32(_offset[i]);
                    if (nameOff != 0)
                    {
                        d.TryAdd(String(nameOff), _firstId + i - 1);
                    }
                }
            }

            _structs = d;
        }

        // split BTF: a module's own types first, then the kernel's it builds on
        return _structs.TryGetValue(name, out id) || (_base is not null && _base.TryFindStruct(name, out id));
    }

    /// <summary>The members of a struct or union.</summary>
    public IEnumerable<BtfMember> Members(int id)
    {
        if (KindOf(id) is not (BtfKind.Struct or BtfKind.Union))
        {
            yield break;
        }

        bool bitfields = KindFlag(id);
        int n = VlenOf(id);
        Locate(id, out BtfTypes? owner, out int at);
        at += 12;
        for (int i = 0; i < n; i++, at += 12)
        {
            uint off = owner!.U32(at + 8);
            yield return bitfields
                ? new BtfMember(owner.String(owner.U32(at)), (int)owner.U32(at + 4), off & 0xFF_FFFF, (byte)(off >> 24))
                : new BtfMember(owner.String(owner.U32(at)), (int)owner.U32(at + 4), off, 0);
        }
    }

    /// <summary>Follows typedefs and qualifiers (const, volatile, restrict, type tags) to the type underneath.</summary>
    public int Resolve(int id)
    {
        for (int depth = 0; depth < MaxDepth && Contains(id); depth++)
        {
            if (KindOf(id) is not (BtfKind.Typedef or BtfKind.Volatile or BtfKind.Const or BtfKind.Restrict or BtfKind.TypeTag))
            {
                return id;
            }

            id = (int)SizeOrType(id);
        }

        return Contains(id) ? id : 0;
    }

    /// <summary>The size in bytes of a type (8 for pointers; arrays: count times element size).</summary>
    public ulong SizeOf(int id) => SizeOf(id, 0);

    private ulong SizeOf(int id, int depth)
    {
        if (depth > MaxDepth)
        {
            return 0;
        }

        id = Resolve(id);
        switch (KindOf(id))
        {
            case BtfKind.Int or BtfKind.Struct or BtfKind.Union or BtfKind.Enum or BtfKind.Enum64 or BtfKind.Float or BtfKind.DataSec:
                return SizeOrType(id);
            case BtfKind.Ptr:
                return 8;
            case BtfKind.Array:
                ulong n = Extra(id, 2);
                ulong element = SizeOf((int)Extra(id, 0), depth + 1);
                return element != 0 && n > ulong.MaxValue / element ? ulong.MaxValue : n * element;
            default:
                return 0;
        }
    }

    /// <summary>For an array type: the element type and count.</summary>
    public bool TryGetArray(int id, out int elementType, out uint count)
    {
        id = Resolve(id);
        if (KindOf(id) != BtfKind.Array)
        {
            elementType = 0;
            count = 0;
            return false;
        }

        elementType = (int)Extra(id, 0);
        count = Extra(id, 2);
        return true;
    }

    /// <summary>For a pointer type: the pointee.</summary>
    public int PointeeOf(int id)
    {
        id = Resolve(id);
        return KindOf(id) == BtfKind.Ptr ? (int)SizeOrType(id) : 0;
    }

    /// <summary>
    /// Resolves a dotted path of members ("tasks", "core_layout.base", "x86_capability") inside struct
    /// <paramref name="structName"/>, looking through anonymous structs and unions as C does.
    /// </summary>
    public bool TryGetField(string structName, string path, out BtfField field)
    {
        field = default;
        if (!TryFindStruct(structName, out int id))
        {
            return false;
        }

        ulong bits = 0;
        int type = id;
        BtfMember last = default;
        foreach (string part in path.Split('.'))
        {
            int budget = MaxMemberVisits;
            if (!TryFindMember(Resolve(type), part, 0, ref budget, out BtfMember m, out ulong memberBits))
            {
                return false;
            }

            bits += memberBits;
            type = m.TypeId;
            last = m;
        }

        field = new BtfField(structName + "." + path, bits / 8, SizeOf(type), type, (uint)(bits % 8), last.BitfieldSize);
        return true;
    }

    public BtfField GetField(string structName, string path) => TryGetField(structName, path, out BtfField f)
        ? f
        : throw new LinuxIntrospectionException($"{(_base is null ? "The kernel's BTF" : "The module's BTF (with the kernel's it builds on)")} has no field {structName}.{path}.");

    private bool TryFindMember(int structId, string name, int depth, ref int budget, out BtfMember member, out ulong bitOffset)
    {
        member = default;
        bitOffset = 0;
        if (depth > MaxDepth || budget <= 0)
        {
            return false;
        }

        foreach (BtfMember m in Members(structId))
        {
            if (--budget <= 0)
            {
                return false; // anonymous members that contain each other: a crafted blob, not a kernel's
            }

            if (m.Name == name)
            {
                member = m;
                bitOffset = m.BitOffset;
                return true;
            }
        }

        foreach (BtfMember m in Members(structId))
        {
            if (m.Name.Length == 0 && TryFindMember(Resolve(m.TypeId), name, depth + 1, ref budget, out member, out ulong inner))
            {
                bitOffset = m.BitOffset + inner;
                return true;
            }
        }

        return false;
    }

    string IKernelTypes.Description => "the kernel's BTF";

    bool IKernelTypes.TryGetField(string structName, string path, out KernelField field)
    {
        bool found = TryGetField(structName, path, out BtfField f);
        field = new KernelField(f.Path, f.Offset, f.Size);
        return found;
    }

    bool IKernelTypes.TryGetStructArray(string structName, string path, out KernelField field, out string elementStruct, out ulong elementSize, out uint count)
    {
        elementStruct = string.Empty;
        elementSize = 0;
        count = 0;
        if (!TryGetField(structName, path, out BtfField f) || !TryGetArray(f.TypeId, out int element, out count))
        {
            field = default;
            return false;
        }

        field = new KernelField(f.Path, f.Offset, f.Size);
        elementStruct = NameOf(Resolve(element));
        elementSize = SizeOf(element);
        return true;
    }

    /// <summary>Every type id of this blob (for split BTF, not the base's) with its kind and name (for tests and tools).</summary>
    public IEnumerable<(int Id, BtfKind Kind, string Name)> Types()
    {
        for (int id = _firstId; id <= LastId; id++)
        {
            yield return (id, KindOf(id), NameOf(id));
        }
    }

    /// <summary>
    /// The string offsets type <paramref name="id"/> uses: its name, and its members', enumerators' or parameters'
    /// names. Each should lie inside the string space (<see cref="IsStringOffset"/>).
    /// </summary>
    public IEnumerable<uint> NameOffsetsOf(int id)
    {
        if (!Locate(id, out BtfTypes? owner, out int at))
        {
            yield break;
        }

        yield return owner.U32(at);
        int n = VlenOf(id);
        int stride = KindOf(id) switch
        {
            BtfKind.Struct or BtfKind.Union or BtfKind.Enum64 => 3,
            BtfKind.Enum or BtfKind.FuncProto => 2,
            _ => 0,
        };
        for (int i = 0; i < n && stride != 0; i++)
        {
            yield return Extra(id, i * stride);
        }
    }

    /// <summary>
    /// The type ids that type <paramref name="id"/> refers to: a pointer's, typedef's or qualifier's target, an array's
    /// element and index types, members, a function's prototype, its parameters and return type, a variable's type and
    /// a data section's variables. 0 (void) may appear; every other id should resolve (<see cref="Contains"/>).
    /// </summary>
    public IEnumerable<int> ReferencesOf(int id)
    {
        switch (KindOf(id))
        {
            case BtfKind.Ptr or BtfKind.Typedef or BtfKind.Volatile or BtfKind.Const or BtfKind.Restrict or BtfKind.Func
                or BtfKind.TypeTag or BtfKind.Var or BtfKind.DeclTag or BtfKind.FuncProto:
                yield return (int)SizeOrType(id); // FuncProto: its return type
                break;
            case BtfKind.Array:
                yield return (int)Extra(id, 0);
                yield return (int)Extra(id, 1);
                break;
        }

        int n = VlenOf(id);
        switch (KindOf(id))
        {
            case BtfKind.Struct or BtfKind.Union:
                for (int i = 0; i < n; i++)
                {
                    yield return (int)Extra(id, (i * 3) + 1);
                }

                break;
            case BtfKind.FuncProto:
                for (int i = 0; i < n; i++)
                {
                    yield return (int)Extra(id, (i * 2) + 1);
                }

                break;
            case BtfKind.DataSec:
                for (int i = 0; i < n; i++)
                {
                    yield return (int)Extra(id, i * 3);
                }

                break;
        }
    }
}
