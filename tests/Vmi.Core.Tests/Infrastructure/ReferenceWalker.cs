using Vmi.Core.Arch.Amd64;

namespace Vmi.Core.Tests.Infrastructure;

/// <summary>One entry the reference walk read.</summary>
public readonly record struct RefEntry(PagingLevel Level, ulong TableAddress, int Index, ulong EntryAddress, ulong Value);

/// <summary>The reference walk's answer, in the tests' own terms.</summary>
public sealed record RefResult(
    bool Ok,
    ulong Pa,
    PageSizeKind Size,
    PageEntryFlags Flags,
    WalkFaultKind Fault,
    PagingLevel Level,
    IReadOnlyList<RefEntry> Entries);

/// <summary>
/// An address translation written straight from the Intel SDM, volume 3A, chapter 4 ("Paging"), with
/// no code shared with src/Core/Arch/Amd64. Deliberately plain: one method per paging mode, every
/// reserved-bit rule spelled out next to the table of the SDM it comes from. Assumes PSE-36 and
/// 1 GiB pages, as every modern processor has them; CR4.PSE and IA32_EFER.NXE are given (both 1 unless
/// told otherwise, as every modern guest has them).
/// </summary>
/// <remarks>
/// Flags reported on success: Present; Writable when R/W is 1 in every entry that has an R/W bit;
/// User likewise for U/S; NoExecute when any entry sets XD (bit 63); WriteThrough, CacheDisable,
/// Accessed, Dirty and Global from the entry that maps the page; LargePage when the page is larger
/// than 4 KiB.
/// </remarks>
public static class ReferenceWalker
{
    /// <summary>Reads guest-physical memory for the walk; null when the frame is not backed.</summary>
    public delegate byte[]? FrameSource(ulong gfn);

    /// <summary>Bits hi..lo of v (inclusive), shifted down to bit 0.</summary>
    private static ulong Bits(ulong v, int hi, int lo)
    {
        int n = hi - lo + 1;
        ulong field = v >> lo;
        return n >= 64 ? field : field & ((1UL << n) - 1);
    }

    /// <summary>A mask with bits hi..lo set; empty when hi &lt; lo.</summary>
    private static ulong Mask(int hi, int lo)
    {
        ulong r = 0;
        for (int b = lo; b <= hi; b++)
        {
            r |= 1UL << b;
        }

        return r;
    }

    private static bool Bit(ulong v, int b) => ((v >> b) & 1) == 1;

    private static bool Read(FrameSource mem, ulong pa, int size, out ulong value)
    {
        value = 0;
        byte[]? frame = mem(pa >> 12);
        if (frame is null)
        {
            return false;
        }

        int off = (int)(pa & 0xFFF);
        for (int i = size - 1; i >= 0; i--)
        {
            value = (value << 8) | frame[off + i];
        }

        return true;
    }

    /// <param name="cr4Pse">CR4.PSE: only 32-bit paging looks at it (4.3); PAE and IA-32e paging have 2 MiB pages regardless.</param>
    /// <param name="eferNxe">IA32_EFER.NXE: only PAE and IA-32e paging look at it (bit 63 of their 8-byte entries).</param>
    public static RefResult Translate(FrameSource mem, PagingMode mode, ulong root, ulong va, int maxPhyAddr, bool cr4Pse = true, bool eferNxe = true) => mode switch
    {
        PagingMode.Disabled => Disabled(va),
        PagingMode.Legacy32 => Legacy(mem, root, va, maxPhyAddr, cr4Pse),
        PagingMode.Pae => Pae(mem, root, va, maxPhyAddr, eferNxe),
        PagingMode.Ia32e => Long(mem, 4, root, va, maxPhyAddr, eferNxe),
        PagingMode.Ia32eLa57 => Long(mem, 5, root, va, maxPhyAddr, eferNxe),
        _ => throw new ArgumentOutOfRangeException(nameof(mode)),
    };

    /// <summary>
    /// Bit 63 of a PAE or IA-32e entry (tables 4-8 to 4-20): "If IA32_EFER.NXE = 1, execute-disable;
    /// otherwise, reserved (must be 0)". A PDPTE of PAE paging has it reserved whatever NXE says (table 4-8).
    /// </summary>
    private static ulong XdReservedUnlessNxe(bool nxe) => nxe ? 0 : Mask(63, 63);

