namespace Vmi.PowerShell;

/// <summary>
/// Bytes read from guest memory: one record per chunk of a read. Renders like Format-Hex.
/// Carries <see cref="Address"/>, <see cref="Physical"/>, <see cref="Cr3"/> and <see cref="Length"/> so it binds
/// by property name to the next memory cmdlet.
/// </summary>
public sealed class VmiMemoryRecord
{
    public VmiMemoryRecord(VmiSession session, ulong address, bool physical, ulong? cr3, byte[] bytes, IReadOnlyList<ulong>? zeroFilledPages = null)
    {
        Session = session;
        Address = address;
        Physical = physical;
        Cr3 = cr3;
        Bytes = bytes;
        ZeroFilledPages = zeroFilledPages ?? [];
    }

    [Newtonsoft.Json.JsonIgnore, System.Management.Automation.Hidden]
    public VmiSession Session { get; }

    /// <summary>The address of the first byte (virtual unless <see cref="Physical"/>).</summary>
    public ulong Address { get; }

    public bool Physical { get; }

    /// <summary>The page-table root a virtual address was translated under; null for physical reads.</summary>
    public ulong? Cr3 { get; }

    public byte[] Bytes { get; }

    public int Length => Bytes.Length;

    /// <summary>Page addresses (in this record's address space) that could not be read and hold zeros (-ZeroFill).</summary>
    public IReadOnlyList<ulong> ZeroFilledPages { get; }

    /// <summary>The bytes as a Format-Hex style dump: 16 bytes a line, address, hex, ASCII.</summary>
    public string HexDump() => Vmi.PowerShell.HexDump.Format(Address, Bytes);

    public override string ToString() => HexDump();
}
