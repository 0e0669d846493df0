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

        if (!VmiAddressTransformationAttribute.TryConvert(value, out ulong number))
        {
            throw new ArgumentException(string.Format(CultureInfo.CurrentCulture, Messages.AddressNotUnderstood, value));
        }

        int size = type switch
        {
            VmiValueType.UInt8 => 1,
            VmiValueType.UInt16 => 2,
            VmiValueType.UInt32 => 4,
            VmiValueType.UInt64 => 8,
            _ => pointerWidth(),
        };
        if (size < 8 && number >> (size * 8) != 0)
        {
            // A negative Int32 literal (0xffffffff parses as -1) is already narrowed by the transformation.
            throw new ArgumentOutOfRangeException(nameof(value), string.Format(CultureInfo.CurrentCulture, Messages.ValueTooLarge, number, type == VmiValueType.Pointer ? $"{size}-byte pointer" : type.ToString()));
        }

        byte[] bytes = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, number);
        return bytes[..size];
    }
}
