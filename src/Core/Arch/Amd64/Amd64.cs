using System.Runtime.CompilerServices;

namespace Vmi.Core.Arch.Amd64;

/// <summary>AMD64 architecture facts and address translation in every paging mode.</summary>
public static class Amd64
{
    public const int PageShift = 12;
    public const uint PageSize = 1u << PageShift;
    public const ulong PageMask = PageSize - 1;

    /// <summary>The largest physical-address width the architecture allows (MAXPHYADDR).</summary>
    public const int MaxPhysicalAddressWidth = 52;

    public const ulong Cr0Pg = 1UL << 31;
    public const ulong Cr4Pse = 1UL << 4;
    public const ulong Cr4Pae = 1UL << 5;
    public const ulong Cr4La57 = 1UL << 12;
    public const ulong EferLme = 1UL << 8;
    public const ulong EferLma = 1UL << 10;
    public const ulong EferNxe = 1UL << 11;

    public static Gfn GfnFromPa(Pa pa) => new(pa.Value >> PageShift);

    public static Pa PaFromGfn(Gfn gfn) => new(gfn.Value << PageShift);

    public static uint PaOffset(Pa pa) => (uint)(pa.Value & PageMask);

    public static PagingMode GetPagingMode(Registers registers)
    {
        ArgumentNullException.ThrowIfNull(registers);
        return GetPagingMode(registers.Cr0, registers.Cr4, registers.MsrEfer);
    }

    public static PagingMode GetPagingMode(ulong cr0, ulong cr4, ulong efer)
    {
        if ((cr0 & Cr0Pg) == 0)
        {
            return PagingMode.Disabled;
        }

        if ((cr4 & Cr4Pae) == 0)
        {
            return PagingMode.Legacy32;
        }

        if ((efer & (EferLma | EferLme)) == 0)
        {
            return PagingMode.Pae;
        }

        return (cr4 & Cr4La57) != 0 ? PagingMode.Ia32eLa57 : PagingMode.Ia32e;
    }

    public static PagingFeatures GetPagingFeatures(Registers registers)
    {
        ArgumentNullException.ThrowIfNull(registers);
        return GetPagingFeatures(registers.Cr4, registers.MsrEfer);
    }

    /// <summary>The features CR4.PSE and IA32_EFER.NXE turn on.</summary>
    public static PagingFeatures GetPagingFeatures(ulong cr4, ulong efer) =>
        ((cr4 & Cr4Pse) != 0 ? PagingFeatures.Pse : PagingFeatures.None)
        | ((efer & EferNxe) != 0 ? PagingFeatures.Nxe : PagingFeatures.None);

    /// <summary>The root table's physical address from CR3: PCID and flag bits masked for the mode.</summary>
    public static Pa RootFromCr3(ulong cr3, PagingMode mode) => mode switch
    {
        PagingMode.Legacy32 => new Pa(cr3 & 0xFFFF_F000UL),
        PagingMode.Pae => new Pa(cr3 & 0xFFFF_FFE0UL),
        _ => new Pa(cr3 & 0x000F_FFFF_FFFF_F000UL),
    };

    /// <summary>Number of virtual-address bits the mode translates.</summary>
    public static int VirtualAddressWidth(PagingMode mode) => mode switch
    {
        PagingMode.Ia32e => 48,
        PagingMode.Ia32eLa57 => 57,
        _ => 32,
    };

    /// <summary>True if <paramref name="va"/> is canonical in <paramref name="mode"/> (always true outside IA-32e).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsCanonical(Va va, PagingMode mode)
    {
        int width = mode switch
        {
            PagingMode.Ia32e => 48,
            PagingMode.Ia32eLa57 => 57,
            _ => 0,
        };
        if (width == 0)
        {
            return va.Value <= uint.MaxValue;
        }

        long sign = (long)va.Value >> (width - 1);
        return sign == 0 || sign == -1;
    }

    /// <summary>Sign-extends a virtual address from the mode's width (e.g. 0x0000_8000_0000_0000 to 0xffff_8000_0000_0000).</summary>
    public static Va Canonicalize(Va va, PagingMode mode)
    {
        int width = VirtualAddressWidth(mode);
        if (width == 32)
        {
            return new Va(va.Value & uint.MaxValue);
        }

        int shift = 64 - width;
        return new Va((ulong)(((long)va.Value << shift) >> shift));
    }

    public static PageEntryFlags EntryFlags(ulong entry)
    {
        var flags = (PageEntryFlags)(entry & 0x1FF);
        if ((entry & (1UL << 63)) != 0)
        {
            flags |= PageEntryFlags.NoExecute;
        }

        return flags;
    }

