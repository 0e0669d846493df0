using System.Globalization;
using Vmi.Core.Arch.Amd64;
using Amd64Registers = Vmi.Core.Arch.Amd64.Registers;

namespace Vmi.Core;

/// <summary>The kinds of event source a driver can enable.</summary>
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum MonitorKind : byte
{
    /// <summary>Writes to a control register (CR0, CR3, CR4, XCR0); <see cref="EventMonitor.Parameter"/> is the <see cref="ControlRegister"/>.</summary>
    ControlRegister,

    /// <summary>Writes to an MSR; <see cref="EventMonitor.Parameter"/> is its index (0xC0000082 = LSTAR).</summary>
    Msr,

    /// <summary>Software breakpoints (INT3).</summary>
    Breakpoint,

    /// <summary>Debug exceptions (#DB).</summary>
    DebugException,

    /// <summary>Single-step (MTF) on every vCPU.</summary>
    Singlestep,

    Cpuid,

    /// <summary>Port I/O instructions.</summary>
    Io,

    /// <summary>Hypercalls (VMCALL/VMMCALL) from the guest.</summary>
    Hypercall,

    /// <summary>Requests the guest sends to the introspection agent (Xen: HVMOP_guest_request_vm_event).</summary>
    GuestRequest,

    /// <summary>Reads and writes of IDTR, GDTR, LDTR and TR.</summary>
    DescriptorAccess,
}

/// <summary>An event source: a kind and, for control registers and MSRs, which one.</summary>
public readonly record struct EventMonitor(MonitorKind Kind, uint Parameter = 0)
{
    public static EventMonitor ControlRegisterWrite(ControlRegister register) => new(MonitorKind.ControlRegister, (uint)register);

    public static EventMonitor MsrWrite(uint msr) => new(MonitorKind.Msr, msr);

    public static EventMonitor Breakpoint => new(MonitorKind.Breakpoint);

    public static EventMonitor DebugException => new(MonitorKind.DebugException);

    public static EventMonitor Singlestep => new(MonitorKind.Singlestep);

    public static EventMonitor Cpuid => new(MonitorKind.Cpuid);

    public static EventMonitor Io => new(MonitorKind.Io);

    public static EventMonitor Hypercall => new(MonitorKind.Hypercall);

    public static EventMonitor GuestRequest => new(MonitorKind.GuestRequest);

    public static EventMonitor DescriptorAccess => new(MonitorKind.DescriptorAccess);

    /// <summary>The names <see cref="Parse"/> accepts, for help and tab completion.</summary>
    public static IReadOnlyList<string> Names { get; } =
    [
        "Cr0", "Cr3", "Cr4", "Xcr0", "Msr:0xC0000082", "Breakpoint", "DebugException", "Singlestep",
        "Cpuid", "Io", "Hypercall", "GuestRequest", "DescriptorAccess",
    ];

    /// <summary>Parses "Cr3", "Xcr0", "Msr:0xC0000082" (or "Msr 0xC0000082"), "Breakpoint", ... case-insensitively.</summary>
    public static EventMonitor Parse(string text)
    {
        if (TryParse(text, out EventMonitor m))
        {
            return m;
        }

        throw new FormatException(
            $"'{text}' is not an event monitor. Use one of: {string.Join(", ", Names)} (an MSR monitor names its index, e.g. Msr:0xC0000082).");
    }

    public static bool TryParse(string? text, out EventMonitor monitor)
    {
        monitor = default;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        string t = text.Trim();
        int sep = t.IndexOfAny([':', ' ', '=']);
        string head = sep < 0 ? t : t[..sep];
        string? arg = sep < 0 ? null : t[(sep + 1)..].Trim();
        if (head.Equals("Msr", StringComparison.OrdinalIgnoreCase))
        {
            if (arg is null || !AddressParser.TryParse(arg, out ulong msr) || msr > uint.MaxValue)
            {
                return false;
            }

            monitor = MsrWrite((uint)msr);
            return true;
        }

        if (arg is not null)
        {
            return false;
        }

        // Names only: Enum.TryParse would also take numbers ("+5") and comma lists ("Cr0,Cr3" = Cr3).
        if (TryName(head, out ControlRegister cr))
        {
            monitor = ControlRegisterWrite(cr);
            return true;
        }

        if (TryName(head, out MonitorKind kind) && kind is not (MonitorKind.ControlRegister or MonitorKind.Msr))
        {
            monitor = new EventMonitor(kind);
            return true;
        }

        return false;
    }

    private static bool TryName<TEnum>(string name, out TEnum value)
        where TEnum : struct, Enum
    {
        foreach (TEnum candidate in Enum.GetValues<TEnum>())
        {
            if (string.Equals(candidate.ToString(), name, StringComparison.OrdinalIgnoreCase))
            {
                value = candidate;
                return true;
            }
        }

        value = default;
        return false;
    }

    public override string ToString() => Kind switch
    {
        MonitorKind.ControlRegister => ((ControlRegister)Parameter).ToString(),
        MonitorKind.Msr => "Msr:0x" + Parameter.ToString("X", CultureInfo.InvariantCulture),
        _ => Kind.ToString(),
    };
}

