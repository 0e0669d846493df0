using System.Globalization;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Text;

namespace Vmi.Core.Search;

/// <summary>
/// A byte pattern with optional wildcard bytes ("4d 5a ?? 00"), and its scan kernel. A pattern without wildcards is
/// found with the runtime's vectorised <see cref="MemoryExtensions.IndexOf{T}(ReadOnlySpan{T}, ReadOnlySpan{T})"/>;
/// with wildcards, two fixed bytes (the rarest-looking pair: see <see cref="Rarity"/>) are compared 32 or 16
/// positions at a time, and only the positions where both agree are checked byte by byte.
/// </summary>
public sealed class BytePattern
{
    private readonly byte[] _bytes;
    private readonly bool[] _fixed;
    private readonly int _first;  // offset of the first anchor byte
    private readonly int _second; // offset of the second anchor byte (== _first when the pattern has one fixed byte)

    private BytePattern(byte[] bytes, bool[] fixedMask, string text)
    {
        _bytes = bytes;
        _fixed = fixedMask;
        Text = text;
        HasWildcards = Array.IndexOf(fixedMask, false) >= 0;
        if (Array.IndexOf(fixedMask, true) < 0)
        {
            throw new ArgumentException(NotAPattern(text) + " A pattern needs at least one byte that is not ??.", nameof(text));
        }

        // Anchors: the two fixed bytes least likely in memory, as far apart as the pattern allows among equals.
        _first = -1;
        _second = -1;
        for (int i = 0; i < bytes.Length; i++)
        {
            if (fixedMask[i] && (_first < 0 || Rarity(bytes[i]) > Rarity(bytes[_first])))
            {
                _first = i;
            }
        }

        for (int i = bytes.Length - 1; i >= 0; i--)
        {
            if (fixedMask[i] && i != _first && (_second < 0 || Rarity(bytes[i]) > Rarity(bytes[_second])))
            {
                _second = i;
            }
        }

        if (_second < 0)
        {
            _second = _first;
        }
    }

    /// <summary>Bytes in the pattern (wildcards included).</summary>
    public int Length => _bytes.Length;

    /// <summary>The pattern as the caller wrote it.</summary>
    public string Text { get; }

    public bool HasWildcards { get; }

    /// <summary>The pattern's bytes; wildcard positions hold 0.</summary>
    public ReadOnlySpan<byte> Bytes => _bytes;

    /// <summary>True where the byte must match; false for a ?? wildcard.</summary>
    public bool IsFixed(int index) => _fixed[index];

    public static BytePattern FromBytes(byte[] bytes)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        if (bytes.Length == 0)
        {
            throw new ArgumentException("A byte pattern needs at least one byte.", nameof(bytes));
        }