    /// <summary>Bytes covered by a page of <paramref name="size"/>.</summary>
    public static ulong BytesOf(PageSizeKind size) => size switch
    {
        PageSizeKind.Size4K => 1UL << 12,
        PageSizeKind.Size2M => 1UL << 21,
        PageSizeKind.Size4M => 1UL << 22,
        _ => 1UL << 30,
    };

    /// <summary>
    /// Translates <paramref name="va"/> under <paramref name="root"/>. Failures are returned, not thrown.
    /// When <paramref name="trace"/> is given, every entry visited is appended to it. <paramref name="features"/>
    /// says whether CR4.PSE and IA32_EFER.NXE are on (both unless told otherwise).
    /// </summary>
    public static TranslationResult Translate<TReader>(
        ref TReader reader,
        PagingMode mode,
        Pa root,
        Va va,
        int physicalAddressWidth = MaxPhysicalAddressWidth,
        List<PageWalkEntry>? trace = null,
        PagingFeatures features = PagingFeatures.All)
        where TReader : IPageTableReader
    {
        return mode switch
        {
            PagingMode.Ia32e => WalkLong(ref reader, 4, root, va, physicalAddressWidth, features, trace),
            PagingMode.Ia32eLa57 => WalkLong(ref reader, 5, root, va, physicalAddressWidth, features, trace),
            PagingMode.Pae => WalkPae(ref reader, root, va, physicalAddressWidth, features, trace),
            PagingMode.Legacy32 => WalkLegacy(ref reader, root, va, physicalAddressWidth, features, trace),
            _ => va.Value <= uint.MaxValue
                ? new TranslationResult(new Pa(va.Value), PageSizeKind.Size4K, PageEntryFlags.Present | PageEntryFlags.Writable | PageEntryFlags.User, WalkFaultKind.None, PagingLevel.None)
                : TranslationResult.Failed(WalkFaultKind.NonCanonical, PagingLevel.None),
        };
    }

    /// <summary>Translates and records every level: the detailed form behind <c>Resolve-VmiAddress -Detailed</c>.</summary>
    public static PageWalk Walk<TReader>(ref TReader reader, PagingMode mode, Pa root, Va va, int physicalAddressWidth = MaxPhysicalAddressWidth, PagingFeatures features = PagingFeatures.All)
        where TReader : IPageTableReader
    {
        var entries = new List<PageWalkEntry>(5);
        TranslationResult result = Translate(ref reader, mode, root, va, physicalAddressWidth, entries, features);
        return new PageWalk(va, root, mode, entries, result) { Features = features };
    }

    private static ulong FrameMask(int physicalAddressWidth)
    {
        int w = Math.Clamp(physicalAddressWidth, 32, MaxPhysicalAddressWidth);
        return ((1UL << w) - 1) & ~PageMask;
    }

    /// <summary>Bits 51..MAXPHYADDR of an entry: reserved, must be zero.</summary>
    private static ulong ReservedHighMask(int physicalAddressWidth)
    {
        int w = Math.Clamp(physicalAddressWidth, 32, MaxPhysicalAddressWidth);
        return ((1UL << MaxPhysicalAddressWidth) - 1) & ~((1UL << w) - 1);
    }

    /// <summary>Bit 63 when IA32_EFER.NXE is off: then it is reserved in every PAE and IA-32e entry, not execute-disable.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong ReservedXd(PagingFeatures features) => (features & PagingFeatures.Nxe) != 0 ? 0 : 1UL << 63;

    private static TranslationResult WalkLong<TReader>(ref TReader reader, int levels, Pa root, Va va, int paWidth, PagingFeatures features, List<PageWalkEntry>? trace)
        where TReader : IPageTableReader
    {
        int vaWidth = levels == 5 ? 57 : 48;
        long sign = (long)va.Value >> (vaWidth - 1);
        if (sign != 0 && sign != -1)
        {
            return TranslationResult.Failed(WalkFaultKind.NonCanonical, (PagingLevel)levels);
        }

        WalkShortcut ignored = default;
        return WalkLongFrom(ref reader, levels, root.Value & FrameMask(paWidth), PageEntryFlags.Writable | PageEntryFlags.User, va, paWidth, features, trace, ref ignored);
    }

