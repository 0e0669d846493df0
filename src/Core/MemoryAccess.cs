using Vmi.Core.Arch.Amd64;

namespace Vmi.Core;

/// <summary>Second-level (EPT/NPT) access permissions of a guest frame in a view.</summary>
[Flags]
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum MemoryAccess : byte
{
    None = 0,
    R = 1,
    W = 2,
    X = 4,
    RW = R | W,
    RX = R | X,
    WX = W | X,
    RWX = R | W | X,
}

[Flags]
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum MemoryAccessOptions : byte
{
    None = 0,

    /// <summary>Do not report accesses made by the processor's own page walks (A/D bit updates).</summary>
    IgnorePageWalkUpdates = 1,
}

/// <summary>Facts about the guest that do not change while a session is open.</summary>
/// <param name="PageSize">Bytes in a page (4096 on AMD64).</param>
/// <param name="PageShift">log2 of <paramref name="PageSize"/>.</param>
/// <param name="MaxGfn">The highest guest frame number the guest can have.</param>
/// <param name="VcpuCount">Number of virtual CPUs.</param>
public sealed record VmiInfo(uint PageSize, int PageShift, Gfn MaxGfn, int VcpuCount)
{
    private readonly int _physicalAddressWidth = Amd64.MaxPhysicalAddressWidth;

    /// <summary>
    /// The guest's physical-address width (MAXPHYADDR, CPUID 0x80000008 EAX[7:0]), 32 to 52 bits: entry bits
    /// above it are reserved. A driver that cannot learn it leaves the architectural maximum, 52.
    /// </summary>
    public int PhysicalAddressWidth
    {
        get => _physicalAddressWidth;
        init
        {
            if (value is < 32 or > Amd64.MaxPhysicalAddressWidth)
            {
                throw new ArgumentOutOfRangeException(nameof(value), value, $"A physical-address width (MAXPHYADDR) is from 32 to {Amd64.MaxPhysicalAddressWidth} bits.");
            }

            _physicalAddressWidth = value;
        }
    }
}
