using System.Globalization;
using System.Text;

namespace Vmi.Core.Search;

/// <summary>A byte pattern with optional wildcard bytes ("4d 5a ?? 00").</summary>
public sealed class BytePattern
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
            throw new ArgumentException(NotUnderstood(text) + " A pattern needs at least one byte that is not ??.");
        }
    }

    public int Length => _bytes.Length;

    public string Text { get; }

    public bool HasWildcards { get; }

    public static BytePattern FromBytes(byte[] bytes) =>
        new(bytes, Enumerable.Repeat(true, bytes.Length).ToArray(), string.Join(' ', bytes.Select(b => b.ToString("x2", CultureInfo.InvariantCulture))));

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
                throw new ArgumentException(NotUnderstood(text));
            }

            for (int i = 0; i < part.Length; i += 2)
            {
                tokens.Add(part.Substring(i, 2));
            }
        }

        if (tokens.Count == 0)
        {
            throw new ArgumentException(NotUnderstood(text));
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
                throw new ArgumentException(NotUnderstood(text));
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

    private static string NotUnderstood(string text) =>
        string.Format(CultureInfo.InvariantCulture, "'{0}' is not a byte pattern. Write hex bytes separated by spaces, with ?? for any byte: '4d 5a ?? 00'.", text);
}
