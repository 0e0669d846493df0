using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Os.Linux;

/// <summary>
/// The little the Linux layer asks of a guest: reads of virtual memory under a page-table root, translation,
/// and (where the target has them) registers and VMCOREINFO. Any target implements it; <see cref="CoreGuestMemory"/>
/// adapts a <see cref="VmiCore"/>.
/// </summary>
public interface IGuestMemory
{
    /// <summary>The paging mode of the guest (from vCPU 0's control registers).</summary>
    PagingMode PagingMode { get; }

    int VcpuCount { get; }

    /// <summary>Reads from <paramref name="va"/> under <paramref name="root"/> until the buffer is full or a page cannot be read; returns the bytes read.</summary>
    int Read(ulong va, Pa root, Span<byte> buffer);

    /// <summary>Translates <paramref name="va"/> under <paramref name="root"/>; false when it is not mapped.</summary>
    bool TryTranslate(ulong va, Pa root, out Pa pa);

    /// <summary>
    /// When <paramref name="va"/> is not mapped, the size of the aligned unmapped region around it that the failed
    /// walk proves (4 KiB for a missing PTE, 2 MiB for a missing PDE, 1 GiB, ...), so scans can skip it; 0 when mapped.
    /// </summary>
    ulong UnmappedExtent(ulong va, Pa root) => TryTranslate(va, root, out _) ? 0UL : 4096UL;

    /// <summary>The vCPU's registers, or null when the target has none (a raw image without a CR3).</summary>
    Registers? TryGetRegisters(VcpuId vcpu);

    /// <summary>The kernel's VMCOREINFO text when the target carries it (ELF and kdump images), else null.</summary>
    string? Vmcoreinfo { get; }
}

/// <summary>A <see cref="VmiCore"/> as an <see cref="IGuestMemory"/>. Like the core, used by one thread at a time.</summary>
public sealed class CoreGuestMemory(VmiCore core, string? vmcoreinfo = null) : IGuestMemory
{
    public PagingMode PagingMode => core.PagingMode;

    public int VcpuCount => core.Info.VcpuCount;

    public string? Vmcoreinfo => vmcoreinfo;

    public int Read(ulong va, Pa root, Span<byte> buffer)
    {
        if (buffer.Length == 0)
        {
            return 0;
        }

        if (va + (ulong)(buffer.Length - 1) < va)
        {
            return 0;
        }

        try
        {
            return core.Read(AccessContext.Paging(new Va(va), root), buffer, ReadMode.UntilFault).BytesRead;
        }
        catch (VmiException)
        {
            return 0;
        }
    }

    public bool TryTranslate(ulong va, Pa root, out Pa pa)
    {
        TranslationResult r;
        try
        {
            r = core.TryTranslateAddress(new AddressContext(new Va(va), root));
        }
        catch (VmiException)
        {
            pa = default;
            return false;
        }

        pa = r.Pa;
        return r.Success;
    }

    public ulong UnmappedExtent(ulong va, Pa root)
    {
        TranslationResult r;
        try
        {
            r = core.TryTranslateAddress(new AddressContext(new Va(va), root));
        }
        catch (VmiException)
        {
            return 4096;
        }

        return ExtentOf(r);
    }

    /// <summary>The unmapped region a translation's result proves: 0 when mapped.</summary>
    internal static ulong ExtentOf(in TranslationResult r)
    {
        if (r.Success)
        {
            return 0;
        }

        // a not-present entry at a level maps nothing below it; anything else (reserved bits, unreadable table) proves one page
        return r.Fault != WalkFaultKind.NotPresent ? 4096 : r.FaultLevel switch
        {
            PagingLevel.Pd => 1UL << 21,
            PagingLevel.Pdpt => 1UL << 30,
            PagingLevel.Pml4 => 1UL << 39,
            PagingLevel.Pml5 => 1UL << 48,
            _ => 4096,
        };
    }

    public Registers? TryGetRegisters(VcpuId vcpu)
    {
        if (!core.Supports(VmiCapability.QueryRegisters) || vcpu.Value >= core.Info.VcpuCount)
        {
            return null;
        }

        try
        {
            return core.GetRegisters(vcpu);
        }
        catch (VmiException)
        {
            return null;
        }
    }
}

/// <summary>
/// A <see cref="VmiGuest"/> as an <see cref="IGuestMemory"/>: every member is one call of the guest, which holds the
/// guest's lock for that call only. So any number of threads may use it, and other threads use the guest between its
/// reads (a list walked while the guest runs or is written may change under it: the Linux layer's readers bound and
/// check what they follow). A closed guest is an error (<see cref="GuestClosedException"/>), not an unreadable page.
/// </summary>
public sealed class GuestObjectMemory(VmiGuest guest, string? vmcoreinfo = null) : IGuestMemory
{
    public PagingMode PagingMode => guest.PagingMode;

    public int VcpuCount => guest.Info.VcpuCount;

    public string? Vmcoreinfo => vmcoreinfo;

    public int Read(ulong va, Pa root, Span<byte> buffer)
    {
        if (buffer.Length == 0 || va + (ulong)(buffer.Length - 1) < va)
        {
            return 0;
        }

        try
        {
            return guest.Read(AccessContext.Paging(new Va(va), root), buffer, ReadMode.UntilFault).BytesRead;
        }
        catch (VmiException e) when (e is not GuestClosedException)
        {
            return 0;
        }
    }

    public bool TryTranslate(ulong va, Pa root, out Pa pa)
    {
        TranslationResult r;
        try
        {
            r = guest.TryTranslateAddress(new AddressContext(new Va(va), root));
        }
        catch (VmiException e) when (e is not GuestClosedException)
        {
            pa = default;
            return false;
        }

        pa = r.Pa;
        return r.Success;
    }

    public ulong UnmappedExtent(ulong va, Pa root)
    {
        try
        {
            return CoreGuestMemory.ExtentOf(guest.TryTranslateAddress(new AddressContext(new Va(va), root)));
        }
        catch (VmiException e) when (e is not GuestClosedException)
        {
            return 4096;
        }
    }

    public Registers? TryGetRegisters(VcpuId vcpu)
    {
        if (!guest.Supports(VmiCapability.QueryRegisters) || vcpu.Value >= guest.Info.VcpuCount)
        {
            return null;
        }

        try
        {
            return guest.GetRegisters(vcpu);
        }
        catch (VmiException e) when (e is not GuestClosedException)
        {
            return null;
        }
    }
}
