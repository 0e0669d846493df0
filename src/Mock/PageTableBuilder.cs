using System.Text;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Mock;

/// <summary>
/// One address space (one page-table root) written as real AMD64 paging structures into a
/// <see cref="SparseMemory"/>, so Core's <see cref="Amd64.Translate{TReader}"/> walks exactly what a
/// processor would. Supports every paging mode: 32-bit with 4 MiB PSE pages, PAE with 2 MiB pages,
/// IA-32e 4-level and 5-level with 2 MiB and 1 GiB pages.
/// <para>
/// Table frames are taken from the memory at or above <see cref="TableBase"/> (skipping populated
/// frames). Non-leaf entries are Present|Writable|User, so the leaf's flags decide the effective
/// access; the leaf gets Present, the given flags, and PS for large pages.
/// </para>
/// </summary>
public sealed class PageTableBuilder
{
    /// <summary>Where page tables go unless told otherwise: 1 MiB.</summary>
    public static readonly Pa DefaultTableBase = new(0x10_0000);

    private const ulong Present = 1;
    private const ulong Writable = 2;
    private const ulong User = 4;
    private const ulong LargePage = 0x80;
    private const ulong NoExecuteBit = 1UL << 63;

    private const PageEntryFlags AllowedFlags = PageEntryFlags.Writable | PageEntryFlags.User | PageEntryFlags.WriteThrough
        | PageEntryFlags.CacheDisable | PageEntryFlags.Accessed | PageEntryFlags.Dirty | PageEntryFlags.Global | PageEntryFlags.NoExecute;

    private readonly ulong _frameMask;

    /// <summary>Creates an empty address space: allocates its root table.</summary>
    public PageTableBuilder(SparseMemory memory, PagingMode mode, Pa? tableBase = null)
    {
        ArgumentNullException.ThrowIfNull(memory);
        if (mode == PagingMode.Disabled)
        {
            throw new ArgumentException("Paging is disabled in that mode, so there are no page tables to build: choose Legacy32, Pae, Ia32e or Ia32eLa57.", nameof(mode));
        }

        if (!Enum.IsDefined(mode))
        {
            throw new ArgumentOutOfRangeException(nameof(mode), mode, "Unknown paging mode.");
        }

        Memory = memory;
        Mode = mode;
        TableBase = tableBase ?? DefaultTableBase;
        _frameMask = ((1UL << Amd64.MaxPhysicalAddressWidth) - 1) & ~Amd64.PageMask;
        Root = AllocateTable();
    }

    public SparseMemory Memory { get; }

    public PagingMode Mode { get; }

    /// <summary>Table frames are allocated from here upwards.</summary>
    public Pa TableBase { get; }

    /// <summary>The physical address of the root table (PML5, PML4, PDPT or PD).</summary>
    public Pa Root { get; }

    /// <summary>The value CR3 holds for this address space (the root; no PCID, no flags).</summary>
    public ulong Cr3 => Root.Value;

    /// <summary>The page sizes <paramref name="mode"/> can map.</summary>
    public static IReadOnlyList<PageSizeKind> PageSizesOf(PagingMode mode) => mode switch
    {
        PagingMode.Legacy32 => [PageSizeKind.Size4K, PageSizeKind.Size4M],
        PagingMode.Pae => [PageSizeKind.Size4K, PageSizeKind.Size2M],
        PagingMode.Ia32e or PagingMode.Ia32eLa57 => [PageSizeKind.Size4K, PageSizeKind.Size2M, PageSizeKind.Size1G],
        _ => [],
    };

    /// <summary>
    /// A new address space in the same memory whose upper half (the kernel half: PML4/PML5 entries
    /// 256-511, PAE PDPT entries 2-3, 32-bit PDEs 512-1023) shares this one's tables. The sharing is of
    /// the root entries present now: upper-half tables created later in one space are not seen by the other.
    /// </summary>
    public PageTableBuilder CreateAddressSpace(bool shareUpperHalf = true, Pa? tableBase = null)
    {
        var other = new PageTableBuilder(Memory, Mode, tableBase ?? TableBase);
        if (shareUpperHalf)
        {
            int entries = RootEntries;
            int size = EntrySize;
            byte[] upper = new byte[entries / 2 * size];
            Memory.Read(Root + (ulong)(entries / 2 * size), upper);
            Memory.Write(other.Root + (ulong)(entries / 2 * size), upper);
        }

        return other;
    }

    private int EntrySize => Mode == PagingMode.Legacy32 ? 4 : 8;

    private int RootEntries => Mode switch
    {
        PagingMode.Legacy32 => 1024,
        PagingMode.Pae => 4,
        _ => 512,
    };