    /// <summary>
    /// What a 4- or 5-level walk found above the page table for one 2 MiB region: the page table's address and
    /// the rights accumulated on the way (like a processor's paging-structure cache of PDEs). Kept by
    /// <see cref="VmiCore"/> beside the V2P cache and flushed with it; it lets a V2P miss read one entry, not four.
    /// </summary>
    internal struct WalkShortcut
    {
        public ulong Root;
        public ulong Region; // va >> 21
        public ulong PageTable;
        public PageEntryFlags Flags;
        public PagingMode Mode;
        public PagingFeatures Features;
        public byte Width;
        public bool Valid;
    }

    /// <summary>
    /// Translates in IA-32e mode using and refreshing <paramref name="shortcut"/>; other modes translate as <see cref="Translate"/> does.
    /// </summary>
    internal static TranslationResult TranslateWithShortcut<TReader>(ref TReader reader, PagingMode mode, Pa root, Va va, int paWidth, PagingFeatures features, ref WalkShortcut shortcut)
        where TReader : IPageTableReader
    {
        if (mode is not (PagingMode.Ia32e or PagingMode.Ia32eLa57))
        {
            return Translate(ref reader, mode, root, va, paWidth, null, features);
        }

        int levels = mode == PagingMode.Ia32eLa57 ? 5 : 4;
        long sign = (long)va.Value >> (levels == 5 ? 56 : 47);
        if (sign != 0 && sign != -1)
        {
            return TranslationResult.Failed(WalkFaultKind.NonCanonical, (PagingLevel)levels);
        }

        ulong region = va.Value >> 21;
        if (shortcut.Valid && shortcut.Region == region && shortcut.Root == root.Value && shortcut.Mode == mode && shortcut.Width == paWidth && shortcut.Features == features)
        {
            WalkShortcut unchanged = shortcut;
            return WalkLongFrom(ref reader, 1, shortcut.PageTable, shortcut.Flags, va, paWidth, features, null, ref unchanged);
        }

        var fresh = new WalkShortcut { Root = root.Value, Region = region, Mode = mode, Features = features, Width = (byte)paWidth };
        TranslationResult r = WalkLongFrom(ref reader, levels, root.Value & FrameMask(paWidth), PageEntryFlags.Writable | PageEntryFlags.User, va, paWidth, features, null, ref fresh);
        if (fresh.Valid)
        {
            shortcut = fresh;
        }

        return r;
    }

    /// <summary>The 4-/5-level walk from <paramref name="startLevel"/>; fills <paramref name="shortcut"/> when it descends from a PDE to a page table.</summary>
    private static TranslationResult WalkLongFrom<TReader>(ref TReader reader, int startLevel, ulong table, PageEntryFlags flags, Va va, int paWidth, PagingFeatures features, List<PageWalkEntry>? trace, ref WalkShortcut shortcut)
        where TReader : IPageTableReader
    {
        ulong frameMask = FrameMask(paWidth);
        ulong reservedHigh = ReservedHighMask(paWidth) | ReservedXd(features); // bits 51..MAXPHYADDR, and 63 without NXE

        for (int level = startLevel; level >= 1; level--)
        {
            int shift = PageShift + (9 * (level - 1));
            int index = (int)((va.Value >> shift) & 0x1FF);
            ulong entryAddress = table + ((ulong)index * 8);
            if (!reader.TryReadU64(entryAddress, out ulong entry))
            {
                return TranslationResult.Failed(WalkFaultKind.TableUnreadable, (PagingLevel)level);
            }

            trace?.Add(new PageWalkEntry((PagingLevel)level, new Pa(table), index, new Pa(entryAddress), entry));
            if ((entry & 1) == 0)
            {
                return TranslationResult.Failed(WalkFaultKind.NotPresent, (PagingLevel)level);
            }

            if ((entry & reservedHigh) != 0)
            {
                return TranslationResult.Failed(WalkFaultKind.ReservedBit, (PagingLevel)level);
            }

            flags = Accumulate(flags, entry);
            bool ps = (entry & 0x80) != 0;
            if (ps && level >= 4)
            {
                // PS is reserved in PML5E and PML4E.
                return TranslationResult.Failed(WalkFaultKind.ReservedBit, (PagingLevel)level);
            }

            bool large = ps && level > 1; // bit 7 of a PTE is PAT

            if (level == 1 || large)
            {
                ulong pageBytes = 1UL << shift;
                ulong frame = entry & frameMask & ~(pageBytes - 1);
                if (large)
                {
                    // Bit 12 is PAT for large pages; bits 13..shift-1 are reserved.
                    ulong reservedLow = (pageBytes - 1) & ~((1UL << 13) - 1);
                    if ((entry & reservedLow) != 0)
                    {
                        return TranslationResult.Failed(WalkFaultKind.ReservedBit, (PagingLevel)level);
                    }
                }

                PageSizeKind size = level switch { 3 => PageSizeKind.Size1G, 2 => PageSizeKind.Size2M, _ => PageSizeKind.Size4K };
                PageEntryFlags leaf = flags | LeafFlags(entry, large);
                return new TranslationResult(new Pa(frame | (va.Value & (pageBytes - 1))), size, leaf, WalkFaultKind.None, PagingLevel.None);
            }

            table = entry & frameMask;
            if (level == 2)
            {
                shortcut.PageTable = table;
                shortcut.Flags = flags;
                shortcut.Valid = true;
            }
        }

        throw new InvalidOperationException("unreachable");
    }

