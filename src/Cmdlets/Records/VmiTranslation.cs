using Vmi.Core.Arch.Amd64;

namespace Vmi.PowerShell;

/// <summary>
/// A virtual address and the physical address it translates to (Resolve-VmiAddress). Binds by property name:
/// <c>Va</c> and <c>Cr3</c> to the memory cmdlets, <c>Gfn</c> to the access cmdlets.
/// </summary>
public sealed class VmiTranslation
{
    internal VmiTranslation(VmiSession session, ulong va, ulong cr3, PagingMode mode, TranslationResult result)
    {
        Session = session;
        Va = va;
        Cr3 = cr3;
        PagingMode = mode;
        Pa = result.Pa.Value;
        PageSize = result.PageSize;
        Flags = result.Flags;
    }

    [Newtonsoft.Json.JsonIgnore, System.Management.Automation.Hidden]
    public VmiSession Session { get; }

    public ulong Va { get; }

    public ulong Pa { get; }

    /// <summary>The guest frame holding <see cref="Pa"/>.</summary>
    public ulong Gfn => Pa >> Amd64.PageShift;

    /// <summary>The page-table root the address was translated under.</summary>
    public ulong Cr3 { get; }

    public PagingMode PagingMode { get; }

    public PageSizeKind PageSize { get; }

    /// <summary>The effective flags of the mapping (writable and user only if every level allows it).</summary>
    public PageEntryFlags Flags { get; }

    public bool Writable => (Flags & PageEntryFlags.Writable) != 0;

    public bool User => (Flags & PageEntryFlags.User) != 0;

    public bool NoExecute => (Flags & PageEntryFlags.NoExecute) != 0;

    public override string ToString() => $"0x{Va:x} -> 0x{Pa:x}";
}

/// <summary>One level of a page walk: the table, the entry used, what it held and its flags.</summary>
public sealed class VmiPageWalkLevel
{
    internal VmiPageWalkLevel(PageWalkEntry entry)
    {
        Level = entry.Level;
        TableAddress = entry.TableAddress.Value;
        Index = entry.Index;
        EntryAddress = entry.EntryAddress.Value;
        Entry = entry.Value;
        Flags = entry.Flags;
        Present = entry.IsPresent;
    }

    public PagingLevel Level { get; }

    /// <summary>The physical address of the table.</summary>
    public ulong TableAddress { get; }

    public int Index { get; }

    /// <summary>The physical address of the entry.</summary>
    public ulong EntryAddress { get; }

    /// <summary>The entry's raw value.</summary>
    public ulong Entry { get; }

    public PageEntryFlags Flags { get; }

    public bool Present { get; }

    public override string ToString() => $"{Level}[{Index}] @ 0x{EntryAddress:x} = 0x{Entry:x16} ({Flags})";
}

/// <summary>A full page walk (Resolve-VmiAddress -Detailed): every level visited, and the result or the fault.</summary>
public sealed class VmiPageWalk
{
    internal VmiPageWalk(VmiSession session, PageWalk walk)
    {
        Session = session;
        Va = walk.Va.Value;
        Cr3 = walk.Root.Value;
        PagingMode = walk.Mode;
        Levels = walk.Entries.Select(e => new VmiPageWalkLevel(e)).ToArray();
        Success = walk.Result.Success;
        Pa = Success ? walk.Result.Pa.Value : null;
        PageSize = Success ? walk.Result.PageSize : null;
        Flags = walk.Result.Flags;
        Fault = walk.Result.Fault;
        FaultLevel = walk.Result.FaultLevel;
    }

    [Newtonsoft.Json.JsonIgnore, System.Management.Automation.Hidden]
    public VmiSession Session { get; }

    public ulong Va { get; }

    public ulong Cr3 { get; }

    public PagingMode PagingMode { get; }

    public IReadOnlyList<VmiPageWalkLevel> Levels { get; }

    public bool Success { get; }

    /// <summary>The physical address, or null when the walk faulted.</summary>
    public ulong? Pa { get; }

    public ulong? Gfn => Pa >> Amd64.PageShift;

    public PageSizeKind? PageSize { get; }

    public PageEntryFlags Flags { get; }

    public WalkFaultKind Fault { get; }

    public PagingLevel FaultLevel { get; }

    /// <summary>The walk as text: one line per level, then the result.</summary>
    public string Describe()
    {
        var lines = new List<string>
        {
            $"VA 0x{Va:x16}  CR3 0x{Cr3:x}  {PagingMode}",
            "Level  Index  Table              Entry address      Entry              Flags",
        };
        foreach (VmiPageWalkLevel l in Levels)
        {
            lines.Add($"{l.Level,-5}  {l.Index,5}  0x{l.TableAddress:x16} 0x{l.EntryAddress:x16} 0x{l.Entry:x16} {l.Flags}");
        }

        lines.Add(Success
            ? $"=> PA 0x{Pa:x} (GFN 0x{Gfn:x}, {PageSize} page, {Flags})"
            : $"=> fault: {Fault} at {FaultLevel}");
        return string.Join('\n', lines);
    }

    public override string ToString() => Success ? $"0x{Va:x} -> 0x{Pa:x}" : $"0x{Va:x} -> fault: {Fault} at {FaultLevel}";
}
