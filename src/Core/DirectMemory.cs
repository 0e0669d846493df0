namespace Vmi.Core;

/// <summary>
/// An optional driver capability: guest-physical memory copied straight into the caller's buffer, a run of
/// contiguous frames at a time, with no page object per frame (a memory image read with one positioned read per run,
/// guest RAM shared with the host copied from its mapping). Streaming reads use it; drivers without it are read page
/// by page through the page cache.
/// </summary>
public interface IVmiDirectMemory
{
    /// <summary>
    /// Copies guest-physical memory from <paramref name="pa"/> into <paramref name="destination"/> for as long as it
    /// is stored contiguously, and returns the bytes copied: 0 when <paramref name="pa"/> is not stored that way (the
    /// caller then asks for the page: a hole, a compressed or assembled frame). Throws <see cref="VmiException"/> for
    /// real failures (the file changed or could not be read), as <see cref="IVmiRead.TryMapPage"/> does.
    /// </summary>
    int ReadDirect(ulong pa, Span<byte> destination);
}
