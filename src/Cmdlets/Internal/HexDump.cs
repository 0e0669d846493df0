using System.Globalization;
using System.Text;

namespace Vmi.PowerShell;

/// <summary>Format-Hex style dumps: address, 16 hex bytes, their ASCII.</summary>
public static class HexDump
{
    public const string Header = "Address             00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F  ASCII";

    /// <summary>
    /// The dump of <paramref name="bytes"/> read at <paramref name="address"/>, with a header: what the VmiMemoryRecord view
    /// shows. Takes the record's properties, not the record, so a deserialized record (Import-Clixml, a remote session) shows it too.
    /// </summary>
    public static string Format(ulong address, byte[] bytes) => Format(address, bytes.AsSpan(), header: true);

    public static string Format(ulong address, ReadOnlySpan<byte> bytes, bool header = true)
    {
        var sb = new StringBuilder((bytes.Length / 16 + 2) * 80);
        if (header)
        {
            sb.Append(Header).Append('\n');
        }

        // Lines are aligned to 16-byte boundaries, as Format-Hex aligns them to offsets.
        ulong lineStart = address & ~0xFUL;
        int index = -(int)(address - lineStart);
        while (index < bytes.Length)
        {
            sb.Append(CultureInfo.InvariantCulture, $"{lineStart:X16}    ");
            var ascii = new StringBuilder(16);
            for (int col = 0; col < 16; col++)
            {
                int i = index + col;
                if (i < 0 || i >= bytes.Length)
                {
                    sb.Append("   ");
                    ascii.Append(' ');
                }
                else
                {
                    byte b = bytes[i];
                    sb.Append(CultureInfo.InvariantCulture, $"{b:X2} ");
                    ascii.Append(b is >= 0x20 and < 0x7f ? (char)b : '.');
                }
            }

            sb.Append(' ').Append(ascii.ToString().TrimEnd()).Append('\n');
            index += 16;
            lineStart += 16;
        }

        return sb.ToString().TrimEnd('\n');
    }
}
