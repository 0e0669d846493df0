using Vmi.Core;
using Vmi.Core.Arch.Amd64;
using Vmi.Xen.Native;

namespace Vmi.Xen.Events;

/// <summary>Turns vm_event requests into <see cref="VmiEvent"/>s and <see cref="VmiEventResponse"/>s into vm_event responses.</summary>
internal static class VmEventTranslator
{
    /// <summary>The #DB vector: debug exceptions are reported without one.</summary>
    public const byte DebugVector = 1;

    public static VmiEvent ToEvent(in VmEventSt request)
    {
        VmiEventFlags flags = VmiEventFlags.None;
        if ((request.Flags & VmEventAbi.FlagVcpuPaused) != 0)
        {
            flags |= VmiEventFlags.VcpuPaused;
        }

        View view = View.Default;
        if ((request.Flags & VmEventAbi.FlagAlternateP2m) != 0)
        {
            flags |= VmiEventFlags.AltP2m;
            view = new View(request.Altp2mIdx);
        }

        Registers registers = ToRegisters(request.Data.Regs.X86);
        return new VmiEvent(new VcpuId((ushort)request.VcpuId), view, flags, registers, ToReason(request, registers));
    }

    public static EventReason ToReason(in VmEventSt request, Registers registers)
    {
        ref readonly VmEventUnion u = ref request.U;
        switch (request.Reason)
        {
            case VmEventAbi.ReasonMemAccess:
            {
                ref readonly VmEventMemAccess m = ref u.MemAccess;
                Va? gla = (m.Flags & VmEventAbi.MemAccessGlaValid) != 0 ? new Va(m.Gla) : null;
                var access = (MemoryAccess)(m.Flags & (VmEventAbi.MemAccessR | VmEventAbi.MemAccessW | VmEventAbi.MemAccessX));
                return new MemoryAccessReason(new Pa((m.Gfn << 12) + (m.Offset & 0xFFF)), gla, access);
            }

            case VmEventAbi.ReasonWriteCtrlreg:
            {
                ref readonly VmEventWriteCtrlreg c = ref u.WriteCtrlreg;
                ControlRegister? reg = c.Index switch
                {
                    VmEventAbi.X86Cr0 => ControlRegister.Cr0,
                    VmEventAbi.X86Cr3 => ControlRegister.Cr3,
                    VmEventAbi.X86Cr4 => ControlRegister.Cr4,
                    VmEventAbi.X86Xcr0 => ControlRegister.Xcr0,
                    _ => null,
                };
                return reg is { } r ? new ControlRegisterWriteReason(r, c.NewValue, c.OldValue) : new UnknownReason(request.Reason);
            }

            case VmEventAbi.ReasonMovToMsr:
                return new MsrWriteReason((uint)u.MovToMsr.Msr, u.MovToMsr.NewValue, u.MovToMsr.OldValue);

            case VmEventAbi.ReasonSoftwareBreakpoint:
                return new SoftwareBreakpointReason(new Gfn(u.SoftwareBreakpoint.Gfn), new Va(registers.Rip), u.SoftwareBreakpoint.InsnLength);

            case VmEventAbi.ReasonDebugException:
            {
                ref readonly VmEventDebug d = ref u.DebugException;
                return new DebugExceptionReason(new Gfn(d.Gfn), new Va(registers.Rip), DebugVector, (InterruptType)d.Type, d.InsnLength, d.PendingDbg);
            }

            case VmEventAbi.ReasonSinglestep:
                return new SinglestepReason(new Gfn(u.Singlestep.Gfn), new Va(registers.Rip));

            case VmEventAbi.ReasonCpuid:
                return new CpuidReason(u.Cpuid.Leaf, u.Cpuid.Subleaf, u.Cpuid.InsnLength);

            case VmEventAbi.ReasonIoInstruction:
                return new IoReason(u.Io.Port, u.Io.Bytes, u.Io.In != 0, u.Io.Str != 0);

            case VmEventAbi.ReasonGuestRequest:
                return new GuestRequestReason();

            case VmEventAbi.ReasonDescriptorAccess:
            {
                ref readonly VmEventDescAccess d = ref u.DescAccess;
                if (d.Descriptor is >= 1 and <= 4)
                {
                    return new DescriptorAccessReason((DescriptorKind)d.Descriptor, d.IsWrite != 0, d.Arch.Vmx.ExitQualification, 0);
                }

                return new UnknownReason(request.Reason);
            }

            default:
                return new UnknownReason(request.Reason);
        }
    }