    private static RefResult Fail(WalkFaultKind kind, PagingLevel level, List<RefEntry> entries) =>
        new(false, 0, PageSizeKind.Size4K, PageEntryFlags.None, kind, level, entries);

    private static RefResult Disabled(ulong va)
    {
        // Without paging a linear address is physical; linear addresses are 32 bits wide.
        if (va >> 32 != 0)
        {
            return Fail(WalkFaultKind.NonCanonical, PagingLevel.None, []);
        }

        return new RefResult(true, va, PageSizeKind.Size4K, PageEntryFlags.Present | PageEntryFlags.Writable | PageEntryFlags.User, WalkFaultKind.None, PagingLevel.None, []);
    }

    private static PageEntryFlags LeafFlags(ulong entry, bool large)
    {
        PageEntryFlags f = PageEntryFlags.Present;
        if (Bit(entry, 3))
        {
            f |= PageEntryFlags.WriteThrough;
        }

        if (Bit(entry, 4))
        {
            f |= PageEntryFlags.CacheDisable;
        }

        if (Bit(entry, 5))
        {
            f |= PageEntryFlags.Accessed;
        }

        if (Bit(entry, 6))
        {
            f |= PageEntryFlags.Dirty;
        }

        if (Bit(entry, 8))
        {
            f |= PageEntryFlags.Global;
        }

        if (large)
        {
            f |= PageEntryFlags.LargePage;
        }

        return f;
    }

    /// <summary>Rights over the path: every R/W and U/S must be 1; XD in any entry forbids fetches.</summary>
    private static PageEntryFlags Rights(IEnumerable<ulong> pathWithRw, IEnumerable<ulong> pathWithXd)
    {
        bool w = pathWithRw.All(e => Bit(e, 1));
        bool u = pathWithRw.All(e => Bit(e, 2));
        bool xd = pathWithXd.Any(e => Bit(e, 63));
        PageEntryFlags f = PageEntryFlags.None;
        if (w)
        {
            f |= PageEntryFlags.Writable;
        }

        if (u)
        {
            f |= PageEntryFlags.User;
        }

        if (xd)
        {
            f |= PageEntryFlags.NoExecute;
        }

        return f;
    }

    // ------------------------------------------------------------------ 32-bit paging (SDM 4.3)

    private static RefResult Legacy(FrameSource mem, ulong cr3Root, ulong va, int maxPhyAddr, bool pse)
    {
        var entries = new List<RefEntry>();
        if (va >> 32 != 0)
        {
            return Fail(WalkFaultKind.NonCanonical, PagingLevel.Pd, entries);
        }

        // Table 4-3: CR3 bits 31:12 locate the page directory. Linear bits 31:22 select the PDE.
        ulong pd = Bits(cr3Root, 31, 12) << 12;
        int pdi = (int)Bits(va, 31, 22);
        ulong pdeAddr = pd + ((ulong)pdi * 4);
        if (!Read(mem, pdeAddr, 4, out ulong pde))
        {
            return Fail(WalkFaultKind.TableUnreadable, PagingLevel.Pd, entries);
        }

        entries.Add(new RefEntry(PagingLevel.Pd, pd, pdi, pdeAddr, pde));
        if (!Bit(pde, 0))
        {
            return Fail(WalkFaultKind.NotPresent, PagingLevel.Pd, entries);
        }

        // 4.3: "If CR4.PSE = 1 and the PDE's PS flag is 1, the PDE maps a 4-MByte page. If CR4.PSE = 0 or the
        // PS flag is 0, the PDE references a page table" (table 4-5: bit 7 is ignored when CR4.PSE = 0).
        if (pse && Bit(pde, 7))
        {
            // Table 4-4, a PDE that maps a 4-MByte page. M is at most 40 here (PSE-36).
            int m = Math.Min(maxPhyAddr, 40);
            ulong reserved = 1UL << 21;
            if (m < 40)
            {
                reserved |= Mask(20, m - 19); // PA bits 39:M would come from PDE bits 20:(M-19)
            }

            if ((pde & reserved) != 0)
            {
                return Fail(WalkFaultKind.ReservedBit, PagingLevel.Pd, entries);
            }

            ulong pa = (Bits(pde, 31, 22) << 22) | (Bits(pde, 20, 13) << 32) | Bits(va, 21, 0);
            return new RefResult(true, pa, PageSizeKind.Size4M, LeafFlags(pde, true) | Rights([pde], []), WalkFaultKind.None, PagingLevel.None, entries);
        }

        // Table 4-5: PDE bits 31:12 locate the page table. Linear bits 21:12 select the PTE.
        ulong pt = Bits(pde, 31, 12) << 12;
        int pti = (int)Bits(va, 21, 12);
        ulong pteAddr = pt + ((ulong)pti * 4);
        if (!Read(mem, pteAddr, 4, out ulong pte))
        {
            return Fail(WalkFaultKind.TableUnreadable, PagingLevel.Pt, entries);
        }

        entries.Add(new RefEntry(PagingLevel.Pt, pt, pti, pteAddr, pte));
        if (!Bit(pte, 0))
        {
            return Fail(WalkFaultKind.NotPresent, PagingLevel.Pt, entries);
        }

        // Table 4-6: no reserved bits in a 32-bit PTE (bit 7 is PAT).
        ulong pa4k = (Bits(pte, 31, 12) << 12) | Bits(va, 11, 0);
        return new RefResult(true, pa4k, PageSizeKind.Size4K, LeafFlags(pte, false) | Rights([pde, pte], []), WalkFaultKind.None, PagingLevel.None, entries);
    }

