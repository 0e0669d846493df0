using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace Vmi.Core;

/// <summary>
/// Parses the address spellings users type: <c>0x</c>-prefixed hex (<c>0xfffff800`00001000</c>,
/// <c>0xffff_f800_0000_1000</c>), a trailing <c>h</c> hex form (<c>1000h</c>), or plain decimal.
/// Digit separators <c>`</c> and <c>_</c> are ignored. A bare string of hex digits with letters
/// (<c>ff00</c>) is rejected rather than guessed at.
/// </summary>
public static class AddressParser
{
    public static bool TryParse(ReadOnlySpan<char> text, out ulong value)
    {
        value = 0;
        text = text.Trim();
        if (text.IsEmpty)
        {
            return false;
        }

        bool hex = false;
        if (text.Length > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X'))
        {
            hex = true;
            text = text[2..];
        }
        else if (text.Length > 1 && (text[^1] == 'h' || text[^1] == 'H'))
        {
            hex = true;
            text = text[..^1];
        }

        int digits = 0;
        ulong acc = 0;
        foreach (char c in text)
        {
            if (c is '`' or '_')
            {
                continue;
            }

            int d;
            if (c is >= '0' and <= '9')
            {
                d = c - '0';
            }
            else if (hex && c is >= 'a' and <= 'f')
            {
                d = c - 'a' + 10;
            }
            else if (hex && c is >= 'A' and <= 'F')
            {
                d = c - 'A' + 10;
            }
            else
            {
                return false;
            }

            ulong b = hex ? 16UL : 10UL;
            if (acc > (ulong.MaxValue - (ulong)d) / b)
            {
                return false; // overflow
            }

            acc = (acc * b) + (ulong)d;
            digits++;
        }

        if (digits == 0)
        {
            return false;
        }

        value = acc;
        return true;
    }

    public static ulong Parse(string text, string what = "address")
    {
        ArgumentNullException.ThrowIfNull(text);
        if (!TryParse(text, out ulong v))
        {
            throw new FormatException(
                $"'{text}' is not a valid {what}. Use a 0x-prefixed hexadecimal number (0xfffff80000001000) or a decimal number (4096).");
        }

        return v;
    }

    internal static ushort ParseUInt16(string text, string what)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (!TryParse(text, out ulong v) || v > ushort.MaxValue)
        {
            throw new FormatException($"'{text}' is not a valid {what}: use a number from 0 to 65535 (decimal, or 0x-prefixed hexadecimal).");
        }

        return (ushort)v;
    }

    internal static string Format(ulong value, string? format, IFormatProvider? provider)
    {
        if (string.IsNullOrEmpty(format))
        {
            return "0x" + value.ToString("x", CultureInfo.InvariantCulture);
        }

        return value.ToString(format, provider ?? CultureInfo.InvariantCulture);
    }
}

/// <summary>A guest frame number: a guest physical address shifted right by the page shift.</summary>
public readonly record struct Gfn(ulong Value) : IComparable<Gfn>, IFormattable, ISpanParsable<Gfn>
{
    public static Gfn operator +(Gfn gfn, ulong n) => new(gfn.Value + n);
    public static Gfn operator -(Gfn gfn, ulong n) => new(gfn.Value - n);
    public static bool operator <(Gfn a, Gfn b) => a.Value < b.Value;
    public static bool operator >(Gfn a, Gfn b) => a.Value > b.Value;
    public static bool operator <=(Gfn a, Gfn b) => a.Value <= b.Value;
    public static bool operator >=(Gfn a, Gfn b) => a.Value >= b.Value;
    public static explicit operator ulong(Gfn gfn) => gfn.Value;
    public int CompareTo(Gfn other) => Value.CompareTo(other.Value);
    public override string ToString() => AddressParser.Format(Value, null, null);
    public string ToString(string? format, IFormatProvider? formatProvider) => AddressParser.Format(Value, format, formatProvider);
    public static Gfn Parse(string s) => new(AddressParser.Parse(s, "GFN"));
    public static Gfn Parse(string s, IFormatProvider? provider) => Parse(s);
    public static Gfn Parse(ReadOnlySpan<char> s, IFormatProvider? provider) => Parse(s.ToString());
    public static bool TryParse([NotNullWhen(true)] string? s, IFormatProvider? provider, out Gfn result) => TryParse(s.AsSpan(), provider, out result);
    public static bool TryParse(ReadOnlySpan<char> s, IFormatProvider? provider, out Gfn result)
    {
        bool ok = AddressParser.TryParse(s, out ulong v);
        result = new Gfn(v);
        return ok;
    }
}