    /// <summary>
    /// Maps <paramref name="size"/> bytes at <paramref name="va"/> to <paramref name="pa"/> with pages of
    /// <paramref name="pageSize"/>. All three must be aligned to the page size. Mapping over an existing
    /// mapping is an error (unmap first); the physical frames need not be populated.
    /// </summary>
    public PageTableBuilder Map(Va va, Pa pa, ulong size, PageSizeKind pageSize = PageSizeKind.Size4K, PageEntryFlags flags = PageEntryFlags.Writable)
    {
        CheckPageSize(pageSize);
        if ((flags & ~AllowedFlags) != 0)
        {
            throw new ArgumentException($"Flags {flags & ~AllowedFlags} are set by the builder itself or do not exist in a leaf entry; give only {AllowedFlags}.", nameof(flags));
        }

        if ((flags & PageEntryFlags.NoExecute) != 0 && Mode == PagingMode.Legacy32)
        {
            throw new ArgumentException("32-bit paging has no execute-disable bit: NoExecute needs Pae, Ia32e or Ia32eLa57.", nameof(flags));
        }

        ulong bytes = Amd64.BytesOf(pageSize);
        CheckAligned(va.Value, pa.Value, size, bytes, pageSize);
        CheckVirtualRange(va, size);
        ulong maxPa = Mode == PagingMode.Legacy32
            ? (pageSize == PageSizeKind.Size4M ? 1UL << 40 : 1UL << 32)
            : 1UL << Amd64.MaxPhysicalAddressWidth;
        if (pa.Value + size - 1 >= maxPa || pa.Value + size - 1 < pa.Value)
        {
            throw new ArgumentOutOfRangeException(nameof(pa), $"Physical range {pa} + 0x{size:x} does not fit the {Mode} page-entry format (below 0x{maxPa:x}).");
        }

        // Check the whole range first, so a conflict leaves the tables untouched.
        for (ulong off = 0; off < size; off += bytes)
        {
            EnsureFree(new Va(va.Value + off), pageSize);
        }

        for (ulong off = 0; off < size; off += bytes)
        {
            MapOne(new Va(va.Value + off), pa.Value + off, pageSize, flags);
        }

        return this;
    }

    /// <summary>Clears the leaf entries covering [<paramref name="va"/>, +<paramref name="size"/>). Pages not mapped are skipped; a range that cuts a large page is an error.</summary>
    public PageTableBuilder Unmap(Va va, ulong size = Amd64.PageSize)
    {
        if ((va.Value & Amd64.PageMask) != 0 || size == 0 || (size & Amd64.PageMask) != 0)
        {
            throw new ArgumentException($"Unmap works on whole 4 KiB pages: {va} and size 0x{size:x} must be multiples of 0x1000.", nameof(size));
        }

        CheckVirtualRange(va, size);
        ulong off = 0;
        while (off < size)
        {
            var at = new Va(va.Value + off);
            if (!TryFindLeaf(at, out Pa entryAddress, out ulong leafBytes))
            {
                off += Amd64.PageSize;
                continue;
            }

            ulong leafStart = at.Value & ~(leafBytes - 1);
            if (leafStart != at.Value || size - off < leafBytes)
            {
                throw new ArgumentException($"Unmapping {va} + 0x{size:x} would cut the {leafBytes >> 10} KiB page at 0x{leafStart:x}: unmap the whole page.", nameof(size));
            }

            WriteEntry(entryAddress, 0);
            off += leafBytes;
        }

        return this;
    }

    /// <summary>Translates through the tables written so far (what a processor would do).</summary>
    public TranslationResult Translate(Va va)
    {
        var reader = new MemoryTableReader(Memory);
        return Amd64.Translate(ref reader, Mode, Root, va);
    }

    /// <summary>Writes bytes at a virtual address, page by page through these tables. Every page must be mapped and may not be a page-table frame.</summary>
    public PageTableBuilder Write(Va va, ReadOnlySpan<byte> data)
    {
        // Resolve everything first so a fault leaves memory untouched.
        var pieces = new List<(Pa Pa, int Offset, int Length)>();
        int done = 0;
        while (done < data.Length)
        {
            ulong address = va.Value + (ulong)done;
            int chunk = Math.Min((int)(Amd64.PageSize - (address & Amd64.PageMask)), data.Length - done);
            TranslationResult r = Translate(new Va(address));
            if (!r.Success)
            {
                throw new PageFaultException(new Va(address), Root, r.FaultLevel, r.Fault);
            }

            if (Memory.IsPageTableFrame(Amd64.GfnFromPa(r.Pa)))
            {
                throw new ArgumentException($"Virtual address 0x{address:x} maps to {r.Pa}, which holds a page table: writing data there would corrupt the tables. Map the data to other frames, or move the page-table area (TableBase).", nameof(va));
            }

            pieces.Add((r.Pa, done, chunk));
            done += chunk;
        }

        foreach ((Pa p, int offset, int length) in pieces)
        {
            Memory.Write(p, data.Slice(offset, length));
        }

        return this;
    }

