using System.Text;

namespace Vmi.Mock.Linux;

/// <summary>
/// Builds a BTF blob (include/uapi/linux/btf.h, version 1) type by type, as the kernel's .BTF section holds it:
/// header, type section, string section. Ids start at 1 (0 is void). A writer made with a base's size writes split
/// BTF, as a module's .BTF is: ids after the base's last, string offsets after the base's string section (which holds
/// the empty name at offset 0), and no empty string of its own.
/// </summary>
public sealed class BtfWriter
{
    private readonly List<byte> _types = [];
    private readonly List<byte> _strings;
    private readonly Dictionary<string, uint> _stringOffsets = new(StringComparer.Ordinal) { [string.Empty] = 0 };
    private readonly uint _stringBase;
    private int _next;

    /// <summary>A base BTF (a kernel's).</summary>
    public BtfWriter()
    {
        _strings = [0];
        _next = 1;
    }

    /// <summary>Split BTF on top of a base whose last type id is <paramref name="baseLastId"/> and whose string section is <paramref name="baseStringLength"/> bytes.</summary>
    public BtfWriter(int baseLastId, uint baseStringLength)
    {
        _strings = [];
        _next = baseLastId + 1;
        _stringBase = baseStringLength;
    }

    /// <summary>A member of a struct: name (empty: anonymous), type, bit offset and bitfield width (0: none).</summary>
    public readonly record struct Member(string Name, int Type, uint BitOffset, byte BitfieldSize = 0);

    public int Int(string name, uint bytes, bool signed = false) =>
        Add(name, 1, 0, false, bytes, BitConverter.GetBytes((signed ? 1u << 24 : 0) | (bytes * 8)));

    public int Pointer(int to) => Add(string.Empty, 2, 0, false, (uint)to);

    public int Array(int element, int indexType, uint count)
    {
        byte[] extra = [.. BitConverter.GetBytes(element), .. BitConverter.GetBytes(indexType), .. BitConverter.GetBytes(count)];
        return Add(string.Empty, 3, 0, false, 0, extra);
    }

    public int Struct(string name, uint size, params Member[] members) => Composite(4, name, size, members);

    public int Union(string name, uint size, params Member[] members) => Composite(5, name, size, members);

    public int Enum(string name, params (string Name, int Value)[] values)
    {
        var extra = new List<byte>();
        foreach ((string n, int v) in values)
        {
            extra.AddRange(BitConverter.GetBytes(String(n)));
            extra.AddRange(BitConverter.GetBytes(v));
        }

        return Add(name, 6, values.Length, false, 4, [.. extra]);
    }

    public int Typedef(string name, int type) => Add(name, 8, 0, false, (uint)type);

    public int Const(int type) => Add(string.Empty, 10, 0, false, (uint)type);

    public int Volatile(int type) => Add(string.Empty, 9, 0, false, (uint)type);

    public int Forward(string name) => Add(name, 7, 0, false, 0);

    /// <summary>The last id written so far (a split BTF on top of this one starts after it).</summary>
    public int LastId => _next - 1;

    /// <summary>The length of the string section so far (a split BTF's string offsets start after it).</summary>
    public uint StringsLength => (uint)_strings.Count;

    /// <summary>Reserves the next id for a struct whose members refer to itself; fill it with <see cref="Struct"/> right away.</summary>
    public int NextId => _next;

    private int Composite(int kind, string name, uint size, Member[] members)
    {
        bool bitfields = members.Any(m => m.BitfieldSize != 0);
        var extra = new List<byte>();
        foreach (Member m in members)
        {
            extra.AddRange(BitConverter.GetBytes(String(m.Name)));
            extra.AddRange(BitConverter.GetBytes(m.Type));
            extra.AddRange(BitConverter.GetBytes(bitfields ? ((uint)m.BitfieldSize << 24) | m.BitOffset : m.BitOffset));
        }

        return Add(name, kind, members.Length, bitfields, size, [.. extra]);
    }

    private int Add(string name, int kind, int vlen, bool kindFlag, uint sizeOrType, byte[]? extra = null)
    {
        _types.AddRange(BitConverter.GetBytes(String(name)));
        _types.AddRange(BitConverter.GetBytes((uint)vlen | ((uint)kind << 24) | (kindFlag ? 0x8000_0000u : 0)));
        _types.AddRange(BitConverter.GetBytes(sizeOrType));
        if (extra is not null)
        {
            _types.AddRange(extra);
        }

        return _next++;
    }

    private uint String(string s)
    {
        if (!_stringOffsets.TryGetValue(s, out uint off))
        {
            off = _stringBase + (uint)_strings.Count;
            _strings.AddRange(Encoding.UTF8.GetBytes(s));
            _strings.Add(0);
            _stringOffsets[s] = off;
        }

        return off;
    }

    /// <summary>The blob: a 24-byte header, the types, the strings.</summary>
    public byte[] ToArray()
    {
        var o = new List<byte>();
        o.AddRange(BitConverter.GetBytes((ushort)0xEB9F));
        o.Add(1); // version
        o.Add(0); // flags
        o.AddRange(BitConverter.GetBytes(24u));
        o.AddRange(BitConverter.GetBytes(0u));
        o.AddRange(BitConverter.GetBytes((uint)_types.Count));
        o.AddRange(BitConverter.GetBytes((uint)_types.Count));
        o.AddRange(BitConverter.GetBytes((uint)_strings.Count));
        o.AddRange(_types);
        o.AddRange(_strings);
        return o.ToArray();
    }
}
