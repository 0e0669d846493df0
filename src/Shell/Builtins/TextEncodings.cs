using System.Globalization;
using System.Management.Automation;
using System.Text;

namespace Vmi.Shell.Builtins;

/// <summary>The -Encoding names of PowerShell (utf8 without a BOM by default), or a code page name or number.</summary>
internal static class TextEncodings
{
    public static Encoding Utf8 { get; } = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false);

    /// <summary>The encoding named; a terminating error for a name this runtime does not know.</summary>
    public static Encoding Get(string? name, PSCmdlet cmdlet)
    {
        switch (name?.ToLowerInvariant())
        {
            case null or "" or "utf8" or "utf8nobom" or "default":
                return Utf8;
            case "utf8bom":
                return new UTF8Encoding(encoderShouldEmitUTF8Identifier: true);
            case "ascii":
                return Encoding.ASCII;
            case "unicode":
                return Encoding.Unicode;
            case "bigendianunicode":
                return Encoding.BigEndianUnicode;
            case "utf32":
                return Encoding.UTF32;
            case "bigendianutf32":
                return new UTF32Encoding(bigEndian: true, byteOrderMark: true);
            case "latin1":
                return Encoding.Latin1;
        }

        try
        {
            return int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out int codePage)
                ? Encoding.GetEncoding(codePage)
                : Encoding.GetEncoding(name);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException)
        {
            cmdlet.ThrowTerminatingError(BuiltinErrors.Argument(
                $"'{name}' is not an encoding this shell knows: use utf8 (the default), utf8BOM, ascii, unicode, bigendianunicode, utf32, bigendianutf32 or latin1.",
                BuiltinErrors.BadEncoding,
                name));
            return Utf8; // not reached
        }
    }
}