        return new((byte[])bytes.Clone(), Enumerable.Repeat(true, bytes.Length).ToArray(), string.Join(' ', bytes.Select(b => b.ToString("x2", CultureInfo.InvariantCulture))));
    }

    /// <summary>The bytes of <paramref name="text"/> in <paramref name="encoding"/> (no terminator).</summary>
    public static BytePattern FromString(string text, Encoding encoding)
    {
        ArgumentException.ThrowIfNullOrEmpty(text);
        ArgumentNullException.ThrowIfNull(encoding);
        byte[] bytes = encoding.GetBytes(text);
        return new(bytes, Enumerable.Repeat(true, bytes.Length).ToArray(), text);
    }

    /// <summary>Parses "4d 5a ?? 00", "4d5a??00" or "0x4d,0x5a".</summary>
    public static BytePattern Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string t = text.Replace(",", " ", StringComparison.Ordinal).Replace("0x", " ", StringComparison.OrdinalIgnoreCase);
        var tokens = new List<string>();
        foreach (string part in t.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
        {
            if (part.Length % 2 != 0)
            {
                throw new ArgumentException(NotAPattern(text), nameof(text));
            }

            for (int i = 0; i < part.Length; i += 2)
            {
                tokens.Add(part.Substring(i, 2));
            }
        }

        if (tokens.Count == 0)
        {
            throw new ArgumentException(NotAPattern(text), nameof(text));
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
                throw new ArgumentException(NotAPattern(text), nameof(text));
            }

            mask[i] = true;
        }

        return new BytePattern(bytes, mask, text);
    }

    private static string NotAPattern(string text) =>
        $"'{text}' is not a byte pattern. Write hex bytes separated by spaces, with ?? for any byte: '4d 5a ?? 00'.";

    /// <summary>How unlikely a byte is in guest memory, roughly: zero and 0xff fill pages, 0xcc and 0x90 pad code, small values and ASCII letters are common.</summary>
    private static int Rarity(byte b) => b switch
    {
        0x00 => 0,
        0xFF => 1,
        0xCC or 0x90 or 0x20 => 2,
        < 0x10 => 3,
        >= (byte)'a' and <= (byte)'z' => 4,
        >= (byte)'A' and <= (byte)'Z' => 4,
        0x48 or 0x8B or 0x89 or 0xE8 => 4, // frequent in x86-64 code
        _ => 5,
    };

    /// <summary>The offset of the first match at or after <paramref name="start"/> in <paramref name="data"/>, or -1.</summary>
    public int IndexOf(ReadOnlySpan<byte> data, int start = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        if (start > data.Length - _bytes.Length)
        {
            return -1;
        }

        if (!HasWildcards)
        {
            int i = data[start..].IndexOf(_bytes);
            return i < 0 ? -1 : start + i;
        }

        return IndexOfWildcard(data, start);
    }

    private int IndexOfWildcard(ReadOnlySpan<byte> data, int start)
    {
        int last = data.Length - _bytes.Length; // the last position a match can start
        int pos = start;
        ref byte d = ref MemoryMarshal.GetReference(data);
        if (Vector256.IsHardwareAccelerated && last - pos >= Vector256<byte>.Count)
        {
            Vector256<byte> a = Vector256.Create(_bytes[_first]);
            Vector256<byte> b = Vector256.Create(_bytes[_second]);
            for (; pos <= last - Vector256<byte>.Count + 1; pos += Vector256<byte>.Count)
            {
                Vector256<byte> eq = Vector256.Equals(Vector256.LoadUnsafe(ref d, (nuint)(pos + _first)), a)
                    & Vector256.Equals(Vector256.LoadUnsafe(ref d, (nuint)(pos + _second)), b);
                uint mask = eq.ExtractMostSignificantBits();
                while (mask != 0)
                {
                    int at = pos + BitOperations.TrailingZeroCount(mask);
                    if (Matches(data.Slice(at, _bytes.Length)))
                    {
                        return at;
                    }

                    mask &= mask - 1;
                }
            }
        }
        else if (Vector128.IsHardwareAccelerated && last - pos >= Vector128<byte>.Count)
        {
            Vector128<byte> a = Vector128.Create(_bytes[_first]);
            Vector128<byte> b = Vector128.Create(_bytes[_second]);
            for (; pos <= last - Vector128<byte>.Count + 1; pos += Vector128<byte>.Count)
            {
                Vector128<byte> eq = Vector128.Equals(Vector128.LoadUnsafe(ref d, (nuint)(pos + _first)), a)
                    & Vector128.Equals(Vector128.LoadUnsafe(ref d, (nuint)(pos + _second)), b);
                uint mask = eq.ExtractMostSignificantBits();
                while (mask != 0)
                {
                    int at = pos + BitOperations.TrailingZeroCount(mask);
                    if (Matches(data.Slice(at, _bytes.Length)))
                    {
                        return at;
                    }

                    mask &= mask - 1;
                }
            }
        }

        for (; pos <= last; pos++)
        {
            if (data[pos + _first] == _bytes[_first] && Matches(data.Slice(pos, _bytes.Length)))
            {
                return pos;
            }
        }

        return -1;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
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

    public override string ToString() => Text;
}