    // ------------------------------------------------------------------ PAE paging (SDM 4.4)

    private static RefResult Pae(FrameSource mem, ulong cr3Root, ulong va, int m, bool nxe)
    {
        var entries = new List<RefEntry>();
        if (va >> 32 != 0)
        {
            return Fail(WalkFaultKind.NonCanonical, PagingLevel.Pdpt, entries);
        }

        // Table 4-7: CR3 bits 31:5 locate the 32-byte PDPT; linear bits 31:30 select one of 4 PDPTEs.
        ulong pdpt = Bits(cr3Root, 31, 5) << 5;
        int i3 = (int)Bits(va, 31, 30);
        ulong pdpteAddr = pdpt + ((ulong)i3 * 8);
        if (!Read(mem, pdpteAddr, 8, out ulong pdpte))
        {
            return Fail(WalkFaultKind.TableUnreadable, PagingLevel.Pdpt, entries);
        }

        entries.Add(new RefEntry(PagingLevel.Pdpt, pdpt, i3, pdpteAddr, pdpte));
        if (!Bit(pdpte, 0))
        {
            return Fail(WalkFaultKind.NotPresent, PagingLevel.Pdpt, entries);
        }

        // Table 4-8: PDPTE bits 2:1, 8:5 and 63:M are reserved.
        if ((pdpte & (Mask(2, 1) | Mask(8, 5) | Mask(63, m))) != 0)
        {
            return Fail(WalkFaultKind.ReservedBit, PagingLevel.Pdpt, entries);
        }

        ulong pd = Bits(pdpte, m - 1, 12) << 12;
        int i2 = (int)Bits(va, 29, 21);
        ulong pdeAddr = pd + ((ulong)i2 * 8);
        if (!Read(mem, pdeAddr, 8, out ulong pde))
        {
            return Fail(WalkFaultKind.TableUnreadable, PagingLevel.Pd, entries);
        }

        entries.Add(new RefEntry(PagingLevel.Pd, pd, i2, pdeAddr, pde));
        if (!Bit(pde, 0))
        {
            return Fail(WalkFaultKind.NotPresent, PagingLevel.Pd, entries);
        }

        if (Bit(pde, 7))
        {
            // Table 4-9: 2-MByte page; bits 20:13 and 62:M reserved, bit 63 XD (reserved without NXE).
            if ((pde & (Mask(20, 13) | Mask(62, m) | XdReservedUnlessNxe(nxe))) != 0)
            {
                return Fail(WalkFaultKind.ReservedBit, PagingLevel.Pd, entries);
            }

            ulong pa2m = (Bits(pde, m - 1, 21) << 21) | Bits(va, 20, 0);
            return new RefResult(true, pa2m, PageSizeKind.Size2M, LeafFlags(pde, true) | Rights([pde], [pde]), WalkFaultKind.None, PagingLevel.None, entries);
        }

        // Table 4-10: PDE that references a page table; bits 62:M reserved, 63 XD (reserved without NXE).
        if ((pde & (Mask(62, m) | XdReservedUnlessNxe(nxe))) != 0)
        {
            return Fail(WalkFaultKind.ReservedBit, PagingLevel.Pd, entries);
        }

        ulong pt = Bits(pde, m - 1, 12) << 12;
        int i1 = (int)Bits(va, 20, 12);
        ulong pteAddr = pt + ((ulong)i1 * 8);
        if (!Read(mem, pteAddr, 8, out ulong pte))
        {
            return Fail(WalkFaultKind.TableUnreadable, PagingLevel.Pt, entries);
        }

        entries.Add(new RefEntry(PagingLevel.Pt, pt, i1, pteAddr, pte));
        if (!Bit(pte, 0))
        {
            return Fail(WalkFaultKind.NotPresent, PagingLevel.Pt, entries);
        }

        // Table 4-11: PTE bits 62:M reserved, 63 XD (reserved without NXE).
        if ((pte & (Mask(62, m) | XdReservedUnlessNxe(nxe))) != 0)
        {
            return Fail(WalkFaultKind.ReservedBit, PagingLevel.Pt, entries);
        }

        ulong pa = (Bits(pte, m - 1, 12) << 12) | Bits(va, 11, 0);
        return new RefResult(true, pa, PageSizeKind.Size4K, LeafFlags(pte, false) | Rights([pde, pte], [pde, pte]), WalkFaultKind.None, PagingLevel.None, entries);
    }