    public static Registers ToRegisters(in VmEventRegsX86 x)
    {
        return new Registers
        {
            Rax = x.Rax, Rbx = x.Rbx, Rcx = x.Rcx, Rdx = x.Rdx, Rsp = x.Rsp, Rbp = x.Rbp, Rsi = x.Rsi, Rdi = x.Rdi,
            R8 = x.R8, R9 = x.R9, R10 = x.R10, R11 = x.R11, R12 = x.R12, R13 = x.R13, R14 = x.R14, R15 = x.R15,
            Rip = x.Rip, Rflags = x.Rflags,
            Cr0 = x.Cr0, Cr2 = x.Cr2, Cr3 = x.Cr3, Cr4 = x.Cr4,
            Dr6 = x.Dr6, Dr7 = x.Dr7,
            SysenterCs = x.SysenterCs, SysenterEsp = x.SysenterEsp, SysenterEip = x.SysenterEip,
            MsrEfer = x.MsrEfer, MsrStar = x.MsrStar, MsrLstar = x.MsrLstar,
            ShadowGs = x.ShadowGs,
            Gdtr = new DescriptorTable(x.GdtrBase, x.GdtrLimit),
            Cs = Segment(x.CsSel, x.CsBase, x.Cs),
            Ss = Segment(x.SsSel, x.SsBase, x.Ss),
            Ds = Segment(x.DsSel, x.DsBase, x.Ds),
            Es = Segment(x.EsSel, x.EsBase, x.Es),
            Fs = Segment(x.FsSel, x.FsBase, x.Fs),
            Gs = Segment(x.GsSel, x.GsBase, x.Gs),
        };
    }

    /// <summary>The limit field is right-shifted by 12 when the granularity bit (bit 11 of ar) is set.</summary>
    private static SegmentRegister Segment(ushort selector, ulong baseAddress, VmEventX86SelectorReg reg)
    {
        uint limit = reg.Limit;
        if ((reg.Ar & 0x800) != 0)
        {
            limit = (limit << 12) | 0xFFF;
        }

        return new SegmentRegister(selector, baseAddress, limit, reg.Ar);
    }

    /// <summary>
    /// The response Xen accepts for <paramref name="request"/>: a copy of the request (Xen reads the reason and
    /// the control-register index back for a deny, and takes every register of the block when registers are
    /// set) with our version, the vCPU unpaused if the request paused it, and the asked-for actions.
    /// </summary>
    public static VmEventSt ToResponse(in VmEventSt request, VmiEventResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        response.Validate();
        VmEventSt rsp = request;
        rsp.Version = VmEventAbi.InterfaceVersion;
        rsp.Flags = request.Flags & VmEventAbi.FlagVcpuPaused;
        VmiEventResponseFlags f = response.Flags;
        if ((f & VmiEventResponseFlags.Deny) != 0)
        {
            rsp.Flags |= VmEventAbi.FlagDeny;
        }

        if ((f & VmiEventResponseFlags.Emulate) != 0)
        {
            rsp.Flags |= VmEventAbi.FlagEmulate;
        }

        if ((f & VmiEventResponseFlags.ToggleSinglestep) != 0)
        {
            rsp.Flags |= VmEventAbi.FlagToggleSinglestep;
        }

        if ((f & VmiEventResponseFlags.ToggleFastSinglestep) != 0)
        {
            rsp.Flags |= VmEventAbi.FlagFastSinglestep;
            rsp.U.FastSinglestep.P2midx = response.View!.Value.Value;
        }
        else if (response.View is { } view)
        {
            rsp.Flags |= VmEventAbi.FlagAlternateP2m;
            rsp.Altp2mIdx = view.Value;
        }

        if (request.Reason == VmEventAbi.ReasonCpuid && (request.Flags & VmEventAbi.FlagVcpuPaused) != 0
            && (response.Flags & VmiEventResponseFlags.Emulate) == 0 && (response.Registers is null || response.Registers.Rip == request.Data.Regs.X86.Rip))
        {
            // Xen (hvm_vmexit_cpuid) puts the results in RAX..RDX and leaves RIP on the CPUID for the monitor to step
            // past: left there, the guest runs CPUID again with the result as its leaf. Step past it, as xen-access does.
            rsp.Flags |= VmEventAbi.FlagSetRegisters;
            rsp.Data.Regs.X86.Rip = request.Data.Regs.X86.Rip + request.U.Cpuid.InsnLength;
        }

        if (request.Reason == VmEventAbi.ReasonDescriptorAccess && (request.Flags & VmEventAbi.FlagVcpuPaused) != 0
            && (rsp.Flags & VmEventAbi.FlagEmulate) == 0 && (response.Registers is null || response.Registers.Rip == request.Data.Regs.X86.Rip))
        {
            // With the monitor on, Xen (hvm_descriptor_access_intercept) leaves the LGDT/SIDT/... to the monitor: answered
            // without "emulate", the vCPU runs the same instruction again and the event repeats forever (the lab's guest
            // sent 20000 of them and no event of any other kind). Emulate it, as xen-access does.
            rsp.Flags |= VmEventAbi.FlagEmulate;
        }

        if (response.Registers is { } gp)
        {
            rsp.Flags |= VmEventAbi.FlagSetRegisters;
            ref VmEventRegsX86 x = ref rsp.Data.Regs.X86;
            x.Rax = gp.Rax; x.Rbx = gp.Rbx; x.Rcx = gp.Rcx; x.Rdx = gp.Rdx; x.Rsp = gp.Rsp; x.Rbp = gp.Rbp; x.Rsi = gp.Rsi; x.Rdi = gp.Rdi;
            x.R8 = gp.R8; x.R9 = gp.R9; x.R10 = gp.R10; x.R11 = gp.R11; x.R12 = gp.R12; x.R13 = gp.R13; x.R14 = gp.R14; x.R15 = gp.R15;
            x.Rip = request.Reason == VmEventAbi.ReasonCpuid && gp.Rip == request.Data.Regs.X86.Rip ? x.Rip : gp.Rip;
            x.Rflags = gp.Rflags;
        }

        return rsp;
    }

