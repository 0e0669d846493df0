using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;
using Vmi.Xen.Native;

namespace Vmi.Xen;

/// <summary>
/// An HVM context as xc_domain_hvm_getcontext returns it: a sequence of save records, each an
/// hvm_save_descriptor (typecode, instance, length) followed by its body, ending with typecode 0.
/// Reads and writes the records that hold a vCPU's registers: CPU (2), MTRR (14, for the PAT), CPU_XSAVE (16, for XCR0).
/// </summary>
internal static class HvmContext
{
    private static readonly int DescriptorSize = Unsafe.SizeOf<HvmSaveDescriptor>();

    /// <summary>The offset of the body of record (<paramref name="typecode"/>, <paramref name="instance"/>), or -1.</summary>
    public static int FindRecord(ReadOnlySpan<byte> context, ushort typecode, ushort instance, int minimumLength)
    {
        for (int offset = 0; TryReadRecord(context, offset, out HvmSaveDescriptor d, out int body); offset = body + (int)d.Length)
        {
            if (d.Typecode == typecode && d.Instance == instance)
            {
                if (d.Length < minimumLength)
                {
                    throw new VmiFormatException($"the record of type {typecode} is {d.Length} bytes, shorter than the {minimumLength} expected", "HVM context", offset);
                }

                return body;
            }

            if (d.Typecode == HvmSaveDescriptor.CodeEnd)
            {
                break;
            }
        }

        return -1;
    }

    /// <summary>The descriptor of the record at <paramref name="offset"/> and where its body starts; false past the context's end.</summary>
    private static bool TryReadRecord(ReadOnlySpan<byte> context, int offset, out HvmSaveDescriptor d, out int body)
    {
        d = default;
        body = offset + DescriptorSize;
        if (body > context.Length)
        {
            return false;
        }

        d = MemoryMarshal.Read<HvmSaveDescriptor>(context[offset..]);
        if (d.Length > (uint)(context.Length - body))
        {
            throw new VmiFormatException($"a record of type {d.Typecode} claims {d.Length} bytes, more than the context holds", "HVM context", offset);
        }

        return true;
    }