    private static TranslationResult WalkPae<TReader>(ref TReader reader, Pa root, Va va, int paWidth, PagingFeatures features, List<PageWalkEntry>? trace)
        where TReader : IPageTableReader
    {
        if (va.Value > uint.MaxValue)
        {
            return TranslationResult.Failed(WalkFaultKind.NonCanonical, PagingLevel.Pdpt);
        }

        ulong frameMask = FrameMask(paWidth);

        // PAE has no ignored high bits: 62..MAXPHYADDR are reserved in every entry. 63 is XD in a PDE or PTE when
        // NXE is on and reserved otherwise; it is always reserved in a PDPTE.
        ulong reservedHigh = ((1UL << 63) - 1 & ~((1UL << Math.Clamp(paWidth, 32, MaxPhysicalAddressWidth)) - 1)) | ReservedXd(features);

        // The PDPT: four 8-byte entries at CR3[31:5].
        ulong pdpt = root.Value & 0xFFFF_FFE0UL;
        int pdptIndex = (int)((va.Value >> 30) & 3);
        ulong pdpteAddress = pdpt + ((ulong)pdptIndex * 8);
        if (!reader.TryReadU64(pdpteAddress, out ulong pdpte))
        {
            return TranslationResult.Failed(WalkFaultKind.TableUnreadable, PagingLevel.Pdpt);
        }

        trace?.Add(new PageWalkEntry(PagingLevel.Pdpt, new Pa(pdpt), pdptIndex, new Pa(pdpteAddress), pdpte));
        if ((pdpte & 1) == 0)
        {
            return TranslationResult.Failed(WalkFaultKind.NotPresent, PagingLevel.Pdpt);
        }

        // PDPTE bits 1-2, 5-8 and 63 are reserved in PAE mode, as are bits 62..MAXPHYADDR.
        if ((pdpte & (0x1E6UL | (1UL << 63) | reservedHigh)) != 0)
        {
            return TranslationResult.Failed(WalkFaultKind.ReservedBit, PagingLevel.Pdpt);
        }

        PageEntryFlags flags = PageEntryFlags.Writable | PageEntryFlags.User;
        ulong table = pdpte & frameMask;
        for (int level = 2; level >= 1; level--)
        {
            int shift = PageShift + (9 * (level - 1));
            int index = (int)((va.Value >> shift) & 0x1FF);
            ulong entryAddress = table + ((ulong)index * 8);
            if (!reader.TryReadU64(entryAddress, out ulong entry))
            {
                return TranslationResult.Failed(WalkFaultKind.TableUnreadable, (PagingLevel)level);
            }

            trace?.Add(new PageWalkEntry((PagingLevel)level, new Pa(table), index, new Pa(entryAddress), entry));
            if ((entry & 1) == 0)
            {
                return TranslationResult.Failed(WalkFaultKind.NotPresent, (PagingLevel)level);
            }

            if ((entry & reservedHigh) != 0)
            {
                return TranslationResult.Failed(WalkFaultKind.ReservedBit, (PagingLevel)level);
            }

            flags = Accumulate(flags, entry);
            bool large = level == 2 && (entry & 0x80) != 0;
            if (level == 1 || large)
            {
                ulong pageBytes = 1UL << shift;
                if (large && (entry & 0x1F_E000UL) != 0)
                {
                    return TranslationResult.Failed(WalkFaultKind.ReservedBit, PagingLevel.Pd);
                }

                ulong frame = entry & frameMask & ~(pageBytes - 1);
                PageEntryFlags leaf = flags | LeafFlags(entry, large);
                return new TranslationResult(new Pa(frame | (va.Value & (pageBytes - 1))), large ? PageSizeKind.Size2M : PageSizeKind.Size4K, leaf, WalkFaultKind.None, PagingLevel.None);
            }

            table = entry & frameMask;
        }

        throw new InvalidOperationException("unreachable");
    }

