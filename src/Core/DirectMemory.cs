namespace Vmi.Core;

/// <summary>
/// An optional driver capability: guest-physical memory that stays mapped as long as the driver lives (a
/// memory-mapped image, guest RAM shared with the host), handed out as spans over runs of contiguous frames,
/// with no page object per frame. Streaming reads copy straight from these spans; drivers without it are read
/// page by page through the page cache.
/// </summary>
public interface IVmiDirectMemory
{
    /// <summary>
    /// The bytes from <paramref name="pa"/> on, as far as they are contiguous in the driver's mapping and at most
    /// <paramref name="maxLength"/>. False (and an empty span) when <paramref name="pa"/> is not backed that way:
    /// the caller then asks for the page (a hole, a compressed or assembled frame). The span stays valid until the
    /// driver is disposed; it shows the guest's memory as it is now (live guests keep changing it).
    /// </summary>
    bool TryGetDirectSpan(ulong pa, int maxLength, out ReadOnlySpan<byte> span);
}
