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
    private readonly int[] _offset; // per type id: where its btf_type record starts in _types
    private Dictionary<string, int>? _structs;

    private BtfTypes(byte[] strings, byte[] types, int[] offset)
    {
        _strings = strings;
        _types = types;
        _offset = offset;
    }

    /// <summary>Types, id 1 upward (id 0 is void).</summary>
    public int Count => _offset.Length - 1;

    /// <summary>Parses a BTF blob. Throws <see cref="LinuxIntrospectionException"/> naming the first thing wrong.</summary>
    public static BtfTypes Parse(ReadOnlySpan<byte> blob)
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
        if (strings.Length == 0 || strings[0] != 0)
        {
            throw Bad("the string section does not start with the empty string");
        }

        var offsets = new List<int> { -1 };
        int p = 0;
        while (p < types.Length)
        {
            if (p + 12 > types.Length)
            {
                throw Bad($"type {offsets.Count} at byte {p} is cut short");
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
                _ => throw Bad($"type {offsets.Count} has unknown kind {(int)kind}"),
            };
            if (p + 12 + extra > types.Length)
            {
                throw Bad($"type {offsets.Count} ({kind}, {vlen} entries) runs past the type section");
            }

            offsets.Add(p);
            p += 12 + extra;
        }

        return new BtfTypes(strings, types, offsets.ToArray());
    }

    private static LinuxIntrospectionException Bad(string what) => new($"The BTF blob is not valid: {what}.");

    public BtfKind KindOf(int id) => Valid(id) ? (BtfKind)((Info(id) >> 24) & 0x1F) : BtfKind.Unknown;

    public string NameOf(int id) => Valid(id) ? String(U32(_offset[id])) : string.Empty;

    public int VlenOf(int id) => Valid(id) ? (int)(Info(id) & 0xFFFF) : 0;

    private bool KindFlag(int id) => (Info(id) & 0x8000_0000) != 0;

    private bool Valid(int id) => id > 0 && id < _offset.Length;

    private uint Info(int id) => U32(_offset[id] + 4);

    private uint SizeOrType(int id) => U32(_offset[id] + 8);

    private uint U32(int at) => BinaryPrimitives.ReadUInt32LittleEndian(_types.AsSpan(at));

    private string String(uint off)
    {
        if (off >= _strings.Length)
        {
            return string.Empty;
        }

        ReadOnlySpan<byte> s = _strings.AsSpan((int)off);
        int end = s.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? s : s[..end]);
    }

    /// <summary>The id of the struct (or union) called <paramref name="name"/> with a body (not a forward declaration).</summary>
    public bool TryFindStruct(string name, out int id)
    {
        if (_structs is null)
        {
            var d = new Dictionary<string, int>(StringComparer.Ordinal);
            for (int i = 1; i < _offset.Length; i++)
            {
                BtfKind k = KindOf(i);
                if (k is BtfKind.Struct or BtfKind.Union)
                {
                    uint nameOff = U32(_offset[i]);
                    if (nameOff != 0)
                    {
                        d.TryAdd(String(nameOff), i);
                    }
                }
            }

            _structs = d;
        }

        return _structs.TryGetValue(name, out id);
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
        int at = _offset[id] + 12;
        for (int i = 0; i < n; i++, at += 12)
        {
            uint off = U32(at + 8);
            yield return bitfields
                ? new BtfMember(String(U32(at)), (int)U32(at + 4), off & 0xFF_FFFF, (byte)(off >> 24))
                : new BtfMember(String(U32(at)), (int)U32(at + 4), off, 0);
        }
    }

    /// <summary>Follows typedefs and qualifiers (const, volatile, restrict, type tags) to the type underneath.</summary>
    public int Resolve(int id)
    {
        for (int depth = 0; depth < MaxDepth && Valid(id); depth++)
        {
            if (KindOf(id) is not (BtfKind.Typedef or BtfKind.Volatile or BtfKind.Const or BtfKind.Restrict or BtfKind.TypeTag))
            {
                return id;
            }

            id = (int)SizeOrType(id);
        }

        return Valid(id) ? id : 0;
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
                int at = _offset[id] + 12;
                ulong n = U32(at + 8);
                ulong element = SizeOf((int)U32(at), depth + 1);
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

        int at = _offset[id] + 12;
        elementType = (int)U32(at);
        count = U32(at + 8);
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
        : throw new LinuxIntrospectionException($"The kernel's BTF has no field {structName}.{path}.");

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

    /// <summary>Every type id with its kind and name (for tests and tools).</summary>
    public IEnumerable<(int Id, BtfKind Kind, string Name)> Types()
    {
        for (int i = 1; i < _offset.Length; i++)
        {
            yield return (i, KindOf(i), NameOf(i));
        }
    }
}