    // ------------------------------------------------------------------ 4-level and 5-level paging (SDM 4.5)

    private static RefResult Long(FrameSource mem, int levels, ulong cr3Root, ulong va, int m, bool nxe)
    {
        var entries = new List<RefEntry>();

        // 4.5.1: a linear address is canonical when bits 63:47 (63:56 with LA57) are all equal.
        int top = levels == 5 ? 56 : 47;
        ulong upper = Bits(va, 63, top);
        if (upper != 0 && upper != Mask(63 - top, 0))
        {
            return Fail(WalkFaultKind.NonCanonical, (PagingLevel)levels, entries);
        }

        // Tables 4-12..4-20. Linear-address bits for each level: PML5 56:48, PML4 47:39, PDPT 38:30, PD 29:21, PT 20:12.
        ulong table = Bits(cr3Root, m - 1, 12) << 12; // CR3 bits M-1:12
        var path = new List<ulong>();
        for (int level = levels; level >= 1; level--)
        {
            int lo = 12 + (9 * (level - 1));
            int index = (int)Bits(va, lo + 8, lo);
            ulong entryAddr = table + ((ulong)index * 8);
            if (!Read(mem, entryAddr, 8, out ulong e))
            {
                return Fail(WalkFaultKind.TableUnreadable, (PagingLevel)level, entries);
            }

            entries.Add(new RefEntry((PagingLevel)level, table, index, entryAddr, e));
            if (!Bit(e, 0))
            {
                return Fail(WalkFaultKind.NotPresent, (PagingLevel)level, entries);
            }

            path.Add(e);
            ulong reserved = Mask(51, m) | XdReservedUnlessNxe(nxe); // bits 51:M in every entry (62:52 are ignored), 63 without NXE
            bool maps = level == 1 || (Bit(e, 7) && level <= 3);
            if (level >= 4)
            {
                reserved |= 1UL << 7; // PS must be 0 in a PML5E and a PML4E
            }
            else if (maps && level == 3)
            {
                reserved |= Mask(29, 13); // 1-GByte page: bits 29:13 reserved (12 is PAT)
            }
            else if (maps && level == 2)
            {
                reserved |= Mask(20, 13); // 2-MByte page: bits 20:13 reserved (12 is PAT)
            }

            if ((e & reserved) != 0)
            {
                return Fail(WalkFaultKind.ReservedBit, (PagingLevel)level, entries);
            }

            if (maps)
            {
                ulong pa;
                PageSizeKind size;
                if (level == 3)
                {
                    pa = (Bits(e, m - 1, 30) << 30) | Bits(va, 29, 0);
                    size = PageSizeKind.Size1G;
                }
                else if (level == 2)
                {
                    pa = (Bits(e, m - 1, 21) << 21) | Bits(va, 20, 0);
                    size = PageSizeKind.Size2M;
                }
                else
                {
                    pa = (Bits(e, m - 1, 12) << 12) | Bits(va, 11, 0);
                    size = PageSizeKind.Size4K;
                }

                return new RefResult(true, pa, size, LeafFlags(e, level > 1) | Rights(path, path), WalkFaultKind.None, PagingLevel.None, entries);
            }

            table = Bits(e, m - 1, 12) << 12;
        }

        throw new InvalidOperationException("the walk ends at the page table");
    }
}