    public static Registers GetRegisters(ReadOnlySpan<byte> context, VcpuId vcpu, int vcpuCount)
    {
        int cpuAt = FindRecord(context, HvmSaveDescriptor.CodeCpu, vcpu.Value, Unsafe.SizeOf<HvmHwCpu>());
        if (cpuAt < 0)
        {
            throw new VcpuNotFoundException(vcpu, vcpuCount);
        }

        HvmHwCpu c = MemoryMarshal.Read<HvmHwCpu>(context[cpuAt..]);
        var r = new Registers
        {
            Rax = c.Rax, Rbx = c.Rbx, Rcx = c.Rcx, Rdx = c.Rdx, Rsp = c.Rsp, Rbp = c.Rbp, Rsi = c.Rsi, Rdi = c.Rdi,
            R8 = c.R8, R9 = c.R9, R10 = c.R10, R11 = c.R11, R12 = c.R12, R13 = c.R13, R14 = c.R14, R15 = c.R15,
            Rip = c.Rip, Rflags = c.Rflags,
            Cr0 = c.Cr0, Cr2 = c.Cr2, Cr3 = c.Cr3, Cr4 = c.Cr4,
            Dr0 = c.Dr0, Dr1 = c.Dr1, Dr2 = c.Dr2, Dr3 = c.Dr3, Dr6 = c.Dr6, Dr7 = c.Dr7,
            Cs = new SegmentRegister((ushort)c.CsSel, c.CsBase, c.CsLimit, (ushort)c.CsArbytes),
            Ds = new SegmentRegister((ushort)c.DsSel, c.DsBase, c.DsLimit, (ushort)c.DsArbytes),
            Es = new SegmentRegister((ushort)c.EsSel, c.EsBase, c.EsLimit, (ushort)c.EsArbytes),
            Fs = new SegmentRegister((ushort)c.FsSel, c.FsBase, c.FsLimit, (ushort)c.FsArbytes),
            Gs = new SegmentRegister((ushort)c.GsSel, c.GsBase, c.GsLimit, (ushort)c.GsArbytes),
            Ss = new SegmentRegister((ushort)c.SsSel, c.SsBase, c.SsLimit, (ushort)c.SsArbytes),
            Tr = new SegmentRegister((ushort)c.TrSel, c.TrBase, c.TrLimit, (ushort)c.TrArbytes),
            Ldtr = new SegmentRegister((ushort)c.LdtrSel, c.LdtrBase, c.LdtrLimit, (ushort)c.LdtrArbytes),
            Idtr = new DescriptorTable(c.IdtrBase, (ushort)c.IdtrLimit),
            Gdtr = new DescriptorTable(c.GdtrBase, (ushort)c.GdtrLimit),
            SysenterCs = c.SysenterCs, SysenterEsp = c.SysenterEsp, SysenterEip = c.SysenterEip,
            MsrEfer = c.MsrEfer, MsrStar = c.MsrStar, MsrLstar = c.MsrLstar, MsrCstar = c.MsrCstar,
            MsrSyscallMask = c.MsrSyscallMask, ShadowGs = c.ShadowGs, TscAux = c.MsrTscAux,
        };

        int mtrrAt = FindRecord(context, HvmSaveDescriptor.CodeMtrr, vcpu.Value, Unsafe.SizeOf<HvmHwMtrr>());
        if (mtrrAt >= 0)
        {
            r = r with { MsrPat = MemoryMarshal.Read<HvmHwMtrr>(context[mtrrAt..]).MsrPatCr };
        }

        int xsaveAt = FindRecord(context, HvmSaveDescriptor.CodeCpuXsave, vcpu.Value, Unsafe.SizeOf<HvmHwCpuXsaveHead>());
        if (xsaveAt >= 0)
        {
            r = r with { Xcr0 = MemoryMarshal.Read<HvmHwCpuXsaveHead>(context[xsaveAt..]).Xcr0 };
        }

        return r;
    }

