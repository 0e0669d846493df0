using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.PowerShell;

/// <summary>
/// One event from the guest (Wait-VmiEvent), one subclass per reason. The vCPU that raised it waits until the
/// pipeline has handled the record; then it is answered with <see cref="Response"/> (default: continue),
/// <see cref="ResponseView"/> and <see cref="ResponseRegisters"/>, as set by the pipeline.
/// </summary>
public abstract class VmiEventRecord
{
    private protected VmiEventRecord(VmiSession session, VmiEvent vmiEvent, long sequence)
    {
        Session = session;
        Event = vmiEvent;
        Sequence = sequence;
        TimeCreated = DateTime.Now;
        Vcpu = vmiEvent.Vcpu.Value;
        View = vmiEvent.View.Value;
        Flags = vmiEvent.Flags;
        Registers = vmiEvent.Registers;
    }

    public VmiSession Session { get; }

    /// <summary>The engine's event.</summary>
    public VmiEvent Event { get; }

    /// <summary>1 for the first event Wait-VmiEvent wrote, then 2, 3...</summary>
    public long Sequence { get; }

    public DateTime TimeCreated { get; }

    /// <summary>What raised the event: MemoryAccess, ControlRegister, Msr, Breakpoint, ...</summary>
    public abstract string Reason { get; }

    public ushort Vcpu { get; }

    public ushort View { get; }

    public VmiEventFlags Flags { get; }

    /// <summary>The vCPU's registers when the event was raised.</summary>
    public Registers Registers { get; }

    public ulong Rip => Registers.Rip;

    public ulong Rsp => Registers.Rsp;

    /// <summary>The vCPU's page-table root when the event was raised (binds -Cr3 of the memory cmdlets).</summary>
    public ulong Cr3 => Registers.TranslationRoot.Value;

    /// <summary>
    /// How to answer: Continue (the default), Deny, Emulate, ReinjectInterrupt, ToggleSinglestep, ToggleFastSinglestep —
    /// set it in the pipeline, e.g. <c>$_.Response = 'Deny'</c>.
    /// </summary>
    public VmiEventResponseFlags Response { get; set; }

    /// <summary>Switch the vCPU to this view before it resumes (needed with ToggleFastSinglestep).</summary>
    public ushort? ResponseView { get; set; }

    /// <summary>
    /// The registers the vCPU resumes with: <see cref="Registers"/> with general-purpose registers changed, e.g.
    /// <c>$_.ResponseRegisters = $_.Registers.With('Rax', 0x42)</c>. Null: none changed.
    /// </summary>
    public Registers? ResponseRegisters { get; set; }

    /// <summary>Shorthand for <c>$_.Response = 'Deny'</c>.</summary>
    public void Deny() => Response |= VmiEventResponseFlags.Deny;

    internal VmiEventResponse ToResponse() =>
        Response == VmiEventResponseFlags.Continue && ResponseView is null && ResponseRegisters is null
            ? VmiEventResponse.Continue
            : new VmiEventResponse(Response, ResponseView is { } v ? new View(v) : null, ResponseRegisters);

    /// <summary>The reason's details in one line (for the default view).</summary>
    public abstract string Details { get; }

    public override string ToString() => $"#{Sequence} {Reason} on vCPU {Vcpu}: {Details}";

    internal static VmiEventRecord Create(VmiSession session, VmiEvent e, long sequence) => e.Reason switch
    {
        MemoryAccessReason r => new VmiMemoryAccessEvent(session, e, sequence, r),
        ControlRegisterWriteReason r => new VmiControlRegisterEvent(session, e, sequence, r),
        MsrWriteReason r => new VmiMsrEvent(session, e, sequence, r),
        SoftwareBreakpointReason r => new VmiBreakpointEvent(session, e, sequence, r),
        WatchpointReason r => new VmiWatchpointEvent(session, e, sequence, r),
        DebugExceptionReason r => new VmiDebugExceptionEvent(session, e, sequence, r),
        SinglestepReason r => new VmiSinglestepEvent(session, e, sequence, r),
        CpuidReason r => new VmiCpuidEvent(session, e, sequence, r),
        IoReason r => new VmiIoEvent(session, e, sequence, r),
        HypercallReason r => new VmiHypercallEvent(session, e, sequence, r),
        GuestRequestReason => new VmiGuestRequestEvent(session, e, sequence),
        DescriptorAccessReason r => new VmiDescriptorAccessEvent(session, e, sequence, r),
        UnknownReason r => new VmiUnknownEvent(session, e, sequence, r.RawReason),
        _ => new VmiUnknownEvent(session, e, sequence, uint.MaxValue),
    };
}