[Flags]
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum VmiEventFlags : byte
{
    None = 0,

    /// <summary>The vCPU is paused until the event is answered.</summary>
    VcpuPaused = 1,

    /// <summary>The event was raised in an altp2m view (<see cref="VmiEvent.View"/> is meaningful).</summary>
    AltP2m = 2,
}

/// <summary>
/// Why an event was raised, with what the hardware reported: one subclass per reason, the one model of event reasons
/// in engine, drivers and records. <see cref="Name"/> is its short name (what scripts filter on), <see cref="Describe"/>
/// one line of what happened; <see cref="ToString"/> is the name.
/// </summary>
public abstract record EventReason
{
    /// <summary>Every <see cref="Name"/> a reason has, for filters, help and tab completion.</summary>
    public static IReadOnlyList<string> Names { get; } =
    [
        "MemoryAccess", "ControlRegister", "Msr", "Breakpoint", "Watchpoint", "DebugException", "Singlestep", "Cpuid",
        "Io", "Hypercall", "GuestRequest", "DescriptorAccess", "Unknown",
    ];

    /// <summary>The reason's short name: one of <see cref="Names"/>.</summary>
    public abstract string Name { get; }

    /// <summary>What happened, in one line ("Cr3 0x1000 -> 0x2000").</summary>
    public abstract string Describe();

    public sealed override string ToString() => Name;
}

/// <summary>An access that the view's memory access settings forbid.</summary>
/// <param name="Gla">The guest linear address, when the hardware reported one.</param>
public sealed record MemoryAccessReason(Pa Pa, Va? Gla, MemoryAccess Access) : EventReason
{
    public override string Name => "MemoryAccess";

    /// <summary>The frame accessed.</summary>
    public Gfn Gfn => Amd64.GfnFromPa(Pa);

    public override string Describe() => $"{Access} at PA 0x{Pa.Value:x}{(Gla is { } g ? $" (VA 0x{g.Value:x})" : string.Empty)}";
}

public sealed record ControlRegisterWriteReason(ControlRegister Register, ulong NewValue, ulong OldValue) : EventReason
{
    public override string Name => "ControlRegister";

    public override string Describe() => $"{Register} 0x{OldValue:x} -> 0x{NewValue:x}";
}

public sealed record MsrWriteReason(uint Msr, ulong NewValue, ulong OldValue) : EventReason
{
    public override string Name => "Msr";

    public override string Describe() => $"MSR 0x{Msr:x} 0x{OldValue:x} -> 0x{NewValue:x}";
}

public sealed record SoftwareBreakpointReason(Gfn Gfn, Va Va, uint InstructionLength) : EventReason
{
    public override string Name => "Breakpoint";

    public override string Describe() => $"INT3 at VA 0x{Va.Value:x} (GFN 0x{Gfn.Value:x})";
}

public sealed record DebugExceptionReason(Gfn Gfn, Va Va, byte Vector, InterruptType Type, uint InstructionLength, ulong PendingDebugExceptions) : EventReason
{
    public override string Name => "DebugException";

    public override string Describe() => $"#DB vector {Vector} at VA 0x{Va.Value:x}";
}

public sealed record SinglestepReason(Gfn Gfn, Va Va) : EventReason
{
    public override string Name => "Singlestep";

    public override string Describe() => $"step at VA 0x{Va.Value:x}";
}

public sealed record CpuidReason(uint Leaf, uint Subleaf, uint InstructionLength) : EventReason
{
    public override string Name => "Cpuid";

