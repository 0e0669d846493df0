namespace Vmi.PowerShell;

/// <summary>What Read-VmiMemory and Write-VmiMemory read or write at an address.</summary>
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum VmiValueType
{
    /// <summary>Raw bytes, as byte records (the default).</summary>
    Bytes,
    UInt8,
    UInt16,
    UInt32,
    UInt64,

    /// <summary>A pointer of the guest's width (8 bytes in IA-32e paging, 4 otherwise).</summary>
    Pointer,

    /// <summary>A NUL-terminated UTF-8/ASCII string.</summary>
    String,

    /// <summary>A NUL-terminated UTF-16LE string.</summary>
    WString,
}

/// <summary>Sizes and boxes of the integer types of <see cref="VmiValueType"/>.</summary>
internal static class VmiValueTypes
{
    /// <summary>Bytes of one integer of <paramref name="type"/>; a pointer is the guest's width (<paramref name="pointerWidth"/>).</summary>
    public static int Size(this VmiValueType type, Func<int> pointerWidth) => type switch
    {
        VmiValueType.UInt8 => 1,
        VmiValueType.UInt16 => 2,
        VmiValueType.UInt32 => 4,
        VmiValueType.UInt64 => 8,
        VmiValueType.Pointer => pointerWidth(),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Not an integer type."),
    };

    /// <summary>An integer read as the .NET type of <paramref name="type"/> (byte, ushort, uint, ulong).</summary>
    public static object Box(this VmiValueType type, ulong value) => type switch
    {
        VmiValueType.UInt8 => (object)(byte)value, // object: else the switch's type would be ulong for all
        VmiValueType.UInt16 => (object)(ushort)value,
        VmiValueType.UInt32 => (object)(uint)value,
        _ => (object)value,
    };
}