/// <summary>An access the view's memory access settings forbid.</summary>
public sealed class VmiMemoryAccessEvent : VmiEventRecord
{
    internal VmiMemoryAccessEvent(VmiSession session, VmiEvent e, long sequence, MemoryAccessReason r)
        : base(session, e, sequence)
    {
        Pa = r.Pa.Value;
        Gla = r.Gla?.Value;
        Access = r.Access;
    }

    public override string Reason => "MemoryAccess";

    public ulong Pa { get; }

    public ulong Gfn => Pa >> Amd64.PageShift;

    /// <summary>The guest linear (virtual) address, when the hardware reported it.</summary>
    public ulong? Gla { get; }

    /// <summary>The kind of access that was made (R, W, X).</summary>
    public MemoryAccess Access { get; }

    /// <summary>The accessed address: the virtual one when reported (under <see cref="VmiEventRecord.Cr3"/>), else the physical one.</summary>
    public ulong Address => Gla ?? Pa;

    /// <summary>True when <see cref="Address"/> is physical (no linear address was reported). Piping the event into Read-VmiMemory reads there.</summary>
    public bool Physical => Gla is null;

    public override string Details => $"{Access} at PA 0x{Pa:x}{(Gla is { } g ? $" (VA 0x{g:x})" : string.Empty)}";
}

/// <summary>A write to a monitored control register.</summary>
public sealed class VmiControlRegisterEvent : VmiEventRecord
{
    internal VmiControlRegisterEvent(VmiSession session, VmiEvent e, long sequence, ControlRegisterWriteReason r)
        : base(session, e, sequence)
    {
        Register = r.Register;
        NewValue = r.NewValue;
        OldValue = r.OldValue;
    }

    public override string Reason => "ControlRegister";

    public ControlRegister Register { get; }

    public ulong NewValue { get; }

    public ulong OldValue { get; }

    public override string Details => $"{Register} 0x{OldValue:x} -> 0x{NewValue:x}";
}

/// <summary>A write to a monitored MSR.</summary>
public sealed class VmiMsrEvent : VmiEventRecord
{
    internal VmiMsrEvent(VmiSession session, VmiEvent e, long sequence, MsrWriteReason r)
        : base(session, e, sequence)
    {
        Msr = r.Msr;
        NewValue = r.NewValue;
        OldValue = r.OldValue;
    }

    public override string Reason => "Msr";

    public uint Msr { get; }

    public ulong NewValue { get; }

    public ulong OldValue { get; }

    public override string Details => $"MSR 0x{Msr:x} 0x{OldValue:x} -> 0x{NewValue:x}";
}

/// <summary>A software breakpoint (INT3).</summary>
public sealed class VmiBreakpointEvent : VmiEventRecord
{
    internal VmiBreakpointEvent(VmiSession session, VmiEvent e, long sequence, SoftwareBreakpointReason r)
        : base(session, e, sequence)
    {
        Gfn = r.Gfn.Value;
        Va = r.Va.Value;
        InstructionLength = r.InstructionLength;
    }

    public override string Reason => "Breakpoint";

    public ulong Gfn { get; }

    public ulong Va { get; }

    public uint InstructionLength { get; }

    public override string Details => $"INT3 at VA 0x{Va:x} (GFN 0x{Gfn:x})";
}

/// <summary>A debug exception (#DB).</summary>
public sealed class VmiDebugExceptionEvent : VmiEventRecord
{
    internal VmiDebugExceptionEvent(VmiSession session, VmiEvent e, long sequence, DebugExceptionReason r)
        : base(session, e, sequence)
    {
        Gfn = r.Gfn.Value;
        Va = r.Va.Value;
        Vector = r.Vector;
        Type = r.Type;
        InstructionLength = r.InstructionLength;
        PendingDebugExceptions = r.PendingDebugExceptions;
    }

    public override string Reason => "DebugException";

    public ulong Gfn { get; }

    public ulong Va { get; }