    public override string Describe() => $"leaf 0x{Leaf:x} subleaf 0x{Subleaf:x}";
}

public sealed record IoReason(ushort Port, uint Bytes, bool In, bool String) : EventReason
{
    public override string Name => "Io";

    public override string Describe() => $"{(In ? "in" : "out")}{(String ? "s" : string.Empty)} port 0x{Port:x} ({Bytes} bytes)";
}

public sealed record HypercallReason(ulong Number, uint InstructionLength) : EventReason
{
    public override string Name => "Hypercall";

    public override string Describe() => $"hypercall {Number}";
}

public sealed record GuestRequestReason : EventReason
{
    public override string Name => "GuestRequest";

    public override string Describe() => "guest request";
}

[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum DescriptorKind : byte
{
    Idtr = 1,
    Gdtr = 2,
    Ldtr = 3,
    Tr = 4,
}

public sealed record DescriptorAccessReason(DescriptorKind Descriptor, bool IsWrite, ulong ExitInfo, uint InstructionLength) : EventReason
{
    public override string Name => "DescriptorAccess";

    public override string Describe() => $"{(IsWrite ? "write" : "read")} of {Descriptor}";
}

/// <summary>A reason this version does not know. It is still answered, so no vCPU stays paused.</summary>
public sealed record UnknownReason(uint RawReason) : EventReason
{
    public override string Name => "Unknown";

    public override string Describe() => $"raw reason {RawReason}";
}

/// <summary>One event from the guest. The vCPU that raised it waits until it is answered.</summary>
public sealed record VmiEvent(VcpuId Vcpu, View View, VmiEventFlags Flags, Registers Registers, EventReason Reason);

/// <summary>What to do with the event's vCPU when it resumes.</summary>
[Flags]
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum VmiEventResponseFlags : byte
{
    /// <summary>Let the vCPU go on as if nothing had intercepted it (no flag set).</summary>
    Continue = 0,

    /// <summary>Deny the write that raised the event (control-register and MSR writes).</summary>
    Deny = 1,

    /// <summary>Deliver the breakpoint/debug exception to the guest as if nothing had intercepted it.</summary>
    ReinjectInterrupt = 2,

    /// <summary>Toggle single-stepping of this vCPU (one-shot: toggle again from the singlestep event).</summary>
    ToggleSinglestep = 4,

    /// <summary>Single-step one instruction in <see cref="VmiEventResponse.View"/>, then switch back, without another event.</summary>
    ToggleFastSinglestep = 8,

    /// <summary>Emulate the instruction that caused the access event.</summary>
    Emulate = 16,
}

/// <summary>The answer to an event.</summary>
/// <param name="View">Switch the vCPU to this view before it resumes (required with fast singlestep).</param>
/// <param name="Registers">
/// The registers the vCPU resumes with: the event's <see cref="VmiEvent.Registers"/> with changes made
/// (<c>e.Registers with { Rip = ... }</c>, or <see cref="Amd64Registers.With(string, ulong)"/>). What changed is what differs
/// from the event's registers, and only the general-purpose ones (<see cref="Amd64Registers.GeneralPurposeNames"/>: RAX-R15,
/// RIP, RFLAGS) may: every driver sets those, and <see cref="Validate(VmiEvent)"/> refuses a change to any other. Null: none changed.
/// </param>
public sealed record VmiEventResponse(VmiEventResponseFlags Flags = VmiEventResponseFlags.Continue, View? View = null, Registers? Registers = null)
{
    public static VmiEventResponse Continue { get; } = new();

    public static VmiEventResponse Deny { get; } = new(VmiEventResponseFlags.Deny);

    public static VmiEventResponse ReinjectInterrupt { get; } = new(VmiEventResponseFlags.ReinjectInterrupt);

    public static VmiEventResponse Emulate { get; } = new(VmiEventResponseFlags.Emulate);

    public static VmiEventResponse ToggleSinglestep(View? view = null) => new(VmiEventResponseFlags.ToggleSinglestep, view);

    public static VmiEventResponse FastSinglestep(View view) => new(VmiEventResponseFlags.ToggleFastSinglestep, view);

    public static VmiEventResponse SwitchView(View view) => new(VmiEventResponseFlags.Continue, view);

    /// <summary>Throws <see cref="ArgumentException"/> when the combination cannot be carried out.</summary>
    public void Validate()
    {
        if ((Flags & VmiEventResponseFlags.ToggleFastSinglestep) != 0 && View is null)
        {
            throw new ArgumentException("A fast-singlestep response needs a view to step in: give the response a View.");
        }

        if ((Flags & VmiEventResponseFlags.ToggleFastSinglestep) != 0 && (Flags & VmiEventResponseFlags.ToggleSinglestep) != 0)
        {
            throw new ArgumentException("A response cannot toggle both singlestep and fast singlestep.");
        }
    }

    /// <summary>
    /// As <see cref="Validate()"/>, and checks that <see cref="Registers"/> changes only general-purpose registers of
    /// <paramref name="answered"/>'s. Throws <see cref="ArgumentException"/> naming the registers that may not change.
    /// </summary>
    public void Validate(VmiEvent answered)
    {
        ArgumentNullException.ThrowIfNull(answered);
        Validate();
        if (Registers is null)
        {
            return;
        }

        string[] refused = answered.Registers.Differences(Registers).Except(Amd64Registers.GeneralPurposeNames).ToArray();
        if (refused.Length > 0)
        {
            throw new ArgumentException(
                $"A response sets only the general-purpose registers ({string.Join(", ", Amd64Registers.GeneralPurposeNames)}), " +
                $"but {string.Join(", ", refused)} differ from the event's: start from the event's registers and change only those " +
                "(set the others on the vCPU, not in the response).");
        }
    }
}

/// <summary>The event loop on a <see cref="VmiGuest"/>'s two phases, for a caller that hands each event on (a pipeline) before answering it.</summary>
public static class VmiGuestEvents
{
    /// <summary>How long one wait lasts at most before the deadline and the token are looked at again.</summary>
    private static readonly TimeSpan Slice = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// Streams events until <paramref name="timeout"/> passes (<see cref="Timeout.InfiniteTimeSpan"/>: never),
    /// <paramref name="maxEvents"/> have been given, <paramref name="cancellationToken"/> fires or the guest closes. Events
    /// <paramref name="filter"/> refuses are released (the vCPU continues) and not counted. The caller answers each event
    /// given (<see cref="VmiGuest.Answer"/>, <see cref="VmiGuest.Release"/>) before asking for the next; no lock is held
    /// meanwhile. However the enumeration ends — completed, broken off, an exception — every event it took and nobody
    /// answered is released, so no vCPU is left waiting. <paramref name="filter"/> runs on the caller's thread, no lock held.
    /// </summary>
    public static IEnumerable<VmiPendingEvent> StreamEvents(this VmiGuest guest, TimeSpan timeout, long maxEvents = long.MaxValue,
        Func<VmiEvent, bool>? filter = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(guest);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxEvents, 1);
        if (timeout < TimeSpan.Zero && timeout != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "A timeout is zero (poll), positive, or infinite.");
        }

        return Stream(guest, timeout, maxEvents, filter, cancellationToken);
    }

    private static IEnumerable<VmiPendingEvent> Stream(VmiGuest guest, TimeSpan timeout, long maxEvents, Func<VmiEvent, bool>? filter, CancellationToken cancellationToken)
    {
        long deadline = timeout == Timeout.InfiniteTimeSpan ? long.MaxValue : Environment.TickCount64 + (long)Math.Ceiling(timeout.TotalMilliseconds);
        long given = 0;
        while (given < maxEvents && !cancellationToken.IsCancellationRequested)
        {
            long left = deadline - Environment.TickCount64;
            if (left <= 0)
            {
                yield break;
            }

            // Take no more than maxEvents still allows: the rest stay pending for the next caller.
            TimeSpan wait = left < Slice.TotalMilliseconds ? TimeSpan.FromMilliseconds(left) : Slice;
            IReadOnlyList<VmiPendingEvent> taken = guest.TakeEvents(wait, (int)Math.Min(maxEvents - given, int.MaxValue), cancellationToken);
            try
            {
                foreach (VmiPendingEvent pending in taken)
                {
                    if (filter is not null && !filter(pending.Event))
                    {
                        guest.Release(pending);
                        continue;
                    }

                    given++;
                    yield return pending;
                }
            }
            finally
            {
                foreach (VmiPendingEvent pending in taken)
                {
                    guest.Release(pending); // false when already answered
                }
            }
        }
    }
}