/// <summary>A guest physical address.</summary>
public readonly record struct Pa(ulong Value) : IComparable<Pa>, IFormattable, ISpanParsable<Pa>
{
    public static Pa operator +(Pa pa, ulong n) => new(pa.Value + n);
    public static Pa operator -(Pa pa, ulong n) => new(pa.Value - n);
    public static ulong operator -(Pa a, Pa b) => a.Value - b.Value;
    public static bool operator <(Pa a, Pa b) => a.Value < b.Value;
    public static bool operator >(Pa a, Pa b) => a.Value > b.Value;
    public static bool operator <=(Pa a, Pa b) => a.Value <= b.Value;
    public static bool operator >=(Pa a, Pa b) => a.Value >= b.Value;
    public static explicit operator ulong(Pa pa) => pa.Value;
    public int CompareTo(Pa other) => Value.CompareTo(other.Value);
    public override string ToString() => AddressParser.Format(Value, null, null);
    public string ToString(string? format, IFormatProvider? formatProvider) => AddressParser.Format(Value, format, formatProvider);
    public static Pa Parse(string s) => new(AddressParser.Parse(s, "physical address"));
    public static Pa Parse(string s, IFormatProvider? provider) => Parse(s);
    public static Pa Parse(ReadOnlySpan<char> s, IFormatProvider? provider) => Parse(s.ToString());
    public static bool TryParse([NotNullWhen(true)] string? s, IFormatProvider? provider, out Pa result) => TryParse(s.AsSpan(), provider, out result);
    public static bool TryParse(ReadOnlySpan<char> s, IFormatProvider? provider, out Pa result)
    {
        bool ok = AddressParser.TryParse(s, out ulong v);
        result = new Pa(v);
        return ok;
    }
}

/// <summary>A guest virtual address.</summary>
public readonly record struct Va(ulong Value) : IComparable<Va>, IFormattable, ISpanParsable<Va>
{
    public static Va operator +(Va va, ulong n) => new(va.Value + n);
    public static Va operator -(Va va, ulong n) => new(va.Value - n);
    public static ulong operator -(Va a, Va b) => a.Value - b.Value;
    public static bool operator <(Va a, Va b) => a.Value < b.Value;
    public static bool operator >(Va a, Va b) => a.Value > b.Value;
    public static bool operator <=(Va a, Va b) => a.Value <= b.Value;
    public static bool operator >=(Va a, Va b) => a.Value >= b.Value;
    public static explicit operator ulong(Va va) => va.Value;
    public int CompareTo(Va other) => Value.CompareTo(other.Value);
    public override string ToString() => AddressParser.Format(Value, null, null);
    public string ToString(string? format, IFormatProvider? formatProvider) => AddressParser.Format(Value, format, formatProvider);
    public static Va Parse(string s) => new(AddressParser.Parse(s, "virtual address"));
    public static Va Parse(string s, IFormatProvider? provider) => Parse(s);
    public static Va Parse(ReadOnlySpan<char> s, IFormatProvider? provider) => Parse(s.ToString());
    public static bool TryParse([NotNullWhen(true)] string? s, IFormatProvider? provider, out Va result) => TryParse(s.AsSpan(), provider, out result);
    public static bool TryParse(ReadOnlySpan<char> s, IFormatProvider? provider, out Va result)
    {
        bool ok = AddressParser.TryParse(s, out ulong v);
        result = new Va(v);
        return ok;
    }
}

/// <summary>A virtual CPU index.</summary>
public readonly record struct VcpuId(ushort Value) : IComparable<VcpuId>, IFormattable, ISpanParsable<VcpuId>
{
    public static implicit operator VcpuId(ushort value) => new(value);
    public static VcpuId Parse(string s) => new(AddressParser.ParseUInt16(s, "vCPU number"));
    public static VcpuId Parse(string s, IFormatProvider? provider) => Parse(s);
    public static VcpuId Parse(ReadOnlySpan<char> s, IFormatProvider? provider) => Parse(s.ToString());
    public static bool TryParse([NotNullWhen(true)] string? s, IFormatProvider? provider, out VcpuId result) => TryParse(s.AsSpan(), provider, out result);
    public static bool TryParse(ReadOnlySpan<char> s, IFormatProvider? provider, out VcpuId result)
    {
        bool ok = AddressParser.TryParse(s, out ulong v) && v <= ushort.MaxValue;
        result = ok ? new VcpuId((ushort)v) : default;
        return ok;
    }

    public int CompareTo(VcpuId other) => Value.CompareTo(other.Value);
    public override string ToString() => Value.ToString(CultureInfo.InvariantCulture);
    public string ToString(string? format, IFormatProvider? formatProvider) => Value.ToString(format, formatProvider ?? CultureInfo.InvariantCulture);
}

/// <summary>An altp2m view (Xen) or an equivalent second-level address-space view. View 0 is the host's default view.</summary>
public readonly record struct View(ushort Value) : IComparable<View>, IFormattable, ISpanParsable<View>
{
    public static View Default => default;
    public static implicit operator View(ushort value) => new(value);
    public static View Parse(string s) => new(AddressParser.ParseUInt16(s, "view number"));
    public static View Parse(string s, IFormatProvider? provider) => Parse(s);
    public static View Parse(ReadOnlySpan<char> s, IFormatProvider? provider) => Parse(s.ToString());
    public static bool TryParse([NotNullWhen(true)] string? s, IFormatProvider? provider, out View result) => TryParse(s.AsSpan(), provider, out result);
    public static bool TryParse(ReadOnlySpan<char> s, IFormatProvider? provider, out View result)
    {
        bool ok = AddressParser.TryParse(s, out ulong v) && v <= ushort.MaxValue;
        result = ok ? new View((ushort)v) : default;
        return ok;
    }

    public int CompareTo(View other) => Value.CompareTo(other.Value);
    public override string ToString() => Value.ToString(CultureInfo.InvariantCulture);
    public string ToString(string? format, IFormatProvider? formatProvider) => Value.ToString(format, formatProvider ?? CultureInfo.InvariantCulture);
}
