using System.Globalization;
using System.Text.RegularExpressions;
using Vmi.Core;

namespace Vmi.Qemu;

/// <summary>A guest-physical range backed by a RAM backend: [Start, End] maps to the backend's bytes from <see cref="Offset"/>.</summary>
public readonly record struct RamRange(ulong Start, ulong End, string Backend, ulong Offset)
{
    public ulong Size => End - Start + 1;

    public override string ToString() => $"0x{Start:x}-0x{End:x} {Backend} @0x{Offset:x}";
}

/// <summary>
/// The guest-physical layout of RAM, from QEMU's own flattened memory tree ("info mtree -f"): the ranges of the
/// system address space backed by the given RAM backends, with their offsets into the backend (RAM below 4 GiB,
/// RAM above 4 GiB, the holes between them and the ROM shadows).
/// </summary>
public static partial class QemuMemoryLayout
{
    [GeneratedRegex(@"^\s*([0-9a-f]+)-([0-9a-f]+) \(prio -?\d+, ([a-z/]+)\): (.+?)(?: @([0-9a-f]+))?(?: \[.*\])?\s*$", RegexOptions.CultureInvariant)]
    private static partial Regex RangeLine();

    /// <summary>Parses the flat view of the "memory" address space; keeps ram/rom/romd ranges whose region is one of <paramref name="backends"/>.</summary>
    public static IReadOnlyList<RamRange> Parse(string mtree, IReadOnlySet<string> backends)
    {
        ArgumentNullException.ThrowIfNull(mtree);
        var result = new List<RamRange>();
        bool inSystem = false;
        bool seenView = false;
        foreach (string raw in mtree.Split('\n'))
        {
            string line = raw.TrimEnd();
            if (line.StartsWith("FlatView", StringComparison.Ordinal))
            {
                if (inSystem && result.Count > 0)
                {
                    break; // the system view is done
                }

                inSystem = false;
                seenView = true;
                continue;
            }

            if (line.TrimStart().StartsWith("AS \"memory\"", StringComparison.Ordinal))
            {
                inSystem = true;
                continue;
            }

            if (!inSystem)
            {
                continue;
            }

            Match m = RangeLine().Match(line);
            if (!m.Success)
            {
                continue;
            }

            string type = m.Groups[3].Value;
            string name = m.Groups[4].Value;
            if (type is not ("ram" or "rom" or "romd") || !backends.Contains(name))
            {
                continue;
            }

            ulong start = ulong.Parse(m.Groups[1].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            ulong end = ulong.Parse(m.Groups[2].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            ulong offset = m.Groups[5].Success ? ulong.Parse(m.Groups[5].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture) : 0;
            result.Add(new RamRange(start, end, name, offset));
        }

        if (!seenView)
        {
            throw new VmiFormatException("'info mtree -f' printed no flat view", "QEMU");
        }

        result.Sort((a, b) => a.Start.CompareTo(b.Start));
        return result;
    }
}

/// <summary>Parses the human monitor's "info registers" for the state the gdbstub does not describe (segments, tables, debug registers).</summary>
public static partial class HmpRegisters
{
    [GeneratedRegex(@"^(ES|CS|SS|DS|FS|GS|LDT|TR)\s*=([0-9a-f]{4}) ([0-9a-f]{8,16}) ([0-9a-f]{8}) ([0-9a-f]{8})", RegexOptions.CultureInvariant | RegexOptions.Multiline)]
    private static partial Regex SegmentLine();

    [GeneratedRegex(@"^(GDT|IDT)=\s*([0-9a-f]{8,16}) ([0-9a-f]{8})", RegexOptions.CultureInvariant | RegexOptions.Multiline)]
    private static partial Regex TableLine();

    [GeneratedRegex(@"\b([A-Z][A-Z0-9]*)\s*=\s*([0-9a-f]+)\b", RegexOptions.CultureInvariant)]
    private static partial Regex Pair();

    /// <summary>Every NAME=hex pair of the output (RAX, RIP, RFL, CR0, DR7, EFER, ...), upper-case names.</summary>
    public static Dictionary<string, ulong> Values(string infoRegisters)
    {
        var d = new Dictionary<string, ulong>(StringComparer.Ordinal);
        foreach (string line in infoRegisters.Split('\n'))
        {
            if (SegmentLine().IsMatch(line) || TableLine().IsMatch(line) || line.StartsWith("FPR", StringComparison.Ordinal) || line.StartsWith("XMM", StringComparison.Ordinal) || line.StartsWith("YMM", StringComparison.Ordinal))
            {
                continue;
            }

            foreach (Match m in Pair().Matches(line))
            {
                d.TryAdd(m.Groups[1].Value, ulong.Parse(m.Groups[2].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture));
            }
        }

        return d;
    }

    /// <summary>Segment registers by name (ES, CS, ..., LDT, TR), attributes converted to the packed SVM form.</summary>
    public static Dictionary<string, Vmi.Core.Arch.Amd64.SegmentRegister> Segments(string infoRegisters)
    {
        var d = new Dictionary<string, Vmi.Core.Arch.Amd64.SegmentRegister>(StringComparer.Ordinal);
        foreach (Match m in SegmentLine().Matches(infoRegisters))
        {
            ushort selector = ushort.Parse(m.Groups[2].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            ulong b = ulong.Parse(m.Groups[3].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            uint limit = uint.Parse(m.Groups[4].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            uint flags = uint.Parse(m.Groups[5].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);

            // QEMU keeps the descriptor's high dword flags (type/S/DPL/P in bits 8-15, AVL/L/DB/G in bits 20-23).
            ushort attributes = (ushort)(((flags >> 8) & 0xff) | (((flags >> 20) & 0xf) << 8));
            d[m.Groups[1].Value] = new Vmi.Core.Arch.Amd64.SegmentRegister(selector, b, limit, attributes);
        }

        return d;
    }

    public static Dictionary<string, Vmi.Core.Arch.Amd64.DescriptorTable> Tables(string infoRegisters)
    {
        var d = new Dictionary<string, Vmi.Core.Arch.Amd64.DescriptorTable>(StringComparer.Ordinal);
        foreach (Match m in TableLine().Matches(infoRegisters))
        {
            d[m.Groups[1].Value] = new Vmi.Core.Arch.Amd64.DescriptorTable(
                ulong.Parse(m.Groups[2].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                (ushort)uint.Parse(m.Groups[3].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture));
        }

        return d;
    }
}