    /// <summary>Writes a NUL-terminated ASCII/UTF-8 string.</summary>
    public PageTableBuilder WriteString(Va va, string text) => Write(va, [.. Encoding.UTF8.GetBytes(text), 0]);

    /// <summary>Writes a NUL-terminated UTF-16LE string.</summary>
    public PageTableBuilder WriteWString(Va va, string text) => Write(va, [.. Encoding.Unicode.GetBytes(text), 0, 0]);

    /// <summary>Reads bytes at a virtual address through these tables.</summary>
    public void Read(Va va, Span<byte> destination)
    {
        int done = 0;
        while (done < destination.Length)
        {
            ulong address = va.Value + (ulong)done;
            int chunk = Math.Min((int)(Amd64.PageSize - (address & Amd64.PageMask)), destination.Length - done);
            TranslationResult r = Translate(new Va(address));
            if (!r.Success)
            {
                throw new PageFaultException(new Va(address), Root, r.FaultLevel, r.Fault);
            }

            Memory.Read(r.Pa, destination.Slice(done, chunk));
            done += chunk;
        }
    }

    // ------------------------------------------------------------------ internals

    private void CheckPageSize(PageSizeKind pageSize)
    {
        if (!PageSizesOf(Mode).Contains(pageSize))
        {
            throw new ArgumentException($"{Mode} paging cannot map {pageSize} pages: use one of {string.Join(", ", PageSizesOf(Mode))}.", nameof(pageSize));
        }
    }

    private static void CheckAligned(ulong va, ulong pa, ulong size, ulong bytes, PageSizeKind pageSize)
    {
        if (size == 0)
        {
            throw new ArgumentOutOfRangeException(nameof(size), "A mapping needs at least one page: give a size above zero.");
        }

        if ((va & (bytes - 1)) != 0 || (pa & (bytes - 1)) != 0 || (size & (bytes - 1)) != 0)
        {
            throw new ArgumentException($"With {pageSize} pages the virtual address (0x{va:x}), physical address (0x{pa:x}) and size (0x{size:x}) must all be multiples of 0x{bytes:x}.", nameof(size));
        }
    }

    private void CheckVirtualRange(Va va, ulong size)
    {
        ulong last = va.Value + size - 1;
        if (last < va.Value)
        {
            throw new ArgumentOutOfRangeException(nameof(size), $"{va} + 0x{size:x} wraps around the address space.");
        }

        if (Mode is PagingMode.Legacy32 or PagingMode.Pae)
        {
            if (last > uint.MaxValue)
            {
                throw new ArgumentOutOfRangeException(nameof(va), $"{Mode} paging translates 32-bit addresses: {va} + 0x{size:x} goes past 0xffffffff.");
            }

            return;
        }

        // Both ends canonical and on the same side of the hole (bit 63 equal).
        if (!Amd64.IsCanonical(va, Mode) || !Amd64.IsCanonical(new Va(last), Mode) || (long)(va.Value ^ last) < 0)
        {
            throw new NonCanonicalAddressException(Amd64.IsCanonical(va, Mode) ? new Va(last) : va, Mode);
        }
    }

    /// <summary>The levels of this mode, root first: (level, shift, entries, entry size).</summary>
    private IEnumerable<(PagingLevel Level, int Shift, int Bits)> Levels()
    {
        switch (Mode)
        {
            case PagingMode.Legacy32:
                yield return (PagingLevel.Pd, 22, 10);
                yield return (PagingLevel.Pt, 12, 10);
                break;
            case PagingMode.Pae:
                yield return (PagingLevel.Pdpt, 30, 2);
                yield return (PagingLevel.Pd, 21, 9);
                yield return (PagingLevel.Pt, 12, 9);
                break;
            default:
                if (Mode == PagingMode.Ia32eLa57)
                {
                    yield return (PagingLevel.Pml5, 48, 9);
                }

                yield return (PagingLevel.Pml4, 39, 9);
                yield return (PagingLevel.Pdpt, 30, 9);
                yield return (PagingLevel.Pd, 21, 9);
                yield return (PagingLevel.Pt, 12, 9);
                break;
        }
    }

    private static int LeafShift(PageSizeKind size) => size switch
    {
        PageSizeKind.Size4K => 12,
        PageSizeKind.Size2M => 21,
        PageSizeKind.Size4M => 22,
        _ => 30,
    };

    private Pa EntryAddress(Pa table, Va va, int shift, int bits)
    {
        ulong index = (va.Value >> shift) & ((1UL << bits) - 1);
        return table + (index * (ulong)EntrySize);
    }

    private ulong ReadEntry(Pa at) => EntrySize == 4 ? Memory.ReadU32(at) : Memory.ReadU64(at);

