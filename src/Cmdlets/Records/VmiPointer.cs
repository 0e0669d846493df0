namespace Vmi.PowerShell;

/// <summary>
/// A pointer read from guest memory (Read-VmiMemory -As Pointer). <see cref="Address"/> is the value read, so piping
/// the record into Read-VmiMemory dereferences it (under the same <see cref="Cr3"/>).
/// </summary>
public sealed class VmiPointer
{
    internal VmiPointer(VmiSession session, ulong location, ulong value, int width, bool physical, ulong? cr3)
    {
        Session = session;
        Location = location;
        Address = value;
        Width = width;
        LocationIsPhysical = physical;
        Cr3 = cr3;
    }

    [Newtonsoft.Json.JsonIgnore, System.Management.Automation.Hidden]
    public VmiSession Session { get; }

    /// <summary>Where the pointer was read.</summary>
    public ulong Location { get; }

    /// <summary>The pointer's value: a virtual address.</summary>
    public ulong Address { get; }

    /// <summary>4 or 8 bytes.</summary>
    public int Width { get; }

    public bool LocationIsPhysical { get; }

    /// <summary>The page-table root the value is meant to be translated under (the one the location was read under).</summary>
    public ulong? Cr3 { get; }

    public override string ToString() => $"0x{Address:x}";
}
