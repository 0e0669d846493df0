namespace Vmi.Core.Arch.Amd64;

/// <summary>The paging mode a vCPU is in, chosen from CR0.PG, CR4.PAE, EFER.LME/LMA and CR4.LA57.</summary>
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum PagingMode : byte
{
    /// <summary>CR0.PG clear: linear addresses are physical.</summary>
    Disabled,

    /// <summary>32-bit paging: two levels of 4-byte entries, 4 MiB pages with PSE (PSE-36 high bits honoured).</summary>
    Legacy32,

    /// <summary>PAE paging: a 4-entry PDPT, then two levels of 8-byte entries, 2 MiB pages.</summary>
    Pae,

    /// <summary>IA-32e 4-level paging (PML4): 48-bit virtual addresses, 2 MiB and 1 GiB pages.</summary>
    Ia32e,

    /// <summary>IA-32e 5-level paging (LA57, PML5): 57-bit virtual addresses.</summary>
    Ia32eLa57,
}

/// <summary>
/// Control-register features that change how paging-structure entries are read, beside the <see cref="PagingMode"/>.
/// Chosen from CR4.PSE and IA32_EFER.NXE (<see cref="Amd64.GetPagingFeatures(ulong, ulong)"/>).
/// </summary>
[Flags]
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum PagingFeatures : byte
{
    None = 0,

    /// <summary>CR4.PSE: in 32-bit paging, PDE bit 7 maps a 4 MiB page. Without it the bit is ignored and the PDE references a page table (PAE and IA-32e paging do not look at CR4.PSE).</summary>
    Pse = 1,

    /// <summary>IA32_EFER.NXE: in PAE and IA-32e paging, entry bit 63 is execute-disable. Without it bit 63 is reserved (a reserved-bit fault at that level).</summary>
    Nxe = 2,

    /// <summary>Both, as every modern guest has them: the default where nothing says otherwise.</summary>
    All = Pse | Nxe,
}

/// <summary>A paging-structure level, numbered as the SDM does (1 = page table).</summary>
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum PagingLevel : byte
{
    None = 0,
    Pt = 1,
    Pd = 2,
    Pdpt = 3,
    Pml4 = 4,
    Pml5 = 5,
}

[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum PageSizeKind : byte
{
    Size4K,
    Size2M,
    Size4M,
    Size1G,
}

/// <summary>Why a translation failed.</summary>
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum WalkFaultKind : byte
{
    None,

    /// <summary>The entry's present bit is clear.</summary>
    NotPresent,

    /// <summary>The entry sets a reserved bit (above the physical-address width, or in a large page's frame).</summary>
    ReservedBit,

    /// <summary>The virtual address is not canonical for the paging mode.</summary>
    NonCanonical,

    /// <summary>The frame holding the table is not backed (outside guest memory or a hole in an image).</summary>
    TableUnreadable,
}

/// <summary>Flags of a paging-structure entry, as named in the SDM.</summary>
[Flags]
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum PageEntryFlags : ushort
{
    None = 0,
    Present = 1 << 0,
    Writable = 1 << 1,
    User = 1 << 2,
    WriteThrough = 1 << 3,
    CacheDisable = 1 << 4,
    Accessed = 1 << 5,
    Dirty = 1 << 6,
    LargePage = 1 << 7,
    Global = 1 << 8,
    NoExecute = 1 << 15,
}

/// <summary>One level of a page walk: where the table is, which entry was used and what it held.</summary>
public readonly record struct PageWalkEntry(PagingLevel Level, Pa TableAddress, int Index, Pa EntryAddress, ulong Value)
{
    /// <summary>The entry's flags. In a page-table entry (level 1) bit 7 is PAT, not a page size, so LargePage is never set there.</summary>
    public PageEntryFlags Flags => Level == PagingLevel.Pt ? Amd64.EntryFlags(Value) & ~PageEntryFlags.LargePage : Amd64.EntryFlags(Value);

    public bool IsPresent => (Value & 1) != 0;

    public override string ToString() => $"{Level}[{Index}] @ {EntryAddress} = 0x{Value:x16} ({Flags})";
}

/// <summary>
/// The outcome of a translation, as data: a scan over a million pages does not throw a million exceptions.
/// On success <see cref="Pa"/> is the physical address; otherwise <see cref="Fault"/> says why and
/// <see cref="FaultLevel"/> which level's entry stopped the walk.
/// </summary>
public readonly record struct TranslationResult(
    Pa Pa,
    PageSizeKind PageSize,
    PageEntryFlags Flags,
    WalkFaultKind Fault,
    PagingLevel FaultLevel)
{
    public bool Success => Fault == WalkFaultKind.None;

    /// <summary>Writable at every level.</summary>
    public bool Writable => (Flags & PageEntryFlags.Writable) != 0;

    /// <summary>User-accessible at every level.</summary>
    public bool User => (Flags & PageEntryFlags.User) != 0;

    /// <summary>Execute-disable at some level.</summary>
    public bool NoExecute => (Flags & PageEntryFlags.NoExecute) != 0;

    public static TranslationResult Failed(WalkFaultKind fault, PagingLevel level) => new(default, default, default, fault, level);

    public override string ToString() => Success ? $"{Pa} ({PageSize}, {Flags})" : $"fault: {Fault} at {FaultLevel}";
}

/// <summary>A page walk with every level it visited, for <c>Resolve-VmiAddress -Detailed</c>.</summary>
public sealed record PageWalk(Va Va, Pa Root, PagingMode Mode, IReadOnlyList<PageWalkEntry> Entries, TranslationResult Result)
{
    /// <summary>
    /// The CR4.PSE and EFER.NXE the walk honoured. An entry's <see cref="PageWalkEntry.Flags"/> are its raw bits: without
    /// PSE a 32-bit PDE's LargePage did not make a 4 MiB page; without NXE a set NoExecute was a reserved bit.
    /// </summary>
    public PagingFeatures Features { get; init; } = PagingFeatures.All;

    public override string ToString() => $"{Va} -> {Result}";
}

/// <summary>Reads paging-structure entries from guest physical memory.</summary>
public interface IPageTableReader
{
    bool TryReadU64(ulong pa, out ulong value);

    bool TryReadU32(ulong pa, out uint value);
}
