using System.Diagnostics.CodeAnalysis;

namespace Vmi.Core.Arch.Amd64;

/// <summary>A segment register as the processor holds it (the hidden part included).</summary>
/// <param name="Attributes">Access rights in the VMX/SVM packed form: type(4) S DPL(2) P, AVL L D/B G in bits 8-11.</param>
public readonly record struct SegmentRegister(ushort Selector, ulong Base, uint Limit, ushort Attributes)
{
    public override string ToString() => $"sel=0x{Selector:x} base=0x{Base:x} limit=0x{Limit:x} attr=0x{Attributes:x}";
}

/// <summary>IDTR or GDTR.</summary>
public readonly record struct DescriptorTable(ulong Base, ushort Limit)
{
    public override string ToString() => $"base=0x{Base:x} limit=0x{Limit:x}";
}

[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum ControlRegister : byte
{
    Cr0 = 0,
    Cr3 = 3,
    Cr4 = 4,
    Xcr0 = 16,
}

/// <summary>
/// The architectural state of one AMD64 vCPU: one immutable record, the one model of registers in engine, drivers,
/// events and records. A change is a copy: <c>registers with { Rax = 1 }</c> in C#, <see cref="With(string, ulong)"/>
/// by name (scripts). Registers are named case-insensitively as the properties are ("Rip", "cr3", "MsrLstar");
/// <see cref="Names"/> lists them. Not sealed only so that a record can add where the registers came from (a vCPU, a session).
/// </summary>
public record Registers
{
    public ulong Rax { get; init; }
    public ulong Rbx { get; init; }
    public ulong Rcx { get; init; }
    public ulong Rdx { get; init; }
    public ulong Rsp { get; init; }
    public ulong Rbp { get; init; }
    public ulong Rsi { get; init; }
    public ulong Rdi { get; init; }
    public ulong R8 { get; init; }
    public ulong R9 { get; init; }
    public ulong R10 { get; init; }
    public ulong R11 { get; init; }
    public ulong R12 { get; init; }
    public ulong R13 { get; init; }
    public ulong R14 { get; init; }
    public ulong R15 { get; init; }
    public ulong Rip { get; init; }
    public ulong Rflags { get; init; }

    public ulong Cr0 { get; init; }
    public ulong Cr2 { get; init; }
    public ulong Cr3 { get; init; }
    public ulong Cr4 { get; init; }
    public ulong Xcr0 { get; init; }

    public ulong Dr0 { get; init; }
    public ulong Dr1 { get; init; }
    public ulong Dr2 { get; init; }
    public ulong Dr3 { get; init; }
    public ulong Dr6 { get; init; }
    public ulong Dr7 { get; init; }

    public SegmentRegister Cs { get; init; }
    public SegmentRegister Ds { get; init; }
    public SegmentRegister Es { get; init; }
    public SegmentRegister Fs { get; init; }
    public SegmentRegister Gs { get; init; }
    public SegmentRegister Ss { get; init; }
    public SegmentRegister Tr { get; init; }
    public SegmentRegister Ldtr { get; init; }
    public DescriptorTable Idtr { get; init; }
    public DescriptorTable Gdtr { get; init; }

    public ulong SysenterCs { get; init; }
    public ulong SysenterEsp { get; init; }
    public ulong SysenterEip { get; init; }

    /// <summary>IA32_EFER (0xC0000080).</summary>
    public ulong MsrEfer { get; init; }

    /// <summary>IA32_STAR (0xC0000081).</summary>
    public ulong MsrStar { get; init; }

    /// <summary>IA32_LSTAR (0xC0000082): the 64-bit syscall entry point.</summary>
    public ulong MsrLstar { get; init; }

    /// <summary>IA32_CSTAR (0xC0000083).</summary>
    public ulong MsrCstar { get; init; }

    /// <summary>IA32_FMASK (0xC0000084).</summary>
    public ulong MsrSyscallMask { get; init; }

    /// <summary>IA32_KERNEL_GS_BASE (0xC0000102): the GS base swapgs swaps in.</summary>
    public ulong ShadowGs { get; init; }

    /// <summary>IA32_TSC_AUX (0xC0000103).</summary>
    public ulong TscAux { get; init; }

    public ulong MsrPat { get; init; }

    /// <summary>The page-table root CR3 points at (flag and PCID bits masked off for the current paging mode).</summary>
    public Pa TranslationRoot => Amd64.RootFromCr3(Cr3, PagingMode);

    public PagingMode PagingMode => Amd64.GetPagingMode(this);

    /// <summary>CR4.PSE and IA32_EFER.NXE, as they affect translation.</summary>
    public PagingFeatures PagingFeatures => Amd64.GetPagingFeatures(this);

    /// <summary>One register by name: its getter, and for a 64-bit register a copy-with-change. The static table below is the only by-name access.</summary>
    private sealed class Field(string name, Func<Registers, object> get, Func<Registers, ulong>? value = null, Func<Registers, ulong, Registers>? with = null, bool generalPurpose = false)
    {
        public string Name { get; } = name;

        public Func<Registers, object> Get { get; } = get;

        public Func<Registers, ulong>? Value { get; } = value;

        public Func<Registers, ulong, Registers>? With { get; } = with;

        public bool GeneralPurpose { get; } = generalPurpose;
    }

    private static Field Value(string name, Func<Registers, ulong> value, Func<Registers, ulong, Registers> with, bool generalPurpose = false) =>
        new(name, r => value(r), value, with, generalPurpose);

    private static readonly Field[] Fields =
    [
        Value("Rax", static r => r.Rax, static (r, v) => r with { Rax = v }, generalPurpose: true),
        Value("Rbx", static r => r.Rbx, static (r, v) => r with { Rbx = v }, generalPurpose: true),
        Value("Rcx", static r => r.Rcx, static (r, v) => r with { Rcx = v }, generalPurpose: true),
        Value("Rdx", static r => r.Rdx, static (r, v) => r with { Rdx = v }, generalPurpose: true),
        Value("Rsp", static r => r.Rsp, static (r, v) => r with { Rsp = v }, generalPurpose: true),
        Value("Rbp", static r => r.Rbp, static (r, v) => r with { Rbp = v }, generalPurpose: true),
        Value("Rsi", static r => r.Rsi, static (r, v) => r with { Rsi = v }, generalPurpose: true),
        Value("Rdi", static r => r.Rdi, static (r, v) => r with { Rdi = v }, generalPurpose: true),
        Value("R8", static r => r.R8, static (r, v) => r with { R8 = v }, generalPurpose: true),
        Value("R9", static r => r.R9, static (r, v) => r with { R9 = v }, generalPurpose: true),
        Value("R10", static r => r.R10, static (r, v) => r with { R10 = v }, generalPurpose: true),
        Value("R11", static r => r.R11, static (r, v) => r with { R11 = v }, generalPurpose: true),
        Value("R12", static r => r.R12, static (r, v) => r with { R12 = v }, generalPurpose: true),
        Value("R13", static r => r.R13, static (r, v) => r with { R13 = v }, generalPurpose: true),
        Value("R14", static r => r.R14, static (r, v) => r with { R14 = v }, generalPurpose: true),
        Value("R15", static r => r.R15, static (r, v) => r with { R15 = v }, generalPurpose: true),
        Value("Rip", static r => r.Rip, static (r, v) => r with { Rip = v }, generalPurpose: true),
        Value("Rflags", static r => r.Rflags, static (r, v) => r with { Rflags = v }, generalPurpose: true),
        Value("Cr0", static r => r.Cr0, static (r, v) => r with { Cr0 = v }),
        Value("Cr2", static r => r.Cr2, static (r, v) => r with { Cr2 = v }),
        Value("Cr3", static r => r.Cr3, static (r, v) => r with { Cr3 = v }),
        Value("Cr4", static r => r.Cr4, static (r, v) => r with { Cr4 = v }),
        Value("Xcr0", static r => r.Xcr0, static (r, v) => r with { Xcr0 = v }),
        Value("Dr0", static r => r.Dr0, static (r, v) => r with { Dr0 = v }),
        Value("Dr1", static r => r.Dr1, static (r, v) => r with { Dr1 = v }),
        Value("Dr2", static r => r.Dr2, static (r, v) => r with { Dr2 = v }),
        Value("Dr3", static r => r.Dr3, static (r, v) => r with { Dr3 = v }),
        Value("Dr6", static r => r.Dr6, static (r, v) => r with { Dr6 = v }),
        Value("Dr7", static r => r.Dr7, static (r, v) => r with { Dr7 = v }),
        new("Cs", static r => r.Cs),
        new("Ds", static r => r.Ds),
        new("Es", static r => r.Es),
        new("Fs", static r => r.Fs),
        new("Gs", static r => r.Gs),
        new("Ss", static r => r.Ss),
        new("Tr", static r => r.Tr),
        new("Ldtr", static r => r.Ldtr),
        new("Idtr", static r => r.Idtr),
        new("Gdtr", static r => r.Gdtr),
        Value("SysenterCs", static r => r.SysenterCs, static (r, v) => r with { SysenterCs = v }),
        Value("SysenterEsp", static r => r.SysenterEsp, static (r, v) => r with { SysenterEsp = v }),
        Value("SysenterEip", static r => r.SysenterEip, static (r, v) => r with { SysenterEip = v }),
        Value("MsrEfer", static r => r.MsrEfer, static (r, v) => r with { MsrEfer = v }),
        Value("MsrStar", static r => r.MsrStar, static (r, v) => r with { MsrStar = v }),
        Value("MsrLstar", static r => r.MsrLstar, static (r, v) => r with { MsrLstar = v }),
        Value("MsrCstar", static r => r.MsrCstar, static (r, v) => r with { MsrCstar = v }),
        Value("MsrSyscallMask", static r => r.MsrSyscallMask, static (r, v) => r with { MsrSyscallMask = v }),
        Value("ShadowGs", static r => r.ShadowGs, static (r, v) => r with { ShadowGs = v }),
        Value("TscAux", static r => r.TscAux, static (r, v) => r with { TscAux = v }),
        Value("MsrPat", static r => r.MsrPat, static (r, v) => r with { MsrPat = v }),
    ];

    private static readonly Dictionary<string, Field> ByName = Fields.ToDictionary(f => f.Name, StringComparer.OrdinalIgnoreCase);

    /// <summary>Every register, in declaration order (general-purpose, control, debug, segment, descriptor tables, MSRs).</summary>
    public static IReadOnlyList<string> Names { get; } = Array.ConvertAll(Fields, f => f.Name);

    /// <summary>The 64-bit registers, the ones <see cref="With(string, ulong)"/> changes (segments and tables are not set by name).</summary>
    public static IReadOnlyList<string> ValueNames { get; } = Array.FindAll(Fields, f => f.With is not null).Select(f => f.Name).ToArray();

    /// <summary>RAX-R15, RIP and RFLAGS: what an event's response may change (<see cref="VmiEventResponse.Registers"/>).</summary>
    public static IReadOnlyList<string> GeneralPurposeNames { get; } = Array.FindAll(Fields, f => f.GeneralPurpose).Select(f => f.Name).ToArray();

    /// <summary>The register's name as <see cref="Names"/> spells it; false when there is no such register.</summary>
    public static bool TryGetName(string? name, [NotNullWhen(true)] out string? canonical)
    {
        canonical = name is not null && ByName.TryGetValue(name, out Field? f) ? f.Name : null;
        return canonical is not null;
    }

    /// <summary>A register's value by name: a <see cref="ulong"/>, a <see cref="SegmentRegister"/> or a <see cref="DescriptorTable"/>.</summary>
    /// <exception cref="ArgumentException">There is no such register.</exception>
    public object this[string name] => Find(name).Get(this);

    /// <summary>A copy with the 64-bit register <paramref name="name"/> set to <paramref name="value"/>.</summary>
    /// <exception cref="ArgumentException">There is no such 64-bit register.</exception>
    public Registers With(string name, ulong value)
    {
        Field f = Find(name);
        return f.With is { } with
            ? with(this, value)
            : throw new ArgumentException($"{f.Name} is not set by name (only the 64-bit registers are): use one of {string.Join(", ", ValueNames)}.", nameof(name));
    }

    /// <summary>A copy with every change applied, every name checked before any is.</summary>
    /// <exception cref="ArgumentException">A name is not a 64-bit register.</exception>
    public Registers With(IEnumerable<KeyValuePair<string, ulong>> changes)
    {
        ArgumentNullException.ThrowIfNull(changes);
        KeyValuePair<string, ulong>[] all = changes.ToArray();
        foreach (KeyValuePair<string, ulong> c in all)
        {
            if (Find(c.Key).With is null)
            {
                return With(c.Key, c.Value); // throws the one message
            }
        }

        Registers r = this;
        foreach (KeyValuePair<string, ulong> c in all)
        {
            r = r.With(c.Key, c.Value);
        }

        return r;
    }

    /// <summary>A copy with the general-purpose registers (<see cref="GeneralPurposeNames"/>) taken from <paramref name="source"/>.</summary>
    public Registers WithGeneralPurpose(Registers source)
    {
        ArgumentNullException.ThrowIfNull(source);
        return this with
        {
            Rax = source.Rax, Rbx = source.Rbx, Rcx = source.Rcx, Rdx = source.Rdx, Rsp = source.Rsp, Rbp = source.Rbp, Rsi = source.Rsi, Rdi = source.Rdi,
            R8 = source.R8, R9 = source.R9, R10 = source.R10, R11 = source.R11, R12 = source.R12, R13 = source.R13, R14 = source.R14, R15 = source.R15,
            Rip = source.Rip, Rflags = source.Rflags,
        };
    }

    /// <summary>The registers whose values differ between this and <paramref name="other"/>, in <see cref="Names"/> order.</summary>
    public IReadOnlyList<string> Differences(Registers other)
    {
        ArgumentNullException.ThrowIfNull(other);
        var names = new List<string>();
        foreach (Field f in Fields)
        {
            bool same = f.Value is { } value ? value(this) == value(other) : f.Get(this).Equals(f.Get(other));
            if (!same)
            {
                names.Add(f.Name);
            }
        }

        return names;
    }

    public override string ToString() => $"rip=0x{Rip:x} rsp=0x{Rsp:x} cr3=0x{Cr3:x}";

    private static Field Find(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return ByName.TryGetValue(name, out Field? f)
            ? f
            : throw new ArgumentException($"'{name}' is not a register. Registers: {string.Join(", ", Names)}.", nameof(name));
    }
}
