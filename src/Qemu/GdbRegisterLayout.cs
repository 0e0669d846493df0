using System.Globalization;
using System.Xml.Linq;
using Vmi.Core;

namespace Vmi.Qemu;

/// <summary>One register of the stub's target description: its number for p/P, its size, its place in the g packet.</summary>
public sealed record GdbRegister(string Name, int Number, int BitSize, int GOffset);

/// <summary>
/// The register layout the stub describes in qXfer:features:read:target.xml (and the files it includes):
/// registers numbered in document order from each "regnum", with their byte offsets in the 'g' packet.
/// Read from the running QEMU, so a QEMU whose layout differs is read correctly or refused by name.
/// </summary>
public sealed class GdbRegisterLayout
{
    private readonly Dictionary<string, GdbRegister> _byName;

    private GdbRegisterLayout(List<GdbRegister> registers, string architecture)
    {
        Registers = registers;
        Architecture = architecture;
        _byName = registers.ToDictionary(r => r.Name, StringComparer.OrdinalIgnoreCase);
    }

    public IReadOnlyList<GdbRegister> Registers { get; }

    public string Architecture { get; }

    public GdbRegister? Find(string name) => _byName.GetValueOrDefault(name);

    /// <summary>The register or a clear error naming what the stub offers instead.</summary>
    public GdbRegister Get(string name) => Find(name) ?? throw new VmiDriverException(
        $"The gdbstub's register description has no '{name}' (it has: {string.Join(", ", Registers.Take(40).Select(r => r.Name))}...): this QEMU is too old or not x86-64.");

    /// <summary>Reads target.xml and its includes through <paramref name="readAnnex"/> (annex name to text).</summary>
    public static GdbRegisterLayout Load(Func<string, string> readAnnex)
    {
        ArgumentNullException.ThrowIfNull(readAnnex);
        var registers = new List<GdbRegister>();
        string architecture = "";
        int next = 0;
        int offset = 0;
        void Walk(string annex, int depth)
        {
            if (depth > 8)
            {
                throw new VmiFormatException($"target description includes nest too deep at '{annex}'", "gdbstub");
            }

            XDocument doc;
            try
            {
                // gdb's files use an undeclared "xi:" prefix and a DOCTYPE naming a DTD we do not have: drop the prefix, ignore the DTD.
                string text = System.Text.RegularExpressions.Regex.Replace(readAnnex(annex), @"<(/?)[A-Za-z]+:", "<$1");
                var settings = new System.Xml.XmlReaderSettings { DtdProcessing = System.Xml.DtdProcessing.Ignore, XmlResolver = null };
                using var reader = System.Xml.XmlReader.Create(new StringReader(text), settings);
                doc = XDocument.Load(reader);
            }
            catch (System.Xml.XmlException e)
            {
                throw new VmiFormatException($"'{annex}' is not XML: {e.Message}", "gdbstub target description");
            }

            foreach (XElement e in doc.Root!.DescendantsAndSelf())
            {
                switch (e.Name.LocalName)
                {
                    case "architecture":
                        architecture = e.Value.Trim();
                        break;
                    case "include":
                        string? href = (string?)e.Attribute("href");
                        if (!string.IsNullOrEmpty(href))
                        {
                            Walk(href, depth + 1);
                        }

                        break;
                    case "reg":
                        string name = (string?)e.Attribute("name") ?? throw new VmiFormatException("a <reg> without a name", annex);
                        int bits = int.Parse((string?)e.Attribute("bitsize") ?? throw new VmiFormatException($"register '{name}' has no bitsize", annex), CultureInfo.InvariantCulture);
                        if ((string?)e.Attribute("regnum") is string rn)
                        {
                            next = int.Parse(rn, CultureInfo.InvariantCulture);
                        }

                        registers.Add(new GdbRegister(name, next, bits, offset));
                        offset += bits / 8;
                        next++;
                        break;
                }
            }
        }

        Walk("target.xml", 0);
        if (registers.Count == 0)
        {
            throw new VmiFormatException("the target description lists no registers", "gdbstub");
        }

        // 'g' carries the registers in number order; offsets above follow document order, which QEMU keeps equal.
        return new GdbRegisterLayout(registers, architecture);
    }

    /// <summary>The little-endian value of <paramref name="register"/> from a hex register image, or null when the image is too short.</summary>
    public static ulong? ValueFrom(string hex, GdbRegister register)
    {
        int start = register.GOffset * 2;
        int bytes = Math.Min(register.BitSize / 8, 8);
        if (start + (bytes * 2) > hex.Length)
        {
            return null;
        }

        return LittleEndian(hex.AsSpan(start, bytes * 2));
    }

    public static ulong LittleEndian(ReadOnlySpan<char> hex)
    {
        ulong v = 0;
        for (int i = (hex.Length / 2) - 1; i >= 0; i--)
        {
            v = (v << 8) | byte.Parse(hex.Slice(i * 2, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        }

        return v;
    }

    public static string ToLittleEndianHex(ulong value, int bytes)
    {
        Span<byte> b = stackalloc byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(b, value);
        return Convert.ToHexStringLower(b[..bytes]);
    }
}
