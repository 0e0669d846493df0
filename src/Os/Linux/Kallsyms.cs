using System.Buffers.Binary;
using System.Text;

namespace Vmi.Os.Linux;

/// <summary>One kernel symbol: its name, runtime address and the type letter /proc/kallsyms shows (T, t, D, r, A, ...).</summary>
public readonly record struct KernelSymbol(string Name, ulong Address, char Type);

/// <summary>Where the kallsyms tables lie in guest memory (virtual addresses).</summary>
public sealed record KallsymsLayout(
    ulong Offsets,
    ulong RelativeBase,
    ulong NumSyms,
    ulong Names,
    ulong Markers,
    ulong TokenTable,
    ulong TokenIndex,
    int Count,
    bool AbsolutePercpu);

/// <summary>
/// The kernel's own symbol table, decoded from the compressed kallsyms tables in guest memory
/// (CONFIG_KALLSYMS with base-relative offsets, the x86-64 default since Linux 4.6).
/// </summary>
public sealed class KallsymsTable
{
    private readonly KernelSymbol[] _symbols;
    private readonly ulong[] _sortedAddresses;
    private readonly int[] _sortedIndex;
    private Dictionary<string, int>? _byName;

    internal KallsymsTable(KernelSymbol[] symbols, KallsymsLayout layout)
    {
        _symbols = symbols;
        Layout = layout;
        _sortedIndex = new int[symbols.Length];
        _sortedAddresses = new ulong[symbols.Length];
        for (int i = 0; i < symbols.Length; i++)
        {
            _sortedIndex[i] = i;
            _sortedAddresses[i] = symbols[i].Address;
        }

        Array.Sort(_sortedAddresses, _sortedIndex);
    }

    public KallsymsLayout Layout { get; }

    /// <summary>Every symbol in the kernel's table order (by address, as /proc/kallsyms lists them).</summary>
    public IReadOnlyList<KernelSymbol> Symbols => _symbols;

    public int Count => _symbols.Length;

    /// <summary>The address of the first symbol called <paramref name="name"/>.</summary>
    public bool TryGetAddress(string name, out ulong address)
    {
        _byName ??= BuildNameIndex();
        if (_byName.TryGetValue(name, out int i))
        {
            address = _symbols[i].Address;
            return true;
        }

        address = 0;
        return false;
    }

    /// <summary>The first symbol called <paramref name="name"/>.</summary>
    public bool TryGetSymbol(string name, out KernelSymbol symbol)
    {
        _byName ??= BuildNameIndex();
        bool found = _byName.TryGetValue(name, out int i);
        symbol = found ? _symbols[i] : default;
        return found;
    }

    public ulong GetAddress(string name) => TryGetAddress(name, out ulong a)
        ? a
        : throw new LinuxIntrospectionException($"The kernel's symbol table has no symbol '{name}'.");

    /// <summary>The symbol at or below <paramref name="address"/> (the nearest one), or false when the address lies below every symbol.</summary>
    public bool TryFindNearest(ulong address, out KernelSymbol symbol)
    {
        int i = Array.BinarySearch(_sortedAddresses, address);
        if (i < 0)
        {
            i = ~i - 1;
        }
        else
        {
            // several symbols can share an address: take the first in table order
            while (i > 0 && _sortedAddresses[i - 1] == address)
            {
                i--;
            }
        }

        if (i < 0)
        {
            symbol = default;
            return false;
        }

        symbol = _symbols[_sortedIndex[i]];
        return true;
    }

    private Dictionary<string, int> BuildNameIndex()
    {
        var d = new Dictionary<string, int>(_symbols.Length, StringComparer.Ordinal);
        for (int i = 0; i < _symbols.Length; i++)
        {
            d.TryAdd(_symbols[i].Name, i);
        }

        return d;
    }
}