    public byte Vector { get; }

    public InterruptType Type { get; }

    public uint InstructionLength { get; }

    public ulong PendingDebugExceptions { get; }

    public override string Details => $"#DB vector {Vector} at VA 0x{Va:x}";
}

/// <summary>One single-stepped instruction.</summary>
public sealed class VmiSinglestepEvent : VmiEventRecord
{
    internal VmiSinglestepEvent(VmiSession session, VmiEvent e, long sequence, SinglestepReason r)
        : base(session, e, sequence)
    {
        Gfn = r.Gfn.Value;
        Va = r.Va.Value;
    }

    public override string Reason => "Singlestep";

    public ulong Gfn { get; }

    public ulong Va { get; }

    public override string Details => $"step at VA 0x{Va:x}";
}

/// <summary>A CPUID instruction.</summary>
public sealed class VmiCpuidEvent : VmiEventRecord
{
    internal VmiCpuidEvent(VmiSession session, VmiEvent e, long sequence, CpuidReason r)
        : base(session, e, sequence)
    {
        Leaf = r.Leaf;
        Subleaf = r.Subleaf;
        InstructionLength = r.InstructionLength;
    }

    public override string Reason => "Cpuid";

    public uint Leaf { get; }

    public uint Subleaf { get; }

    public uint InstructionLength { get; }

    public override string Details => $"leaf 0x{Leaf:x} subleaf 0x{Subleaf:x}";
}

/// <summary>A port I/O instruction.</summary>
public sealed class VmiIoEvent : VmiEventRecord
{
    internal VmiIoEvent(VmiSession session, VmiEvent e, long sequence, IoReason r)
        : base(session, e, sequence)
    {
        Port = r.Port;
        Bytes = r.Bytes;
        In = r.In;
        String = r.String;
    }

    public override string Reason => "Io";

    public ushort Port { get; }

    public uint Bytes { get; }

    public bool In { get; }

    public bool String { get; }

    public override string Details => $"{(In ? "in" : "out")}{(String ? "s" : string.Empty)} port 0x{Port:x} ({Bytes} bytes)";
}

/// <summary>A hypercall from the guest.</summary>
public sealed class VmiHypercallEvent : VmiEventRecord
{
    internal VmiHypercallEvent(VmiSession session, VmiEvent e, long sequence, HypercallReason r)
        : base(session, e, sequence)
    {
        Number = r.Number;
        InstructionLength = r.InstructionLength;
    }

    public override string Reason => "Hypercall";

    public ulong Number { get; }

    public uint InstructionLength { get; }

    public override string Details => $"hypercall {Number}";
}

/// <summary>A request the guest sent to the introspection agent.</summary>
public sealed class VmiGuestRequestEvent : VmiEventRecord
{
    internal VmiGuestRequestEvent(VmiSession session, VmiEvent e, long sequence)
        : base(session, e, sequence)
    {
    }

    public override string Reason => "GuestRequest";

    public override string Details => $"guest request (rax=0x{Registers.Rax:x})";
}

/// <summary>A read or write of IDTR, GDTR, LDTR or TR.</summary>
public sealed class VmiDescriptorAccessEvent : VmiEventRecord
{
    internal VmiDescriptorAccessEvent(VmiSession session, VmiEvent e, long sequence, DescriptorAccessReason r)
        : base(session, e, sequence)
    {
        Descriptor = r.Descriptor;
        IsWrite = r.IsWrite;
        ExitInfo = r.ExitInfo;
        InstructionLength = r.InstructionLength;
    }

    public override string Reason => "DescriptorAccess";

    public DescriptorKind Descriptor { get; }

    public bool IsWrite { get; }

    public ulong ExitInfo { get; }

    public uint InstructionLength { get; }

    public override string Details => $"{(IsWrite ? "write" : "read")} of {Descriptor}";
}

/// <summary>An event whose reason this version does not know. It is still answered.</summary>
public sealed class VmiUnknownEvent : VmiEventRecord
{
    internal VmiUnknownEvent(VmiSession session, VmiEvent e, long sequence, uint rawReason)
        : base(session, e, sequence)
    {
        RawReason = rawReason;
    }

    public override string Reason => "Unknown";

    public uint RawReason { get; }

    public override string Details => $"raw reason {RawReason}";
}
