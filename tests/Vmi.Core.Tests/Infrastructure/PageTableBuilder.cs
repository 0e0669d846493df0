using Vmi.Core.Arch.Amd64;

namespace Vmi.Core.Tests.Infrastructure;

/// <summary>Bits of a paging-structure entry, for building tables in tests.</summary>
public static class Pte
{
    public const ulong P = 1UL << 0;
    public const ulong W = 1UL << 1;
    public const ulong U = 1UL << 2;
    public const ulong Pwt = 1UL << 3;
    public const ulong Pcd = 1UL << 4;
    public const ulong A = 1UL << 5;
    public const ulong D = 1UL << 6;
    public const ulong Ps = 1UL << 7;
    public const ulong G = 1UL << 8;
    public const ulong LargePat = 1UL << 12;
    public const ulong Xd = 1UL << 63;
}

/// <summary>
/// Writes real AMD64 paging structures into a <see cref="SparseDriver"/>'s memory: allocate a root,
/// then <see cref="Map"/> virtual pages of any size the mode has. Tables come from a bump allocator.
/// </summary>
public sealed class PageTableBuilder
{
    private readonly SparseDriver _mem;
    private ulong _nextFrame;

    public PageTableBuilder(SparseDriver mem, PagingMode mode, ulong firstTableFrame = 0x100)
    {
        _mem = mem;
        Mode = mode;
        _nextFrame = firstTableFrame;
        ulong rootFrame = AllocateTable();
        // A PAE PDPT is 32 bytes at any 32-byte boundary: put it off the frame start to prove CR3[11:5] is used.
        Root = mode == PagingMode.Pae ? (rootFrame << 12) + 0x40 : rootFrame << 12;
    }

    public PagingMode Mode { get; }

    public ulong Root { get; }

    public Pa RootPa => new(Root);

    private int EntrySize => Mode == PagingMode.Legacy32 ? 4 : 8;

    private int TopLevel => Mode switch
    {
        PagingMode.Legacy32 => 2,
        PagingMode.Pae => 3,
        PagingMode.Ia32e => 4,
        PagingMode.Ia32eLa57 => 5,
        _ => throw new InvalidOperationException("no tables without paging"),
    };

    public ulong AllocateTable()
    {
        ulong f = _nextFrame++;
        _mem.Frame(f); // backed and zero
        return f;
    }

    private int Index(ulong va, int level)
    {
        if (Mode == PagingMode.Legacy32)
        {
            return (int)(level == 2 ? (va >> 22) & 0x3FF : (va >> 12) & 0x3FF);
        }

        if (Mode == PagingMode.Pae && level == 3)
        {
            return (int)((va >> 30) & 3);
        }

        return (int)((va >> (12 + (9 * (level - 1)))) & 0x1FF);
    }

    private ulong ReadEntry(ulong pa) => EntrySize == 4
        ? BitConverter.ToUInt32(_mem.Peek(pa, 4))
        : BitConverter.ToUInt64(_mem.Peek(pa, 8));

    private void WriteEntry(ulong pa, ulong value)
    {
        if (EntrySize == 4)
        {
            _mem.PokeU32(pa, checked((uint)value));
        }
        else
        {
            _mem.PokeU64(pa, value);
        }
    }

    private static int LeafLevel(PageSizeKind size) => size switch
    {
        PageSizeKind.Size4K => 1,
        PageSizeKind.Size2M or PageSizeKind.Size4M => 2,
        PageSizeKind.Size1G => 3,
        _ => throw new ArgumentOutOfRangeException(nameof(size)),
    };

    /// <summary>The physical address of the entry for <paramref name="va"/> at <paramref name="level"/> (the path must exist above it).</summary>
    public ulong EntryAddress(ulong va, int level)
    {
        ulong table = Mode == PagingMode.Pae ? Root & 0xFFFF_FFE0 : Root;
        for (int l = TopLevel; l > level; l--)
        {
            ulong e = ReadEntry(table + ((ulong)Index(va, l) * (ulong)EntrySize));
            if ((e & Pte.P) == 0)
            {
                throw new InvalidOperationException($"no table at level {l - 1} for 0x{va:x}");
            }

            table = EntrySize == 4 ? e & 0xFFFF_F000 : e & 0x000F_FFFF_FFFF_F000;
        }

        return table + ((ulong)Index(va, level) * (ulong)EntrySize);
    }

    public ulong Entry(ulong va, int level) => ReadEntry(EntryAddress(va, level));

    public void SetEntry(ulong va, int level, ulong value) => WriteEntry(EntryAddress(va, level), value);

    /// <summary>
    /// Maps the page of <paramref name="size"/> holding <paramref name="va"/> to <paramref name="pa"/>, with
    /// <paramref name="leafBits"/> (P is added) in the leaf and <paramref name="tableBits"/> in new intermediate entries.
    /// </summary>
    public PageTableBuilder Map(ulong va, ulong pa, PageSizeKind size = PageSizeKind.Size4K, ulong leafBits = Pte.W, ulong tableBits = Pte.P | Pte.W | Pte.U)
    {
        int leaf = LeafLevel(size);
        ulong table = Mode == PagingMode.Pae ? Root & 0xFFFF_FFE0 : Root;
        for (int l = TopLevel; l > leaf; l--)
        {
            ulong ea = table + ((ulong)Index(va, l) * (ulong)EntrySize);
            ulong e = ReadEntry(ea);
            bool mapsPage = (e & Pte.Ps) != 0 && (l == 2 || (l == 3 && Mode != PagingMode.Pae));
            if ((e & Pte.P) == 0 || mapsPage)
            {
                // No table here yet, or a large page: put a new table in its place.
                ulong frame = AllocateTable();
                // A PAE PDPTE has no R/W or U/S bits (they are reserved): only P.
                e = (frame << 12) | (Mode == PagingMode.Pae && l == 3 ? Pte.P : tableBits | Pte.P);
                WriteEntry(ea, e);
            }

            table = EntrySize == 4 ? e & 0xFFFF_F000 : e & 0x000F_FFFF_FFFF_F000;
        }

        ulong value = pa | leafBits | Pte.P | (leaf > 1 ? Pte.Ps : 0);
        if (size == PageSizeKind.Size4M)
        {
            // PSE-36: physical bits 39:32 go in PDE bits 20:13.
            value = (pa & 0xFFC0_0000) | (((pa >> 32) & 0xFF) << 13) | leafBits | Pte.P | Pte.Ps;
        }

        WriteEntry(table + ((ulong)Index(va, leaf) * (ulong)EntrySize), value);
        return this;
    }

    /// <summary>Maps <paramref name="bytes"/> of consecutive 4 KiB pages from <paramref name="va"/> to fresh data frames starting at <paramref name="firstDataFrame"/>.</summary>
    public PageTableBuilder MapRange(ulong va, ulong bytes, ulong firstDataFrame, ulong leafBits = Pte.W)
    {
        for (ulong off = 0; off < bytes; off += 4096)
        {
            ulong frame = firstDataFrame + (off >> 12);
            _mem.Frame(frame);
            Map(va + off, frame << 12, PageSizeKind.Size4K, leafBits);
        }

        return this;
    }
}