/// <summary>Finds and decodes the compressed kallsyms tables. Every length and count read from the guest is bounded.</summary>
internal static class KallsymsDecoder
{
    /// <summary>The most symbols we accept (a distribution kernel has ~200 000).</summary>
    public const int MaxSymbols = 4_000_000;

    /// <summary>How far before the token table we look for the rest of the tables.</summary>
    public const int MaxTablesSpan = 64 << 20;

    private const int Align = 8;

    /// <summary>Tokens 48..57 of every real token table: the digits, which no merge ever displaces.</summary>
    internal static ReadOnlySpan<byte> DigitTokens => "0\u00001\u00002\u00003\u00004\u00005\u00006\u00007\u00008\u00009\u0000"u8;

    /// <summary>
    /// Given the digits signature at <paramref name="hit"/> in <paramref name="data"/> (which starts at virtual
    /// address <paramref name="baseVa"/>), finds the token table and checks it against its token index.
    /// </summary>
    internal static bool TryTokenTableAt(ReadOnlySpan<byte> data, ulong baseVa, int hit, out ulong tokenTable, out ulong tokenIndex, out string[] tokens)
    {
        tokenTable = tokenIndex = 0;
        tokens = [];

        // forward: tokens 48..255, then the (8-aligned) index
        int p = hit;
        for (int t = 48; t < 256; t++)
        {
            int nul = p < data.Length ? data[p..].IndexOf((byte)0) : -1;
            if (nul < 0 || nul > 256)
            {
                return false;
            }

            p += nul + 1;
        }

        ulong endVa = baseVa + (ulong)p;
        ulong indexVa = (endVa + Align - 1) & ~(ulong)(Align - 1);
        int index = (int)(indexVa - baseVa);
        if (index + 512 > data.Length)
        {
            return false;
        }

        ushort[] idx = new ushort[256];
        for (int i = 0; i < 256; i++)
        {
            idx[i] = BinaryPrimitives.ReadUInt16LittleEndian(data[(index + 2 * i)..]);
        }

        if (idx[0] != 0 || idx[48] > hit)
        {
            return false;
        }

        int start = hit - idx[48];
        var list = new string[256];
        int q = start;
        for (int i = 0; i < 256; i++)
        {
            if (q - start != idx[i])
            {
                return false;
            }

            int nul = data[q..].IndexOf((byte)0);
            if (nul < 0 || nul > 256)
            {
                return false;
            }

            list[i] = Encoding.Latin1.GetString(data.Slice(q, nul));
            q += nul + 1;
        }

        if (q != p)
        {
            return false;
        }

        tokenTable = baseVa + (ulong)start;
        tokenIndex = indexVa;
        tokens = list;
        return true;
    }

    /// <summary>
    /// Finds num_syms, names, markers, offsets and relative_base before a known token table and decodes every symbol.
    /// <paramref name="region"/> holds memory from <paramref name="regionVa"/> up to the token table.
    /// </summary>
    internal static KallsymsTable? TryDecode(ReadOnlySpan<byte> region, ulong regionVa, ulong tokenTable, ulong tokenIndex, string[] tokens)
    {
        int tokenAt = (int)(tokenTable - regionVa);
        // kallsyms_relative_base (a kernel address) then kallsyms_num_syms (.long, then padding): walk back 8 bytes at a time.
        for (int a = (tokenAt - 16) & ~(Align - 1); a >= 0; a -= Align)
        {
            ulong relBase = BinaryPrimitives.ReadUInt64LittleEndian(region[a..]);
            if (relBase < 0xffff_8000_0000_0000UL)
            {
                continue;
            }

            ulong numField = BinaryPrimitives.ReadUInt64LittleEndian(region[(a + 8)..]);
            if (numField == 0 || numField > MaxSymbols)
            {
                continue;
            }

            int n = (int)numField;
            int names = a + 16;
            if ((long)n * 2 > tokenAt - names)
            {
                continue; // every name takes at least two bytes: this count cannot fit before the token table
            }

            if (TryWalkNames(region, names, tokenAt, n, out int namesEnd, out int[] starts) &&
                TryCheckMarkers(region, regionVa, namesEnd, tokenAt, n, starts, out int markers))
            {
                int offsetsSize = (n * 4 + Align - 1) & ~(Align - 1);
                int offsets = a - offsetsSize;
                if (offsets < 0)
                {
                    return null;
                }

                return Build(region, regionVa, offsets, a, names, markers, tokenTable, tokenIndex, n, relBase, starts, tokens);
            }
        }

        return null;
    }

