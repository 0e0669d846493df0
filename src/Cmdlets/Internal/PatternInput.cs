using System.Globalization;
using System.Management.Automation;
using Vmi.Core.Search;

namespace Vmi.PowerShell;

/// <summary>What -Pattern of Find-VmiMemory was given, turned into a <see cref="BytePattern"/>.</summary>
internal static class PatternInput
{
    /// <summary>
    /// The pattern of whichever was given: -String (UTF-8), -WString (UTF-16LE) or -Pattern (<see cref="FromObject"/>).
    /// A pattern that cannot be searched for is a <see cref="PSArgumentException"/> (the whole command cannot go on).
    /// </summary>
    public static BytePattern From(object? pattern, string? text, string? wideText)
    {
        try
        {
            return text is not null ? BytePattern.FromString(text, new System.Text.UTF8Encoding(false))
                : wideText is not null ? BytePattern.FromString(wideText, new System.Text.UnicodeEncoding(false, false))
                : FromObject(pattern ?? throw new ArgumentNullException(nameof(pattern)));
        }
        catch (Exception e) when (e is ArgumentException or PSInvalidCastException && e is not PSArgumentException)
        {
            throw new PSArgumentException(e.Message, e);
        }
    }

    /// <summary>
    /// Bytes (a byte array, or an array of numbers), one number (a byte value: 0x48 is the byte 0x48, never the text
    /// "72" read as hex), or hex text with ?? wildcards.
    /// </summary>
    public static BytePattern FromObject(object value)
    {
        object v = value is PSObject ps ? ps.BaseObject : value;
        switch (v)
        {
            case byte[] bytes when bytes.Length > 0:
                return BytePattern.FromBytes(bytes);
            case string text:
                return ParseHex(text);
            case object[] items when items.Length > 0:
                return BytePattern.FromBytes(items.Select(ToByte).ToArray());
            default:
                if (IsNumber(v))
                {
                    return BytePattern.FromBytes([ToByte(v)]);
                }

                return BytePattern.Parse(LanguagePrimitives.ConvertTo<string>(v));
        }
    }

    /// <summary>Hex text. Text with other characters than hex digits, ?? and spaces is most likely a string the user meant to
    /// find: say which parameter takes it (hex-shaped mistakes keep the engine's own message).</summary>
    private static BytePattern ParseHex(string text)
    {
        try
        {
            return BytePattern.Parse(text);
        }
        catch (ArgumentException) when (text.Any(c => !char.IsAsciiHexDigit(c) && c != '?' && !char.IsWhiteSpace(c)))
        {
            throw new ArgumentException(string.Format(CultureInfo.CurrentCulture, Messages.PatternNotHex, text));
        }
    }

    private static bool IsNumber(object v) => v is byte or sbyte or short or ushort or int or uint or long or ulong or System.Numerics.BigInteger or decimal or double or float;

    /// <summary>One element of a byte pattern: a number 0-255 (or a byte as two hex digits, "4d").</summary>
    private static byte ToByte(object item)
    {
        object v = item is PSObject ps ? ps.BaseObject : item;
        if (v is string s)
        {
            string t = s.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? s[2..] : s;
            return t.Length is 1 or 2 && byte.TryParse(t, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out byte h)
                ? h
                : throw new ArgumentException(string.Format(CultureInfo.CurrentCulture, Messages.PatternByteOutOfRange, s));
        }

        if (IsNumber(v))
        {
            decimal d = v switch
            {
                double or float => (decimal)Convert.ToDouble(v, CultureInfo.InvariantCulture),
                System.Numerics.BigInteger bi => bi >= 0 && bi <= 255 ? (decimal)(int)bi : -1,
                _ => Convert.ToDecimal(v, CultureInfo.InvariantCulture),
            };
            if (d >= 0 && d <= 255 && decimal.Truncate(d) == d)
            {
                return (byte)d;
            }
        }

        throw new ArgumentException(string.Format(CultureInfo.CurrentCulture, Messages.PatternByteOutOfRange, item));
    }
}
