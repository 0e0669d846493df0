using Vmi.Core.Arch.Amd64;

namespace Vmi.PowerShell;

/// <summary>
/// The registers of one vCPU (Get-VmiRegister): every AMD64 register as a property, plus the vCPU, the session and
/// the paging state derived from them. Binds Vcpu and Cr3 by property name to the memory cmdlets.
/// </summary>
public sealed class VmiVcpuRegisters
{
    internal VmiVcpuRegisters(VmiSession session, ushort vcpu, Registers registers)
    {
        Session = session;
        Vcpu = vcpu;
        Registers = registers;
    }

    public VmiSession Session { get; }

    public ushort Vcpu { get; }

    /// <summary>The engine's register record (a copy: changing it changes nothing in the guest; use Set-VmiRegister).</summary>
    public Registers Registers { get; }

    public PagingMode PagingMode => Registers.PagingMode;

    /// <summary>The page-table root CR3 points at.</summary>
    public ulong TranslationRoot => Registers.TranslationRoot.Value;

    public ulong Rax => Registers.Rax;

    public ulong Rbx => Registers.Rbx;

    public ulong Rcx => Registers.Rcx;

    public ulong Rdx => Registers.Rdx;

    public ulong Rsp => Registers.Rsp;

    public ulong Rbp => Registers.Rbp;

    public ulong Rsi => Registers.Rsi;

    public ulong Rdi => Registers.Rdi;

    public ulong R8 => Registers.R8;

    public ulong R9 => Registers.R9;

    public ulong R10 => Registers.R10;

    public ulong R11 => Registers.R11;

    public ulong R12 => Registers.R12;

    public ulong R13 => Registers.R13;

    public ulong R14 => Registers.R14;

    public ulong R15 => Registers.R15;

    public ulong Rip => Registers.Rip;

    public ulong Rflags => Registers.Rflags;

    public ulong Cr0 => Registers.Cr0;

    public ulong Cr2 => Registers.Cr2;

    public ulong Cr3 => Registers.Cr3;

    public ulong Cr4 => Registers.Cr4;

    public ulong Xcr0 => Registers.Xcr0;

    public ulong Dr0 => Registers.Dr0;

    public ulong Dr1 => Registers.Dr1;

    public ulong Dr2 => Registers.Dr2;

    public ulong Dr3 => Registers.Dr3;

    public ulong Dr6 => Registers.Dr6;

    public ulong Dr7 => Registers.Dr7;

    public SegmentRegister Cs => Registers.Cs;

    public SegmentRegister Ds => Registers.Ds;

    public SegmentRegister Es => Registers.Es;

    public SegmentRegister Fs => Registers.Fs;

    public SegmentRegister Gs => Registers.Gs;

    public SegmentRegister Ss => Registers.Ss;

    public SegmentRegister Tr => Registers.Tr;

    public SegmentRegister Ldtr => Registers.Ldtr;

    public DescriptorTable Idtr => Registers.Idtr;

    public DescriptorTable Gdtr => Registers.Gdtr;

    public ulong SysenterCs => Registers.SysenterCs;

    public ulong SysenterEsp => Registers.SysenterEsp;

    public ulong SysenterEip => Registers.SysenterEip;

    public ulong MsrEfer => Registers.MsrEfer;

    public ulong MsrStar => Registers.MsrStar;

    public ulong MsrLstar => Registers.MsrLstar;

    public ulong MsrCstar => Registers.MsrCstar;

    public ulong MsrSyscallMask => Registers.MsrSyscallMask;

    public ulong ShadowGs => Registers.ShadowGs;

    public ulong TscAux => Registers.TscAux;

    public ulong MsrPat => Registers.MsrPat;

    public override string ToString() => $"vCPU {Vcpu}: rip=0x{Rip:x} rsp=0x{Rsp:x} cr3=0x{Cr3:x}";
}