    private static TranslationResult WalkLegacy<TReader>(ref TReader reader, Pa root, Va va, int paWidth, PagingFeatures features, List<PageWalkEntry>? trace)
        where TReader : IPageTableReader
    {
        if (va.Value > uint.MaxValue)
        {
            return TranslationResult.Failed(WalkFaultKind.NonCanonical, PagingLevel.Pd);
        }

        uint address = (uint)va.Value;
        ulong pd = root.Value & 0xFFFF_F000UL;
        int pdIndex = (int)(address >> 22);
        ulong pdeAddress = pd + ((ulong)pdIndex * 4);
        if (!reader.TryReadU32(pdeAddress, out uint pde))
        {
            return TranslationResult.Failed(WalkFaultKind.TableUnreadable, PagingLevel.Pd);
        }

        trace?.Add(new PageWalkEntry(PagingLevel.Pd, new Pa(pd), pdIndex, new Pa(pdeAddress), pde));
        if ((pde & 1) == 0)
        {
            return TranslationResult.Failed(WalkFaultKind.NotPresent, PagingLevel.Pd);
        }

        PageEntryFlags flags = Accumulate(PageEntryFlags.Writable | PageEntryFlags.User, pde);
        if ((pde & 0x80) != 0 && (features & PagingFeatures.Pse) != 0)
        {
            // 4 MiB page (PSE; without CR4.PSE bit 7 is ignored and the PDE references a page table); PSE-36 puts physical bits 39:32 in PDE bits 20:13. Bit 21 is reserved.
            int width = Math.Min(Math.Clamp(paWidth, 32, MaxPhysicalAddressWidth), 40);
            ulong high = (ulong)((pde >> 13) & 0xFF) << 32;
            if ((pde & (1u << 21)) != 0 || (high & ~((1UL << width) - 1)) != 0)
            {
                return TranslationResult.Failed(WalkFaultKind.ReservedBit, PagingLevel.Pd);
            }

            ulong pa4m = (pde & 0xFFC0_0000UL) | high | (address & 0x3F_FFFFUL);
            return new TranslationResult(new Pa(pa4m), PageSizeKind.Size4M, flags | LeafFlags(pde, large: true), WalkFaultKind.None, PagingLevel.None);
        }

        ulong pt = pde & 0xFFFF_F000UL;
        int ptIndex = (int)((address >> 12) & 0x3FF);
        ulong pteAddress = pt + ((ulong)ptIndex * 4);
        if (!reader.TryReadU32(pteAddress, out uint pte))
        {
            return TranslationResult.Failed(WalkFaultKind.TableUnreadable, PagingLevel.Pt);
        }

        trace?.Add(new PageWalkEntry(PagingLevel.Pt, new Pa(pt), ptIndex, new Pa(pteAddress), pte));
        if ((pte & 1) == 0)
        {
            return TranslationResult.Failed(WalkFaultKind.NotPresent, PagingLevel.Pt);
        }

        flags = Accumulate(flags, pte);
        ulong pa = (pte & 0xFFFF_F000UL) | (address & 0xFFFUL);
        return new TranslationResult(new Pa(pa), PageSizeKind.Size4K, flags | LeafFlags(pte, large: false), WalkFaultKind.None, PagingLevel.None);
    }

    /// <summary>
    /// The flags the entry that maps the page contributes: present, caching, accessed, dirty, global, and
    /// LargePage only for a page larger than 4 KiB (bit 7 of a PTE is PAT, not PS).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static PageEntryFlags LeafFlags(ulong entry, bool large)
    {
        const PageEntryFlags leafBits = PageEntryFlags.Present | PageEntryFlags.Accessed | PageEntryFlags.Dirty | PageEntryFlags.Global | PageEntryFlags.WriteThrough | PageEntryFlags.CacheDisable;
        PageEntryFlags f = (PageEntryFlags)(entry & 0x1FF) & leafBits;
        return large ? f | PageEntryFlags.LargePage : f;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static PageEntryFlags Accumulate(PageEntryFlags flags, ulong entry)
    {
        if ((entry & 2) == 0)
        {
            flags &= ~PageEntryFlags.Writable;
        }

        if ((entry & 4) == 0)
        {
            flags &= ~PageEntryFlags.User;
        }

        if ((entry & (1UL << 63)) != 0)
        {
            flags |= PageEntryFlags.NoExecute;
        }

        return flags;
    }
}
