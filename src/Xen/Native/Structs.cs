using System.Runtime.InteropServices;

// Mirrors of the C structures of the Xen public headers (Xen 4.17, the layouts are unchanged up to 4.22).
// Field names are the C names in PascalCase: the layout test in Vmi.Xen.Tests compiles a C program against
// /usr/include and compares every offset and size listed there with these declarations by that name.
#pragma warning disable CA1051 // public fields: these are interop mirrors
#pragma warning disable CA1815 // no equality on interop mirrors
#pragma warning disable CA1707

namespace Vmi.Xen.Native;

/// <summary>vm_event.h constants of interface version 7.</summary>
internal static class VmEventAbi
{
    /// <summary>VM_EVENT_INTERFACE_VERSION in xen/vm_event.h (0x00000007 from Xen 4.15 to 4.22).</summary>
    public const uint InterfaceVersion = 0x00000007;

    public const uint FlagVcpuPaused = 1u << 0;
    public const uint FlagForeign = 1u << 1;
    public const uint FlagEmulate = 1u << 2;
    public const uint FlagEmulateNoWrite = 1u << 3;
    public const uint FlagToggleSinglestep = 1u << 4;
    public const uint FlagSetEmulReadData = 1u << 5;
    public const uint FlagDeny = 1u << 6;
    public const uint FlagAlternateP2m = 1u << 7;
    public const uint FlagSetRegisters = 1u << 8;
    public const uint FlagSetEmulInsnData = 1u << 9;
    public const uint FlagGetNextInterrupt = 1u << 10;
    public const uint FlagFastSinglestep = 1u << 11;
    public const uint FlagNestedP2m = 1u << 12;

    public const uint ReasonUnknown = 0;
    public const uint ReasonMemAccess = 1;
    public const uint ReasonMemSharing = 2;
    public const uint ReasonMemPaging = 3;
    public const uint ReasonWriteCtrlreg = 4;
    public const uint ReasonMovToMsr = 5;
    public const uint ReasonSoftwareBreakpoint = 6;
    public const uint ReasonSinglestep = 7;
    public const uint ReasonGuestRequest = 8;
    public const uint ReasonDebugException = 9;
    public const uint ReasonCpuid = 10;
    public const uint ReasonPrivilegedCall = 11;
    public const uint ReasonInterrupt = 12;
    public const uint ReasonDescriptorAccess = 13;
    public const uint ReasonEmulUnimplemented = 14;
    public const uint ReasonVmexit = 15;

    /// <summary>VM_EVENT_REASON_IO_INSTRUCTION: Xen 4.18 and later.</summary>
    public const uint ReasonIoInstruction = 16;

    public const uint X86Cr0 = 0;
    public const uint X86Cr3 = 1;
    public const uint X86Cr4 = 2;
    public const uint X86Xcr0 = 3;

    public const uint MemAccessR = 1u << 0;
    public const uint MemAccessW = 1u << 1;
    public const uint MemAccessX = 1u << 2;
    public const uint MemAccessGlaValid = 1u << 3;
    public const uint MemAccessFaultWithGla = 1u << 4;
    public const uint MemAccessFaultInGpt = 1u << 5;
}

/// <summary>struct vm_event_x86_selector_reg: limit:20, ar:12 packed in one 32-bit word.</summary>
[StructLayout(LayoutKind.Explicit, Size = 4)]
internal struct VmEventX86SelectorReg
{
    [FieldOffset(0)] public uint Bits;

    public readonly uint Limit => Bits & 0xFFFFF;

    public readonly ushort Ar => (ushort)(Bits >> 20);
}

