using System.Globalization;
using System.Management.Automation;
using System.Text;

namespace Vmi.PowerShell;

/// <summary>A byte pattern with optional wildcard bytes ("4d 5a ?? 00").</summary>
internal sealed class BytePattern
{
    private readonly byte[] _bytes;
    private readonly bool[] _fixed;
    private readonly int _anchor; // index of the first fixed byte

    private BytePattern(byte[] bytes, bool[] fixedMask, string text)
    {
        _bytes = bytes;
        _fixed = fixedMask;
        Text = text;
        _anchor = Array.IndexOf(fixedMask, true);
        HasWildcards = fixedMask.Contains(false);
        if (_anchor < 0)
        {
            throw new ArgumentException(string.Format(CultureInfo.CurrentCulture, Messages.PatternNotUnderstood, text) + " A pattern needs at least one byte that is not ??.");
        }
    }

    public int Length => _bytes.Length;

    public string Text { get; }

    public bool HasWildcards { get; }

    public static BytePattern FromBytes(byte[] bytes) =>
        new(bytes, Enumerable.Repeat(true, bytes.Length).ToArray(), string.Join(' ', bytes.Select(b => b.ToString("x2", CultureInfo.InvariantCulture))));

    /// <summary>
    /// What -Pattern was given: bytes (a byte array, or an array of numbers), one number (a byte value: 0x48 is the
    /// byte 0x48, never the text "72" read as hex), or hex text with ?? wildcards.
    /// </summary>
    public static BytePattern FromObject(object value)
    {
        object v = value is PSObject ps ? ps.BaseObject : value;
        switch (v)
        {
            case byte[] bytes:
                return bytes.Length > 0 ? FromBytes(bytes) : throw new ArgumentException(string.Format(CultureInfo.CurrentCulture, Messages.PatternNotUnderstood, string.Empty));
            case string text:
                return Parse(text);
            case object[] items when items.Length > 0:
                return FromBytes(items.Select(ToByte).ToArray());
            case object[]:
                throw new ArgumentException(string.Format(CultureInfo.CurrentCulture, Messages.PatternNotUnderstood, "@()"));
            default:
                if (IsNumber(v))
                {
                    return FromBytes([ToByte(v)]);
                }

                return Parse(LanguagePrimitives.ConvertTo<string>(v));
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
            decimal d = v is double or float ? (decimal)Convert.ToDouble(v, CultureInfo.InvariantCulture) : v is System.Numerics.BigInteger bi ? (bi >= 0 && bi <= 255 ? (decimal)(int)bi : -1) : Convert.ToDecimal(v, CultureInfo.InvariantCulture);
            if (d >= 0 && d <= 255 && decimal.Truncate(d) == d)
            {
                return (byte)d;
            }
        }

        throw new ArgumentException(string.Format(CultureInfo.CurrentCulture, Messages.PatternByteOutOfRange, item));
    }

    public static BytePattern FromString(string text, Encoding encoding) => new(encoding.GetBytes(text), Enumerable.Repeat(true, encoding.GetByteCount(text)).ToArray(), text);

    /// <summary>Parses "4d 5a ?? 00", "4d5a??00" or "0x4d,0x5a".</summary>
    public static BytePattern Parse(string text)
    {
        string t = text.Replace(",", " ", StringComparison.Ordinal).Replace("0x", " ", StringComparison.OrdinalIgnoreCase);
        var tokens = new List<string>();
        foreach (string part in t.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
        {
            if (part.Length % 2 != 0)
            {
                throw new ArgumentException(string.Format(CultureInfo.CurrentCulture, Messages.PatternNotUnderstood, text));
            }

            for (int i = 0; i < part.Length; i += 2)
            {
                tokens.Add(part.Substring(i, 2));
            }
        }

        if (tokens.Count == 0)
        {
            throw new ArgumentException(string.Format(CultureInfo.CurrentCulture, Messages.PatternNotUnderstood, text));
        }

        byte[] bytes = new byte[tokens.Count];
        bool[] mask = new bool[tokens.Count];
        for (int i = 0; i < tokens.Count; i++)
        {
            if (tokens[i] == "??")
            {
                continue;
            }

            if (!byte.TryParse(tokens[i], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out bytes[i]))
            {
                throw new ArgumentException(string.Format(CultureInfo.CurrentCulture, Messages.PatternNotUnderstood, text));
            }

            mask[i] = true;
        }

        return new BytePattern(bytes, mask, text);
    }

    /// <summary>The offset of the first match at or after <paramref name="start"/> in <paramref name="data"/>, or -1.</summary>
    public int IndexOf(ReadOnlySpan<byte> data, int start)
    {
        if (!HasWildcards)
        {
            int i = data[start..].IndexOf(_bytes);
            return i < 0 ? -1 : start + i;
        }

        byte anchor = _bytes[_anchor];
        int last = data.Length - _bytes.Length;
        for (int pos = start; pos <= last;)
        {
            int found = data[(pos + _anchor)..(last + _anchor + 1)].IndexOf(anchor);
            if (found < 0)
            {
                return -1;
            }

            pos += found;
            if (Matches(data.Slice(pos, _bytes.Length)))
            {
                return pos;
            }

            pos++;
        }

        return -1;
    }

    private bool Matches(ReadOnlySpan<byte> candidate)
    {
        for (int i = 0; i < _bytes.Length; i++)
        {
            if (_fixed[i] && candidate[i] != _bytes[i])
            {
                return false;
            }
        }

        return true;
    }
}
