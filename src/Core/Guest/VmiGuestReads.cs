namespace Vmi.Core;

/// <summary>Reads built on the guest's one-call members: each element is one call, so other threads get the guest between them.</summary>
public static class VmiGuestReads
{
    /// <summary>
    /// Reads <paramref name="count"/> consecutive little-endian unsigned integers of <paramref name="size"/> bytes (1, 2, 4
    /// or 8) from <paramref name="start"/>, yielding each with the context it was read at. The whole range is checked
    /// first: it never wraps past the end of the address space.
    /// </summary>
    public static IEnumerable<(AccessContext At, ulong Value)> ReadUInts(this VmiGuest guest, AccessContext start, int size, int count,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(guest);
        if (size is not (1 or 2 or 4 or 8))
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, "An integer is 1, 2, 4 or 8 bytes.");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ulong length = (ulong)size * (ulong)count;
        if (start.Address + (length - 1) < start.Address)
        {
            throw new ArgumentOutOfRangeException(nameof(count), $"The range 0x{start.Address:x} + 0x{length:x} ({count} integers of {size} bytes) runs past the end of the address space: read fewer.");
        }

        return Iterate(guest, start, size, count, cancellationToken);
    }

    private static IEnumerable<(AccessContext At, ulong Value)> Iterate(VmiGuest guest, AccessContext start, int size, int count, CancellationToken cancellationToken)
    {
        for (int i = 0; i < count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            AccessContext at = start + (ulong)i * (ulong)size;
            yield return (at, guest.ReadUInt(at, size));
        }
    }
}

/// <summary>
/// The default range of a physical search: from <see cref="Start"/> for <see cref="Length"/> bytes. When an image declares
/// memory it does not store (zero-filled), the range ends with the stored memory and <see cref="DeclaredEnd"/> says where
/// the declared memory would have ended (null when nothing was cut).
/// </summary>
public readonly record struct PhysicalSearchRange(ulong Start, ulong Length, ulong? DeclaredEnd);

/// <summary>Ranges of guest memory.</summary>
public static class VmiGuestRanges
{
    /// <summary>
    /// All guest physical memory from <paramref name="start"/>, ending where an image's stored memory ends: an image may
    /// declare zero-filled memory far beyond what it stores (ELF p_memsz much larger than p_filesz), and searching
    /// petabytes of zeros would take days.
    /// </summary>
    public static PhysicalSearchRange PhysicalFrom(this VmiGuest guest, ulong start)
    {
        ArgumentNullException.ThrowIfNull(guest);
        ulong end = (guest.Info.MaxGfn.Value + 1) * guest.Info.PageSize;
        ulong? declared = null;
        if (guest.StoredEnd is { } stored && stored < end && start < end)
        {
            declared = end;
            end = stored;
        }

        return new PhysicalSearchRange(start, end > start ? end - start : 0, declared);
    }
}