    private void WriteEntry(Pa at, ulong value)
    {
        if (EntrySize == 4)
        {
            Memory.WriteU32(at, (uint)value);
        }
        else
        {
            Memory.WriteU64(at, value);
        }
    }

    private Pa TableOf(ulong entry) => new(Mode == PagingMode.Legacy32 ? entry & 0xFFFF_F000UL : entry & _frameMask);

    private void EnsureFree(Va va, PageSizeKind pageSize)
    {
        int leafShift = LeafShift(pageSize);
        Pa table = Root;
        foreach ((PagingLevel level, int shift, int bits) in Levels())
        {
            Pa at = EntryAddress(table, va, shift, bits);
            ulong entry = ReadEntry(at);
            if ((entry & Present) == 0)
            {
                return;
            }

            if (shift == leafShift || IsLeaf(level, entry))
            {
                throw new InvalidOperationException($"{va} is already mapped (a {level} entry covers it): unmap it first.");
            }

            table = TableOf(entry);
        }
    }

    private void MapOne(Va va, ulong pa, PageSizeKind pageSize, PageEntryFlags flags)
    {
        int leafShift = LeafShift(pageSize);
        Pa table = Root;
        foreach ((PagingLevel level, int shift, int bits) in Levels())
        {
            Pa at = EntryAddress(table, va, shift, bits);
            if (shift == leafShift)
            {
                WriteEntry(at, LeafEntry(pa, pageSize, flags));
                return;
            }

            ulong entry = ReadEntry(at);
            if ((entry & Present) == 0)
            {
                Pa next = AllocateTable();
                entry = Mode == PagingMode.Pae && level == PagingLevel.Pdpt
                    ? next.Value | Present // PAE PDPTEs allow no W/U bits
                    : next.Value | Present | Writable | User;
                WriteEntry(at, entry);
            }

            table = TableOf(entry);
        }

        throw new InvalidOperationException("unreachable: no level matched the page size");
    }

    private ulong LeafEntry(ulong pa, PageSizeKind pageSize, PageEntryFlags flags)
    {
        ulong entry = Present | ((ulong)flags & 0x17E); // W, U, PWT, PCD, A, D, G (bit 8)
        if ((flags & PageEntryFlags.NoExecute) != 0)
        {
            entry |= NoExecuteBit;
        }

        if (pageSize == PageSizeKind.Size4K)
        {
            return entry | pa;
        }

        entry |= LargePage;
        if (pageSize == PageSizeKind.Size4M)
        {
            // PSE-36: physical bits 39:32 go to entry bits 20:13.
            return entry | (pa & 0xFFC0_0000UL) | (((pa >> 32) & 0xFF) << 13);
        }

        return entry | pa;
    }

    /// <summary>A PT entry, or a PD/PDPT entry with PS set where the mode allows large pages there.</summary>
    private bool IsLeaf(PagingLevel level, ulong entry) =>
        level == PagingLevel.Pt
        || ((entry & LargePage) != 0 && (level == PagingLevel.Pd || (level == PagingLevel.Pdpt && Mode is PagingMode.Ia32e or PagingMode.Ia32eLa57)));

    private bool TryFindLeaf(Va va, out Pa entryAddress, out ulong leafBytes)
    {
        Pa table = Root;
        foreach ((PagingLevel level, int shift, int bits) in Levels())
        {
            Pa at = EntryAddress(table, va, shift, bits);
            ulong entry = ReadEntry(at);
            if ((entry & Present) == 0)
            {
                break;
            }

            if (IsLeaf(level, entry))
            {
                entryAddress = at;
                leafBytes = 1UL << shift;
                return true;
            }

            table = TableOf(entry);
        }

        entryAddress = default;
        leafBytes = 0;
        return false;
    }

    private Pa AllocateTable()
    {
        ulong limit = Mode is PagingMode.Legacy32 or PagingMode.Pae ? 0xF_FFFF : ulong.MaxValue;
        Gfn gfn = Memory.AllocatePageTableFrame(Amd64.GfnFromPa(TableBase), new Gfn(limit));
        return Amd64.PaFromGfn(gfn);
    }

    /// <summary>Reads paging entries straight from sparse memory (absent frames read as unreadable).</summary>
    internal readonly struct MemoryTableReader(SparseMemory memory) : IPageTableReader
    {
        public bool TryReadU64(ulong pa, out ulong value)
        {
            Span<byte> b = stackalloc byte[8];
            bool ok = memory.TryRead(new Pa(pa), b, out _);
            value = ok ? System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(b) : 0;
            return ok;
        }

        public bool TryReadU32(ulong pa, out uint value)
        {
            Span<byte> b = stackalloc byte[4];
            bool ok = memory.TryRead(new Pa(pa), b, out _);
            value = ok ? System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(b) : 0;
            return ok;
        }
    }
}
