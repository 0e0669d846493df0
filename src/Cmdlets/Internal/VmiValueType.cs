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