/// <summary>struct vm_event_regs_x86.</summary>
[StructLayout(LayoutKind.Explicit, Size = 344)]
internal struct VmEventRegsX86
{
    [FieldOffset(0)] public ulong Rax;
    [FieldOffset(8)] public ulong Rcx;
    [FieldOffset(16)] public ulong Rdx;
    [FieldOffset(24)] public ulong Rbx;
    [FieldOffset(32)] public ulong Rsp;
    [FieldOffset(40)] public ulong Rbp;
    [FieldOffset(48)] public ulong Rsi;
    [FieldOffset(56)] public ulong Rdi;
    [FieldOffset(64)] public ulong R8;
    [FieldOffset(72)] public ulong R9;
    [FieldOffset(80)] public ulong R10;
    [FieldOffset(88)] public ulong R11;
    [FieldOffset(96)] public ulong R12;
    [FieldOffset(104)] public ulong R13;
    [FieldOffset(112)] public ulong R14;
    [FieldOffset(120)] public ulong R15;
    [FieldOffset(128)] public ulong Rflags;
    [FieldOffset(136)] public ulong Dr6;
    [FieldOffset(144)] public ulong Dr7;
    [FieldOffset(152)] public ulong Rip;
    [FieldOffset(160)] public ulong Cr0;
    [FieldOffset(168)] public ulong Cr2;
    [FieldOffset(176)] public ulong Cr3;
    [FieldOffset(184)] public ulong Cr4;
    [FieldOffset(192)] public ulong SysenterCs;
    [FieldOffset(200)] public ulong SysenterEsp;
    [FieldOffset(208)] public ulong SysenterEip;
    [FieldOffset(216)] public ulong MsrEfer;
    [FieldOffset(224)] public ulong MsrStar;
    [FieldOffset(232)] public ulong MsrLstar;
    [FieldOffset(240)] public ulong GdtrBase;
    [FieldOffset(248)] public ulong NptBase;
    [FieldOffset(256)] public ulong VmtracePos;
    [FieldOffset(264)] public uint CsBase;
    [FieldOffset(268)] public uint SsBase;
    [FieldOffset(272)] public uint DsBase;
    [FieldOffset(276)] public uint EsBase;
    [FieldOffset(280)] public ulong FsBase;
    [FieldOffset(288)] public ulong GsBase;
    [FieldOffset(296)] public VmEventX86SelectorReg Cs;
    [FieldOffset(300)] public VmEventX86SelectorReg Ss;
    [FieldOffset(304)] public VmEventX86SelectorReg Ds;
    [FieldOffset(308)] public VmEventX86SelectorReg Es;
    [FieldOffset(312)] public VmEventX86SelectorReg Fs;
    [FieldOffset(316)] public VmEventX86SelectorReg Gs;
    [FieldOffset(320)] public ulong ShadowGs;
    [FieldOffset(328)] public ushort GdtrLimit;
    [FieldOffset(330)] public ushort CsSel;
    [FieldOffset(332)] public ushort SsSel;
    [FieldOffset(334)] public ushort DsSel;
    [FieldOffset(336)] public ushort EsSel;
    [FieldOffset(338)] public ushort FsSel;
    [FieldOffset(340)] public ushort GsSel;
    [FieldOffset(342)] public ushort Pad;
}

[StructLayout(LayoutKind.Explicit, Size = 32)]
internal struct VmEventMemAccess
{
    [FieldOffset(0)] public ulong Gfn;
    [FieldOffset(8)] public ulong Offset;
    [FieldOffset(16)] public ulong Gla;
    [FieldOffset(24)] public uint Flags;
}

[StructLayout(LayoutKind.Explicit, Size = 24)]
internal struct VmEventWriteCtrlreg
{
    [FieldOffset(0)] public uint Index;
    [FieldOffset(8)] public ulong NewValue;
    [FieldOffset(16)] public ulong OldValue;
}

[StructLayout(LayoutKind.Explicit, Size = 24)]
internal struct VmEventMovToMsr
{
    [FieldOffset(0)] public ulong Msr;
    [FieldOffset(8)] public ulong NewValue;
    [FieldOffset(16)] public ulong OldValue;
}

[StructLayout(LayoutKind.Explicit, Size = 8)]
internal struct VmEventSinglestep
{
    [FieldOffset(0)] public ulong Gfn;
}

[StructLayout(LayoutKind.Explicit, Size = 2)]
internal struct VmEventFastSinglestep
{
    [FieldOffset(0)] public ushort P2midx;
}

