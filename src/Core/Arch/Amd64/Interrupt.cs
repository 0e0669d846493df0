namespace Vmi.Core.Arch.Amd64;

/// <summary>Event types as VMX and Xen number them (X86_EVENTTYPE_*).</summary>
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum InterruptType : byte
{
    ExternalInterrupt = 0,
    Nmi = 2,
    HardwareException = 3,
    SoftwareInterrupt = 4,
    PrivilegedSoftwareException = 5,
    SoftwareException = 6,
}

/// <summary>An interrupt or exception to inject into a vCPU.</summary>
/// <param name="ErrorCode">The error code pushed with the exception, or null for none.</param>
/// <param name="InstructionLength">Length of the instruction for software interrupts and exceptions.</param>
/// <param name="Cr2">The faulting address for a page fault (vector 14); 0 otherwise.</param>
public readonly record struct Interrupt(byte Vector, InterruptType Type, uint? ErrorCode = null, uint InstructionLength = 0, ulong Cr2 = 0)
{
    public const byte BreakpointVector = 3;
    public const byte PageFaultVector = 14;

    /// <summary>#BP as raised by INT3 (software exception, vector 3).</summary>
    public static Interrupt Breakpoint(uint instructionLength = 1) => new(BreakpointVector, InterruptType.SoftwareException, null, instructionLength);

    /// <summary>#PF at <paramref name="va"/> with <paramref name="errorCode"/> (bit 0 present, 1 write, 2 user, 4 fetch).</summary>
    public static Interrupt PageFault(Va va, uint errorCode) => new(PageFaultVector, InterruptType.HardwareException, errorCode, 0, va.Value);

    public override string ToString() => $"vector {Vector} ({Type}){(ErrorCode is { } e ? $" error 0x{e:x}" : string.Empty)}{(Cr2 != 0 ? $" cr2 0x{Cr2:x}" : string.Empty)}";
}
