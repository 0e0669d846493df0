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

public enum ControlRegister : byte
{
    Cr0 = 0,
    Cr3 = 3,
    Cr4 = 4,
    Xcr0 = 16,
}

/// <summary>The general-purpose registers an event response may set (Xen: vm_event_regs_x86 with VM_EVENT_FLAG_SET_REGISTERS).</summary>
public sealed record GpRegisters
{
    public ulong Rax { get; set; }
    public ulong Rbx { get; set; }
    public ulong Rcx { get; set; }
    public ulong Rdx { get; set; }
    public ulong Rsp { get; set; }
    public ulong Rbp { get; set; }
    public ulong Rsi { get; set; }
    public ulong Rdi { get; set; }
    public ulong R8 { get; set; }
    public ulong R9 { get; set; }
    public ulong R10 { get; set; }
    public ulong R11 { get; set; }
    public ulong R12 { get; set; }
    public ulong R13 { get; set; }
    public ulong R14 { get; set; }
    public ulong R15 { get; set; }
    public ulong Rip { get; set; }
    public ulong Rflags { get; set; }
}

/// <summary>The architectural state of one AMD64 vCPU.</summary>
public sealed record Registers
{
    public ulong Rax { get; set; }
    public ulong Rbx { get; set; }
    public ulong Rcx { get; set; }
    public ulong Rdx { get; set; }
    public ulong Rsp { get; set; }
    public ulong Rbp { get; set; }
    public ulong Rsi { get; set; }
    public ulong Rdi { get; set; }
    public ulong R8 { get; set; }
    public ulong R9 { get; set; }
    public ulong R10 { get; set; }
    public ulong R11 { get; set; }
    public ulong R12 { get; set; }
    public ulong R13 { get; set; }
    public ulong R14 { get; set; }
    public ulong R15 { get; set; }
    public ulong Rip { get; set; }
    public ulong Rflags { get; set; }

    public ulong Cr0 { get; set; }
    public ulong Cr2 { get; set; }
    public ulong Cr3 { get; set; }
    public ulong Cr4 { get; set; }
    public ulong Xcr0 { get; set; }

    public ulong Dr0 { get; set; }
    public ulong Dr1 { get; set; }
    public ulong Dr2 { get; set; }
    public ulong Dr3 { get; set; }
    public ulong Dr6 { get; set; }
    public ulong Dr7 { get; set; }

    public SegmentRegister Cs { get; set; }
    public SegmentRegister Ds { get; set; }
    public SegmentRegister Es { get; set; }
    public SegmentRegister Fs { get; set; }
    public SegmentRegister Gs { get; set; }
    public SegmentRegister Ss { get; set; }
    public SegmentRegister Tr { get; set; }
    public SegmentRegister Ldtr { get; set; }
    public DescriptorTable Idtr { get; set; }
    public DescriptorTable Gdtr { get; set; }

    public ulong SysenterCs { get; set; }
    public ulong SysenterEsp { get; set; }
    public ulong SysenterEip { get; set; }

    /// <summary>IA32_EFER (0xC0000080).</summary>
    public ulong MsrEfer { get; set; }

    /// <summary>IA32_STAR (0xC0000081).</summary>
    public ulong MsrStar { get; set; }

    /// <summary>IA32_LSTAR (0xC0000082): the 64-bit syscall entry point.</summary>
    public ulong MsrLstar { get; set; }

    /// <summary>IA32_CSTAR (0xC0000083).</summary>
    public ulong MsrCstar { get; set; }

    /// <summary>IA32_FMASK (0xC0000084).</summary>
    public ulong MsrSyscallMask { get; set; }

    /// <summary>IA32_KERNEL_GS_BASE (0xC0000102): the GS base swapgs swaps in.</summary>
    public ulong ShadowGs { get; set; }

    /// <summary>IA32_TSC_AUX (0xC0000103).</summary>
    public ulong TscAux { get; set; }

    public ulong MsrPat { get; set; }

    /// <summary>The page-table root CR3 points at (flag and PCID bits masked off for the current paging mode).</summary>
    public Pa TranslationRoot => Amd64.RootFromCr3(Cr3, PagingMode);

    public PagingMode PagingMode => Amd64.GetPagingMode(this);

    /// <summary>CR4.PSE and IA32_EFER.NXE, as they affect translation.</summary>
    public PagingFeatures PagingFeatures => Amd64.GetPagingFeatures(this);

    public GpRegisters ToGpRegisters() => new()
    {
        Rax = Rax, Rbx = Rbx, Rcx = Rcx, Rdx = Rdx, Rsp = Rsp, Rbp = Rbp, Rsi = Rsi, Rdi = Rdi,
        R8 = R8, R9 = R9, R10 = R10, R11 = R11, R12 = R12, R13 = R13, R14 = R14, R15 = R15,
        Rip = Rip, Rflags = Rflags,
    };

    public void SetGpRegisters(GpRegisters gp)
    {
        ArgumentNullException.ThrowIfNull(gp);
        Rax = gp.Rax; Rbx = gp.Rbx; Rcx = gp.Rcx; Rdx = gp.Rdx; Rsp = gp.Rsp; Rbp = gp.Rbp; Rsi = gp.Rsi; Rdi = gp.Rdi;
        R8 = gp.R8; R9 = gp.R9; R10 = gp.R10; R11 = gp.R11; R12 = gp.R12; R13 = gp.R13; R14 = gp.R14; R15 = gp.R15;
        Rip = gp.Rip; Rflags = gp.Rflags;
    }
}