    /// <summary>
    /// The answer that runs the instruction a breakpoint of this session replaced, with the INT3 still in memory: Xen
    /// emulates <paramref name="instruction"/> (the original bytes at RIP, up to 16) instead of fetching the INT3
    /// (VM_EVENT_FLAG_EMULATE with SET_EMUL_INSN_DATA, which Xen accepts for software-breakpoint events on Intel and AMD
    /// alike: its x86 emulator is common code). No registers can be set with it: they share the response's data union.
    /// </summary>
    public static VmEventSt StepOverResponse(in VmEventSt request, ReadOnlySpan<byte> instruction)
    {
        if (request.Reason != VmEventAbi.ReasonSoftwareBreakpoint)
        {
            throw new ArgumentException($"Only a software-breakpoint event can be stepped over by emulation; this event's reason is {request.Reason}.", nameof(request));
        }

        VmEventSt rsp = ContinueResponse(request);
        rsp.Flags |= VmEventAbi.FlagEmulate | VmEventAbi.FlagSetEmulInsnData;
        rsp.Data = default;
        unsafe
        {
            instruction[..Math.Min(instruction.Length, VmEventEmulInsnData.Size)].CopyTo(new Span<byte>(rsp.Data.Emul.Insn.Data, VmEventEmulInsnData.Size));
        }

        return rsp;
    }

    /// <summary>The plain "carry on" answer: the vCPU is unpaused, nothing else.</summary>
    public static VmEventSt ContinueResponse(in VmEventSt request) => ToResponse(request, VmiEventResponse.Continue);

    /// <summary>
    /// The answer to a request of another interface version: only the header, whose layout every version
    /// shares, with the request's own version echoed (Xen drops responses of a version other than its own),
    /// so the vCPU is unpaused even though the rest of the request cannot be read.
    /// </summary>
    public static VmEventSt MismatchResponse(in VmEventSt request)
    {
        VmEventSt rsp = default;
        rsp.Version = request.Version;
        rsp.Flags = request.Flags & VmEventAbi.FlagVcpuPaused;
        rsp.Reason = request.Reason;
        rsp.VcpuId = request.VcpuId;
        return rsp;
    }

    /// <summary>The interrupt that re-delivers a trapped breakpoint or debug exception to the guest.</summary>
    public static Interrupt? ReinjectionFor(in VmEventSt request) => request.Reason switch
    {
        VmEventAbi.ReasonSoftwareBreakpoint => Interrupt.Breakpoint(request.U.SoftwareBreakpoint.InsnLength),
        VmEventAbi.ReasonDebugException => new Interrupt(DebugVector, (InterruptType)request.U.DebugException.Type, null, request.U.DebugException.InsnLength),
        _ => null,
    };
}