    /// <summary>Writes <paramref name="r"/> into the vCPU's records; fields the records do not hold (FPU, TSC, pending event) are kept.</summary>
    public static void SetRegisters(Span<byte> context, VcpuId vcpu, int vcpuCount, Registers r)
    {
        ArgumentNullException.ThrowIfNull(r);
        int cpuAt = FindRecord(context, HvmSaveDescriptor.CodeCpu, vcpu.Value, Unsafe.SizeOf<HvmHwCpu>());
        if (cpuAt < 0)
        {
            throw new VcpuNotFoundException(vcpu, vcpuCount);
        }

        ref HvmHwCpu c = ref Unsafe.As<byte, HvmHwCpu>(ref context[cpuAt]);
        c.Rax = r.Rax; c.Rbx = r.Rbx; c.Rcx = r.Rcx; c.Rdx = r.Rdx; c.Rsp = r.Rsp; c.Rbp = r.Rbp; c.Rsi = r.Rsi; c.Rdi = r.Rdi;
        c.R8 = r.R8; c.R9 = r.R9; c.R10 = r.R10; c.R11 = r.R11; c.R12 = r.R12; c.R13 = r.R13; c.R14 = r.R14; c.R15 = r.R15;
        c.Rip = r.Rip; c.Rflags = r.Rflags;
        c.Cr0 = r.Cr0; c.Cr2 = r.Cr2; c.Cr3 = r.Cr3; c.Cr4 = r.Cr4;
        c.Dr0 = r.Dr0; c.Dr1 = r.Dr1; c.Dr2 = r.Dr2; c.Dr3 = r.Dr3; c.Dr6 = r.Dr6; c.Dr7 = r.Dr7;
        SetSegment(r.Cs, out c.CsSel, out c.CsBase, out c.CsLimit, out c.CsArbytes);
        SetSegment(r.Ds, out c.DsSel, out c.DsBase, out c.DsLimit, out c.DsArbytes);
        SetSegment(r.Es, out c.EsSel, out c.EsBase, out c.EsLimit, out c.EsArbytes);
        SetSegment(r.Fs, out c.FsSel, out c.FsBase, out c.FsLimit, out c.FsArbytes);
        SetSegment(r.Gs, out c.GsSel, out c.GsBase, out c.GsLimit, out c.GsArbytes);
        SetSegment(r.Ss, out c.SsSel, out c.SsBase, out c.SsLimit, out c.SsArbytes);
        SetSegment(r.Tr, out c.TrSel, out c.TrBase, out c.TrLimit, out c.TrArbytes);
        SetSegment(r.Ldtr, out c.LdtrSel, out c.LdtrBase, out c.LdtrLimit, out c.LdtrArbytes);
        c.IdtrBase = r.Idtr.Base; c.IdtrLimit = r.Idtr.Limit;
        c.GdtrBase = r.Gdtr.Base; c.GdtrLimit = r.Gdtr.Limit;
        c.SysenterCs = r.SysenterCs; c.SysenterEsp = r.SysenterEsp; c.SysenterEip = r.SysenterEip;
        c.MsrEfer = r.MsrEfer; c.MsrStar = r.MsrStar; c.MsrLstar = r.MsrLstar; c.MsrCstar = r.MsrCstar;
        c.MsrSyscallMask = r.MsrSyscallMask; c.ShadowGs = r.ShadowGs; c.MsrTscAux = r.TscAux;

        int mtrrAt = FindRecord(context, HvmSaveDescriptor.CodeMtrr, vcpu.Value, Unsafe.SizeOf<HvmHwMtrr>());
        if (mtrrAt >= 0)
        {
            Unsafe.As<byte, HvmHwMtrr>(ref context[mtrrAt]).MsrPatCr = r.MsrPat;
        }

        int xsaveAt = FindRecord(context, HvmSaveDescriptor.CodeCpuXsave, vcpu.Value, Unsafe.SizeOf<HvmHwCpuXsaveHead>());
        if (xsaveAt >= 0)
        {
            Unsafe.As<byte, HvmHwCpuXsaveHead>(ref context[xsaveAt]).Xcr0 = r.Xcr0;
        }
    }

    /// <summary>
    /// The records of <paramref name="context"/> that hold vCPU registers (HEADER, then every vCPU's CPU, MTRR and
    /// CPU_XSAVE, then END): what SetRegisters writes back. Xen loads only the records it is given, and a vCPU whose
    /// CPU record is missing is left down, so every vCPU's is kept. Everything else is left out on purpose: the
    /// interrupt controllers and timers (LAPIC_REGS, IOAPIC, PIT, HPET...) change while the domain is paused — an event
    /// channel upcall sets its vector in the LAPIC's IRR — and writing back the snapshot's copy would drop it, while the
    /// guest's upcall-pending flag stays set, so Xen never raises the vector again and the guest waits forever.
    /// </summary>
    public static byte[] VcpuRecords(ReadOnlySpan<byte> context)
    {
        var kept = new List<byte>(context.Length);
        for (int offset = 0; TryReadRecord(context, offset, out HvmSaveDescriptor d, out int body); offset = body + (int)d.Length)
        {
            if (d.Typecode is HvmSaveDescriptor.CodeHeader or HvmSaveDescriptor.CodeCpu or HvmSaveDescriptor.CodeMtrr
                or HvmSaveDescriptor.CodeCpuXsave or HvmSaveDescriptor.CodeEnd)
            {
                kept.AddRange(context[offset..(body + (int)d.Length)]);
            }

            if (d.Typecode == HvmSaveDescriptor.CodeEnd)
            {
                return [.. kept];
            }
        }

        throw new VmiFormatException("the context does not end with an END record", "HVM context", context.Length);
    }

    private static void SetSegment(SegmentRegister s, out uint selector, out ulong baseAddress, out uint limit, out uint arbytes)
    {
        selector = s.Selector;
        baseAddress = s.Base;
        limit = s.Limit;
        arbytes = s.Attributes;
    }
}
