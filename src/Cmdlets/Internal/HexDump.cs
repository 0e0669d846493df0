using System.Globalization;
using System.Text;

namespace Vmi.PowerShell;

/// <summary>
/// Hex dumps that fit 80 columns (75 wide): the 16-digit address of each 16-byte line, the bytes in pairs (as xxd
/// groups them; a 64-bit address leaves no room for 16 spaced bytes and their ASCII in 80 columns), their ASCII.
/// Lines are aligned to 16-byte addresses; a read that starts mid-line leaves the bytes before it, and their ASCII
/// characters, blank, so every column stays under its header.
/// </summary>
public static class HexDump
{
    public const string Header = "Address           0001 0203 0405 0607 0809 0A0B 0C0D 0E0F  ASCII";

    /// <summary>
    /// The dump of <paramref name="bytes"/> read at <paramref name="address"/>, with a header: what the VmiMemoryRecord view
    /// shows. Takes the record's properties, not the record, so a deserialized record (Import-Clixml, a remote session) shows it too.
    /// </summary>
    public static string Format(ulong address, byte[] bytes) => Format(address, bytes.AsSpan(), header: true);

    public static string Format(ulong address, ReadOnlySpan<byte> bytes, bool header = true)
    {
        var sb = new StringBuilder((bytes.Length / 16 + 2) * 76);
        if (header)
        {
            sb.Append(Header).Append('\n');
        }

        ulong lineStart = address & ~0xFUL;
        int index = -(int)(address - lineStart);
        Span<char> ascii = stackalloc char[16];
        while (index < bytes.Length)
        {
            sb.Append(CultureInfo.InvariantCulture, $"{lineStart:X16}  ");
            for (int col = 0; col < 16; col++)
            {
                int i = index + col;
                if (i < 0 || i >= bytes.Length)
                {
                    sb.Append("  ");
                    ascii[col] = ' ';
                }
                else
                {
                    byte b = bytes[i];
                    sb.Append(CultureInfo.InvariantCulture, $"{b:X2}");
                    ascii[col] = b is >= 0x20 and < 0x7f ? (char)b : '.';
                }

                if (col % 2 == 1 && col < 15)
                {
                    sb.Append(' ');
                }
            }

            sb.Append("  ").Append(ascii).Append('\n');
            index += 16;
            lineStart += 16;
        }

        // Trailing blanks go (a short last line), leading ones stay (they keep a mid-line start aligned).
        string[] lines = sb.ToString().TrimEnd('\n').Split('\n');
        return string.Join('\n', lines.Select(l => l.TrimEnd()));
    }
}