/// <summary>struct vm_event_debug (software breakpoints and debug exceptions).</summary>
[StructLayout(LayoutKind.Explicit, Size = 24)]
internal struct VmEventDebug
{
    [FieldOffset(0)] public ulong Gfn;
    [FieldOffset(8)] public ulong PendingDbg;
    [FieldOffset(16)] public uint InsnLength;
    [FieldOffset(20)] public byte Type;
}

[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct VmEventDescAccessVmx
{
    [FieldOffset(0)] public uint InstrInfo;
    [FieldOffset(8)] public ulong ExitQualification;
}

[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct VmEventDescAccessArch
{
    [FieldOffset(0)] public VmEventDescAccessVmx Vmx;
}

[StructLayout(LayoutKind.Explicit, Size = 24)]
internal struct VmEventDescAccess
{
    [FieldOffset(0)] public VmEventDescAccessArch Arch;
    [FieldOffset(16)] public byte Descriptor;
    [FieldOffset(17)] public byte IsWrite;
}

[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct VmEventCpuid
{
    [FieldOffset(0)] public uint InsnLength;
    [FieldOffset(4)] public uint Leaf;
    [FieldOffset(8)] public uint Subleaf;
}

[StructLayout(LayoutKind.Explicit, Size = 24)]
internal struct VmEventInterruptX86
{
    [FieldOffset(0)] public uint Vector;
    [FieldOffset(4)] public uint Type;
    [FieldOffset(8)] public uint ErrorCode;
    [FieldOffset(16)] public ulong Cr2;
}

[StructLayout(LayoutKind.Explicit, Size = 24)]
internal struct VmEventInterrupt
{
    [FieldOffset(0)] public VmEventInterruptX86 X86;
}

/// <summary>struct vm_event_io (Xen 4.18 and later; the union slot is spare space in 4.17).</summary>
[StructLayout(LayoutKind.Explicit, Size = 8)]
internal struct VmEventIo
{
    [FieldOffset(0)] public uint Bytes;
    [FieldOffset(4)] public ushort Port;
    [FieldOffset(6)] public byte In;
    [FieldOffset(7)] public byte Str;
}

[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct VmEventVmexitVmx
{
    [FieldOffset(0)] public ulong Reason;
    [FieldOffset(8)] public ulong Qualification;
}

[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct VmEventVmexitArch
{
    [FieldOffset(0)] public VmEventVmexitVmx Vmx;
}

[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct VmEventVmexit
{
    [FieldOffset(0)] public VmEventVmexitArch Arch;
}

[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct VmEventPaging
{
    [FieldOffset(0)] public ulong Gfn;
    [FieldOffset(8)] public uint P2mt;
    [FieldOffset(12)] public uint Flags;
}

/// <summary>The union u of vm_event_st.</summary>
[StructLayout(LayoutKind.Explicit, Size = 32)]
internal struct VmEventUnion
{
    [FieldOffset(0)] public VmEventPaging MemPaging;
    [FieldOffset(0)] public VmEventMemAccess MemAccess;
    [FieldOffset(0)] public VmEventWriteCtrlreg WriteCtrlreg;
    [FieldOffset(0)] public VmEventMovToMsr MovToMsr;
    [FieldOffset(0)] public VmEventDescAccess DescAccess;
    [FieldOffset(0)] public VmEventSinglestep Singlestep;
    [FieldOffset(0)] public VmEventFastSinglestep FastSinglestep;
    [FieldOffset(0)] public VmEventDebug SoftwareBreakpoint;
    [FieldOffset(0)] public VmEventDebug DebugException;
    [FieldOffset(0)] public VmEventCpuid Cpuid;
    [FieldOffset(0)] public VmEventVmexit Vmexit;
    [FieldOffset(0)] public VmEventIo Io;
    [FieldOffset(0)] public VmEventInterrupt Interrupt;
}

/// <summary>The union regs of vm_event_st's data.</summary>
[StructLayout(LayoutKind.Explicit, Size = 344)]
internal struct VmEventRegs
{
    [FieldOffset(0)] public VmEventRegsX86 X86;
}

/// <summary>struct vm_event_emul_insn_data: the instruction bytes Xen emulates instead of fetching them (VM_EVENT_FLAG_SET_EMUL_INSN_DATA).</summary>
[StructLayout(LayoutKind.Sequential, Size = 16)]
internal unsafe struct VmEventEmulInsnData
{
    public const int Size = 16;

    public fixed byte Data[Size];
}

/// <summary>The union emul of vm_event_st's data (only the instruction bytes are used here).</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct VmEventEmul
{
    [FieldOffset(0)] public VmEventEmulInsnData Insn;
}

/// <summary>The union data of vm_event_st.</summary>
[StructLayout(LayoutKind.Explicit, Size = 344)]
internal struct VmEventData
{
    [FieldOffset(0)] public VmEventRegs Regs;

    /// <summary>data.emul: shares its bytes with the registers (a response sets one or the other).</summary>
    [FieldOffset(0)] public VmEventEmul Emul;
}

/// <summary>vm_event_request_t and vm_event_response_t (struct vm_event_st), one ring slot.</summary>
[StructLayout(LayoutKind.Explicit, Size = 400)]
internal struct VmEventSt
{
    public const int Size = 400;

    [FieldOffset(0)] public uint Version;
    [FieldOffset(4)] public uint Flags;
    [FieldOffset(8)] public uint Reason;
    [FieldOffset(12)] public uint VcpuId;
    [FieldOffset(16)] public ushort Altp2mIdx;
    [FieldOffset(24)] public VmEventUnion U;
    [FieldOffset(56)] public VmEventData Data;
}

/// <summary>The shared header of a ring page from DEFINE_RING_TYPES (struct vm_event_sring up to ring[]).</summary>
[StructLayout(LayoutKind.Explicit, Size = 64)]
internal struct VmEventSringHeader
{
    /// <summary>offsetof(struct vm_event_sring, ring).</summary>
    public const int Size = 64;

    [FieldOffset(0)] public uint ReqProd;
    [FieldOffset(4)] public uint ReqEvent;
    [FieldOffset(8)] public uint RspProd;
    [FieldOffset(12)] public uint RspEvent;
    [FieldOffset(16)] public uint Pvt;
}

/// <summary>struct hvm_save_descriptor: the header before each record of an HVM context.</summary>
[StructLayout(LayoutKind.Explicit, Size = 8)]
internal struct HvmSaveDescriptor
{
    public const ushort CodeEnd = 0;
    public const ushort CodeHeader = 1;
    public const ushort CodeCpu = 2;
    public const ushort CodeMtrr = 14;
    public const ushort CodeCpuXsave = 16;

    [FieldOffset(0)] public ushort Typecode;
    [FieldOffset(2)] public ushort Instance;
    [FieldOffset(4)] public uint Length;
}

/// <summary>struct hvm_hw_cpu: the CPU record (typecode 2) of an HVM context, one per vCPU.</summary>
[StructLayout(LayoutKind.Explicit, Size = 1032)]
internal struct HvmHwCpu
{
    [FieldOffset(0)] public byte FpuRegs;
    [FieldOffset(512)] public ulong Rax;
    [FieldOffset(520)] public ulong Rbx;
    [FieldOffset(528)] public ulong Rcx;
    [FieldOffset(536)] public ulong Rdx;
    [FieldOffset(544)] public ulong Rbp;
    [FieldOffset(552)] public ulong Rsi;
    [FieldOffset(560)] public ulong Rdi;
    [FieldOffset(568)] public ulong Rsp;
    [FieldOffset(576)] public ulong R8;
    [FieldOffset(584)] public ulong R9;
    [FieldOffset(592)] public ulong R10;
    [FieldOffset(600)] public ulong R11;
    [FieldOffset(608)] public ulong R12;
    [FieldOffset(616)] public ulong R13;
    [FieldOffset(624)] public ulong R14;
    [FieldOffset(632)] public ulong R15;
    [FieldOffset(640)] public ulong Rip;
    [FieldOffset(648)] public ulong Rflags;
    [FieldOffset(656)] public ulong Cr0;
    [FieldOffset(664)] public ulong Cr2;
    [FieldOffset(672)] public ulong Cr3;
    [FieldOffset(680)] public ulong Cr4;
    [FieldOffset(688)] public ulong Dr0;
    [FieldOffset(696)] public ulong Dr1;
    [FieldOffset(704)] public ulong Dr2;
    [FieldOffset(712)] public ulong Dr3;
    [FieldOffset(720)] public ulong Dr6;
    [FieldOffset(728)] public ulong Dr7;
    [FieldOffset(736)] public uint CsSel;
    [FieldOffset(740)] public uint DsSel;
    [FieldOffset(744)] public uint EsSel;
    [FieldOffset(748)] public uint FsSel;
    [FieldOffset(752)] public uint GsSel;
    [FieldOffset(756)] public uint SsSel;
    [FieldOffset(760)] public uint TrSel;
    [FieldOffset(764)] public uint LdtrSel;
    [FieldOffset(768)] public uint CsLimit;
    [FieldOffset(772)] public uint DsLimit;
    [FieldOffset(776)] public uint EsLimit;
    [FieldOffset(780)] public uint FsLimit;
    [FieldOffset(784)] public uint GsLimit;
    [FieldOffset(788)] public uint SsLimit;
    [FieldOffset(792)] public uint TrLimit;
    [FieldOffset(796)] public uint LdtrLimit;
    [FieldOffset(800)] public uint IdtrLimit;
    [FieldOffset(804)] public uint GdtrLimit;
    [FieldOffset(808)] public ulong CsBase;
    [FieldOffset(816)] public ulong DsBase;
    [FieldOffset(824)] public ulong EsBase;
    [FieldOffset(832)] public ulong FsBase;
    [FieldOffset(840)] public ulong GsBase;
    [FieldOffset(848)] public ulong SsBase;
    [FieldOffset(856)] public ulong TrBase;
    [FieldOffset(864)] public ulong LdtrBase;
    [FieldOffset(872)] public ulong IdtrBase;
    [FieldOffset(880)] public ulong GdtrBase;
    [FieldOffset(888)] public uint CsArbytes;
    [FieldOffset(892)] public uint DsArbytes;
    [FieldOffset(896)] public uint EsArbytes;
    [FieldOffset(900)] public uint FsArbytes;
    [FieldOffset(904)] public uint GsArbytes;
    [FieldOffset(908)] public uint SsArbytes;
    [FieldOffset(912)] public uint TrArbytes;
    [FieldOffset(916)] public uint LdtrArbytes;
    [FieldOffset(920)] public ulong SysenterCs;
    [FieldOffset(928)] public ulong SysenterEsp;
    [FieldOffset(936)] public ulong SysenterEip;
    [FieldOffset(944)] public ulong ShadowGs;
    [FieldOffset(952)] public ulong MsrFlags;
    [FieldOffset(960)] public ulong MsrLstar;
    [FieldOffset(968)] public ulong MsrStar;
    [FieldOffset(976)] public ulong MsrCstar;
    [FieldOffset(984)] public ulong MsrSyscallMask;
    [FieldOffset(992)] public ulong MsrEfer;
    [FieldOffset(1000)] public ulong MsrTscAux;
    [FieldOffset(1008)] public ulong Tsc;
    [FieldOffset(1016)] public uint PendingEvent;
    [FieldOffset(1020)] public uint ErrorCode;
    [FieldOffset(1024)] public uint Flags;
    [FieldOffset(1028)] public uint Pad0;
}

/// <summary>struct hvm_hw_mtrr (typecode 14): only the PAT is used.</summary>
[StructLayout(LayoutKind.Explicit, Size = 240)]
internal struct HvmHwMtrr
{
    [FieldOffset(0)] public ulong MsrPatCr;
    [FieldOffset(224)] public ulong MsrMtrrCap;
    [FieldOffset(232)] public ulong MsrMtrrDefType;
}

/// <summary>The fixed head of struct hvm_hw_cpu_xsave (typecode 16; the record is variable-length).</summary>
[StructLayout(LayoutKind.Explicit, Size = 24)]
internal struct HvmHwCpuXsaveHead
{
    [FieldOffset(0)] public ulong XfeatureMask;
    [FieldOffset(8)] public ulong Xcr0;
    [FieldOffset(16)] public ulong Xcr0Accum;
}

/// <summary>struct xen_domctl_getdomaininfo (xc_domaininfo_t), domctl interface 0x15-0x17.</summary>
[StructLayout(LayoutKind.Explicit, Size = 112)]
internal struct XenDomctlGetdomaininfo
{
    public const uint FlagDying = 1u << 0;
    public const uint FlagHvmGuest = 1u << 1;

    /// <summary>XEN_X86_EMU_PIC in arch_config.emulation_flags: Xen emulates a PIC for HVM guests, never for PVH ones.</summary>
    public const uint EmuPic = 1u << 5;
    public const uint FlagShutdown = 1u << 2;
    public const uint FlagPaused = 1u << 3;
    public const uint FlagBlocked = 1u << 4;
    public const uint FlagRunning = 1u << 5;
    public const uint FlagDebugged = 1u << 6;
    public const uint FlagXsDomain = 1u << 7;
    public const uint FlagHap = 1u << 8;

    [FieldOffset(0)] public ushort Domain;
    [FieldOffset(4)] public uint Flags;
    [FieldOffset(8)] public ulong TotPages;
    [FieldOffset(16)] public ulong MaxPages;
    [FieldOffset(24)] public ulong OutstandingPages;
    [FieldOffset(32)] public ulong ShrPages;
    [FieldOffset(40)] public ulong PagedPages;
    [FieldOffset(48)] public ulong SharedInfoFrame;
    [FieldOffset(56)] public ulong CpuTime;
    [FieldOffset(64)] public uint NrOnlineVcpus;
    [FieldOffset(68)] public uint MaxVcpuId;
    [FieldOffset(72)] public uint Ssidref;
    [FieldOffset(76)] public byte Handle;
    [FieldOffset(92)] public uint Cpupool;
    [FieldOffset(96)] public byte GpaddrBits;
    [FieldOffset(104)] public XenArchDomainconfig ArchConfig;
}

/// <summary>struct xen_arch_domainconfig (x86).</summary>
[StructLayout(LayoutKind.Explicit, Size = 8)]
internal struct XenArchDomainconfig
{
    [FieldOffset(0)] public uint EmulationFlags;
    [FieldOffset(4)] public uint MiscFlags;
}

/// <summary>
/// struct xen_domctl with the monitor op in its union: what XEN_DOMCTL_monitor_op takes. Only the ops with no libxenctrl
/// wrapper are sent this way (XEN_DOMCTL_MONITOR_OP_CONTROL_REGISTERS); xc_domctl fills in interface_version.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 144)]
internal struct XenDomctlMonitorOp
{
    public const uint CmdMonitorOp = 77;               // XEN_DOMCTL_monitor_op
    public const uint OpControlRegisters = 4;          // XEN_DOMCTL_MONITOR_OP_CONTROL_REGISTERS

    [FieldOffset(0)] public uint Cmd;
    [FieldOffset(4)] public uint InterfaceVersion;
    [FieldOffset(8)] public ushort Domain;
    [FieldOffset(16)] public uint Op;
    [FieldOffset(20)] public uint Event;
}

/// <summary>struct xen_domctl_getvcpuinfo (xc_vcpuinfo_t): what xc_vcpu_getinfo fills in.</summary>
[StructLayout(LayoutKind.Explicit, Size = 24)]
internal struct XenDomctlGetvcpuinfo
{
    [FieldOffset(0)] public uint Vcpu;
    [FieldOffset(4)] public byte Online;
    [FieldOffset(5)] public byte Blocked;
    [FieldOffset(6)] public byte Running;
    [FieldOffset(8)] public ulong CpuTime;
    [FieldOffset(16)] public uint Cpu;
}