    private static bool TryWalkNames(ReadOnlySpan<byte> region, int names, int limit, int n, out int end, out int[] starts)
    {
        starts = new int[n];
        int p = names;
        end = 0;
        for (int i = 0; i < n; i++)
        {
            if (p >= limit)
            {
                return false;
            }

            starts[i] = p;
            int len = region[p];
            p++;
            if ((len & 0x80) != 0)
            {
                if (p >= limit)
                {
                    return false;
                }

                len = (len & 0x7F) | (region[p] << 7);
                p++;
            }

            if (len == 0)
            {
                return false;
            }

            p += len;
        }

        if (p > limit)
        {
            return false;
        }

        end = p;
        return true;
    }

    private static bool TryCheckMarkers(ReadOnlySpan<byte> region, ulong regionVa, int namesEnd, int tokenAt, int n, int[] starts, out int markers)
    {
        ulong va = regionVa + (ulong)namesEnd;
        markers = (int)(((va + Align - 1) & ~(ulong)(Align - 1)) - regionVa);
        int count = (n + 255) / 256;
        if (markers + count * 4 > tokenAt)
        {
            return false;
        }

        for (int k = 0; k < count; k++)
        {
            uint m = BinaryPrimitives.ReadUInt32LittleEndian(region[(markers + 4 * k)..]);
            if (m != (uint)(starts[k * 256] - starts[0]))
            {
                return false;
            }
        }

        return true;
    }

    private static KallsymsTable Build(ReadOnlySpan<byte> region, ulong regionVa, int offsets, int relBaseAt, int names, int markers,
        ulong tokenTable, ulong tokenIndex, int n, ulong relBase, int[] starts, string[] tokens)
    {
        // CONFIG_KALLSYMS_ABSOLUTE_PERCPU (x86-64 SMP): non-negative offsets are absolute values, negative ones count down from the base.
        bool absolutePercpu = false;
        for (int i = 0; i < n; i++)
        {
            if (BinaryPrimitives.ReadInt32LittleEndian(region[(offsets + 4 * i)..]) < 0)
            {
                absolutePercpu = true;
                break;
            }
        }

        var symbols = new KernelSymbol[n];
        var sb = new StringBuilder(64);
        for (int i = 0; i < n; i++)
        {
            int p = starts[i];
            int len = region[p++];
            if ((len & 0x80) != 0)
            {
                len = (len & 0x7F) | (region[p++] << 7);
            }

            sb.Clear();
            for (int k = 0; k < len; k++)
            {
                sb.Append(tokens[region[p + k]]);
            }

            int raw = BinaryPrimitives.ReadInt32LittleEndian(region[(offsets + 4 * i)..]);
            ulong address = !absolutePercpu ? relBase + (uint)raw
                : raw >= 0 ? (ulong)raw
                : relBase - 1 - (ulong)(long)raw;
            char type = sb.Length > 0 ? sb[0] : '?';
            string name = sb.Length > 1 ? sb.ToString(1, sb.Length - 1) : string.Empty;
            symbols[i] = new KernelSymbol(name, address, type);
        }

        var layout = new KallsymsLayout(
            regionVa + (ulong)offsets, regionVa + (ulong)relBaseAt, regionVa + (ulong)relBaseAt + 8, regionVa + (ulong)names,
            regionVa + (ulong)markers, tokenTable, tokenIndex, n, absolutePercpu);
        return new KallsymsTable(symbols, layout);
    }
}
