using System.Buffers.Binary;
using System.Text;

namespace Vmi.Mock.Linux;

/// <summary>
/// Writes a kernel symbol table in the compressed kallsyms format of Linux 6.1 (scripts/kallsyms.c with
/// --base-relative --absolute-percpu, as x86-64 builds it): kallsyms_offsets, kallsyms_relative_base,
/// kallsyms_num_syms, kallsyms_names, kallsyms_markers, kallsyms_token_table, kallsyms_token_index, each
/// 8-byte aligned. Names are compressed with a token table: printable characters stand for themselves and
/// the other 161 byte values for the most frequent character pairs.
/// </summary>
public static class KallsymsWriter
{
    /// <summary>Where each table landed, as offsets into the returned bytes.</summary>
    public sealed record Layout(int Offsets, int RelativeBase, int NumSyms, int Names, int Markers, int TokenTable, int TokenIndex, int End);

    /// <summary>
    /// Encodes <paramref name="symbols"/> (type letter, name, address; absolute symbols are those with type 'A' and an
    /// address below 2 GiB), for tables placed at an 8-byte aligned address.
    /// </summary>
    public static byte[] Write(IReadOnlyList<(char Type, string Name, ulong Address)> symbols, out Layout layout)
    {
        ArgumentNullException.ThrowIfNull(symbols);
        var sorted = symbols.Select((s, i) => (s, i)).OrderBy(x => x.s.Address).ThenBy(x => x.i).Select(x => x.s).ToList();
        ulong relativeBase = sorted.Where(s => !IsAbsolute(s)).Select(s => s.Address).DefaultIfEmpty(0UL).Min();
        string[] tokens = BuildTokens(sorted.Select(s => s.Type + s.Name));
        var pairIndex = new Dictionary<string, byte>(StringComparer.Ordinal);
        for (int i = 0; i < 256; i++)
        {
            if (tokens[i].Length == 2)
            {
                pairIndex[tokens[i]] = (byte)i;
            }
        }

        var o = new List<byte>();
        void Align()
        {
            while (o.Count % 8 != 0)
            {
                o.Add(0);
            }
        }

        void U32(uint v) => o.AddRange(BitConverter.GetBytes(v));
        int offsets = o.Count;
        foreach (var s in sorted)
        {
            long value = IsAbsolute(s) ? (long)s.Address : unchecked((long)(relativeBase - s.Address - 1));
            if (value is < int.MinValue or > int.MaxValue || (!IsAbsolute(s) && value >= 0))
            {
                throw new ArgumentException($"Symbol {s.Name} at 0x{s.Address:x} is too far from the relative base 0x{relativeBase:x}.", nameof(symbols));
            }

            int raw = (int)value;
            U32((uint)raw);
        }

        Align();
        int relBase = o.Count;
        o.AddRange(BitConverter.GetBytes(relativeBase));
        Align();
        int numSyms = o.Count;
        U32((uint)sorted.Count);
        Align();
        int names = o.Count;
        var markers = new List<uint>();
        for (int i = 0; i < sorted.Count; i++)
        {
            if (i % 256 == 0)
            {
                markers.Add((uint)(o.Count - names));
            }

            byte[] text = Encoding.ASCII.GetBytes(sorted[i].Type + sorted[i].Name);
            var compressed = new List<byte>();
            for (int p = 0; p < text.Length;)
            {
                if (p + 1 < text.Length && pairIndex.TryGetValue(Encoding.ASCII.GetString(text, p, 2), out byte t))
                {
                    compressed.Add(t);
                    p += 2;
                }
                else
                {
                    compressed.Add(text[p]);
                    p++;
                }
            }

            if (compressed.Count <= 0x7F)
            {
                o.Add((byte)compressed.Count);
            }
            else
            {
                o.Add((byte)((compressed.Count & 0x7F) | 0x80));
                o.Add((byte)(compressed.Count >> 7));
            }

            o.AddRange(compressed);
        }

        Align();
        int markersAt = o.Count;
        foreach (uint m in markers)
        {
            U32(m);
        }

        Align();
        int tokenTable = o.Count;
        var index = new ushort[256];
        for (int i = 0; i < 256; i++)
        {
            index[i] = (ushort)(o.Count - tokenTable);
            o.AddRange(Encoding.ASCII.GetBytes(tokens[i]));
            o.Add(0);
        }

        Align();
        int tokenIndex = o.Count;
        foreach (ushort v in index)
        {
            o.AddRange(BitConverter.GetBytes(v));
        }

        Align();
        layout = new Layout(offsets, relBase, numSyms, names, markersAt, tokenTable, tokenIndex, o.Count);
        return o.ToArray();
    }

    private static bool IsAbsolute((char Type, string Name, ulong Address) s) => s.Type == 'A' && s.Address < 0x8000_0000;

    /// <summary>Printable ASCII stands for itself; every other byte value is the next most frequent pair.</summary>
    private static string[] BuildTokens(IEnumerable<string> names)
    {
        var pairs = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (string n in names)
        {
            for (int i = 0; i + 1 < n.Length; i++)
            {
                string pair = n.Substring(i, 2);
                pairs[pair] = pairs.GetValueOrDefault(pair) + 1;
            }
        }

        var queue = new Queue<string>(pairs.OrderByDescending(p => p.Value).ThenBy(p => p.Key, StringComparer.Ordinal).Select(p => p.Key));
        var tokens = new string[256];
        for (int i = 0; i < 256; i++)
        {
            tokens[i] = i is >= 0x20 and < 0x7F ? ((char)i).ToString() : queue.Count > 0 ? queue.Dequeue() : string.Empty;
        }

        return tokens;
    }
}
