namespace Vmi.PowerShell;

/// <summary>A hit of Find-VmiMemory. Binds by property name to Read-VmiMemory (Address, Physical, Cr3, Length).</summary>
public sealed class VmiMemoryMatch
{
    internal VmiMemoryMatch(VmiSession session, ulong address, bool physical, ulong? cr3, byte[] bytes, string pattern)
    {
        Session = session;
        Address = address;
        Physical = physical;
        Cr3 = cr3;
        Bytes = bytes;
        Pattern = pattern;
    }

    [Newtonsoft.Json.JsonIgnore, System.Management.Automation.Hidden]
    public VmiSession Session { get; }

    public ulong Address { get; }

    public bool Physical { get; }

    public ulong? Cr3 { get; }

    /// <summary>The bytes that matched.</summary>
    public byte[] Bytes { get; }

    public int Length => Bytes.Length;

    /// <summary>The pattern as given.</summary>
    public string Pattern { get; }

    public override string ToString() => $"0x{Address:x}";
}
