using System.Buffers.Binary;
using System.Globalization;
using System.Management.Automation;
using System.Text;

namespace Vmi.PowerShell;

/// <summary>Binds what Write-VmiMemory -Value accepts to the bytes it writes.</summary>
internal static class VmiValueEncoding
{
    /// <summary>Bytes of <paramref name="value"/> as <paramref name="type"/>: a string (with its NUL unless <paramref name="noTerminator"/>) or a little-endian integer.</summary>
    public static byte[] Encode(object value, VmiValueType type, bool noTerminator, Func<int> pointerWidth)
    {
        value = value is PSObject pso ? pso.BaseObject : value;
        if (type is VmiValueType.String or VmiValueType.WString)
        {
            string text = value as string ?? LanguagePrimitives.ConvertTo<string>(value);
            Encoding encoding = type == VmiValueType.String ? new UTF8Encoding(false) : new UnicodeEncoding(false, false);
            byte[] body = encoding.GetBytes(text);
            byte[] withNul = new byte[body.Length + (noTerminator ? 0 : type == VmiValueType.String ? 1 : 2)];
            body.CopyTo(withNul, 0);
            return withNul;
        }

        int size = type.Size(pointerWidth);
        string typeName = type == VmiValueType.Pointer ? $"{size}-byte pointer" : type.ToString();
        if (value is string signedText && signedText.StartsWith('-') && long.TryParse(signedText, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long parsed))
        {
            value = parsed; // "-Value -1" reaches an object parameter as text
        }

        ulong number;
        if (value is sbyte or short or int or long && System.Convert.ToInt64(value, CultureInfo.InvariantCulture) is < 0 and long negative)
        {
            // A negative number is written in two's complement when the type's signed range holds it (-1 as UInt8 is
            // 0xff), as a hex literal PowerShell made negative (0xffffffff is the Int32 -1) is meant.
            long min = size == 8 ? long.MinValue : -(1L << (size * 8 - 1));
            if (negative < min)
            {
                throw new ArgumentOutOfRangeException(nameof(value), string.Format(CultureInfo.CurrentCulture, Messages.ValueOutOfRange, negative, typeName, min, size == 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1));
            }

            number = unchecked((ulong)negative) & (size == 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1);
        }
        else if (!VmiAddressTransformationAttribute.TryConvert(value, out number))
        {
            throw new ArgumentException(string.Format(CultureInfo.CurrentCulture, Messages.ValueNotUnderstood, value, typeName));
        }
        else if (size < 8 && number >> (size * 8) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(value), string.Format(CultureInfo.CurrentCulture, Messages.ValueOutOfRange, number, typeName, -(1L << (size * 8 - 1)), (1UL << (size * 8)) - 1));
        }

        byte[] bytes = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, number);
        return bytes[..size];
    }
}
