using System.Globalization;
using System.Management.Automation;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.PowerShell;

/// <summary>
/// One event from the guest (Wait-VmiEvent): the engine's event — its <see cref="Reason"/> (an <see cref="EventReason"/>
/// subclass, the one model of reasons), vCPU, view and <see cref="Registers"/> — with the pipeline's answer. The vCPU that
/// raised it waits until the pipeline has handled the record; then it is answered with <see cref="Response"/> (default:
/// continue), <see cref="ResponseView"/> and <see cref="ResponseRegisters"/>, as the pipeline set them. The reason's fields
/// are on the record too (<c>$_.NewValue</c>, <c>$_.Leaf</c>): Wait-VmiEvent writes each record with them as note properties.
/// </summary>
public sealed class VmiEventRecord
{
    internal VmiEventRecord(VmiSession session, VmiEvent vmiEvent, long sequence)
    {
        Session = session;
        Event = vmiEvent;
        Sequence = sequence;
        TimeCreated = DateTime.Now;
    }

    [Newtonsoft.Json.JsonIgnore, Hidden]
    public VmiSession Session { get; }

    /// <summary>The engine's event.</summary>
    [Newtonsoft.Json.JsonIgnore, Hidden]
    public VmiEvent Event { get; }

    /// <summary>1 for the first event Wait-VmiEvent wrote, then 2, 3...</summary>
    public long Sequence { get; }

    public DateTime TimeCreated { get; }

    /// <summary>What raised the event, as the engine reports it; <c>$_.Reason.Name</c> (and its ToString) is MemoryAccess, ControlRegister, Msr, Breakpoint, ...</summary>
    public EventReason Reason => Event.Reason;

    public ushort Vcpu => Event.Vcpu.Value;

    public ushort View => Event.View.Value;

    public VmiEventFlags Flags => Event.Flags;

    /// <summary>The vCPU's registers when the event was raised (read-only; <c>$_.Registers.With('Rax', 1)</c> is a changed copy).</summary>
    public Registers Registers => Event.Registers;

    public ulong Rip => Registers.Rip;

    public ulong Rsp => Registers.Rsp;

    /// <summary>The vCPU's page-table root when the event was raised (binds -Cr3 of the memory cmdlets).</summary>
    public ulong Cr3 => Registers.TranslationRoot.Value;

    /// <summary>
    /// The guest address the event is about, for piping into Read-VmiMemory: the accessed one (virtual when reported,
    /// else physical), the breakpoint's, the watchpoint's, the stepped instruction's; null for reasons without one.
    /// </summary>
    public ulong? Address => Reason switch
    {
        MemoryAccessReason m => (m.Gla?.Value) ?? m.Pa.Value,
        SoftwareBreakpointReason b => b.Va.Value,
        WatchpointReason w => w.Address.Value,
        DebugExceptionReason d => d.Va.Value,
        SinglestepReason s => s.Va.Value,
        _ => null,
    };

    /// <summary>True when <see cref="Address"/> is physical (a memory access with no linear address reported).</summary>
    public bool Physical => Reason is MemoryAccessReason { Gla: null };

    /// <summary>The reason's details in one line (for the default view).</summary>
    public string Details => Reason.Describe();

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

    /// <summary>
    /// The record of an event just taken. Until it is answered, the guest's answer on a close (a disconnect from another
    /// runspace) is what the pipeline has set on the record by then.
    /// </summary>
    internal static VmiEventRecord Take(VmiSession session, VmiPendingEvent pending, long sequence)
    {
        var record = new VmiEventRecord(session, pending.Event, sequence);
        session.Guest.ProposeAnswer(pending, record.ToResponse);
        return record;
    }

    /// <summary>
    /// Answers the event with what the pipeline set. An answer the guest refuses (a register it cannot set, a view that
    /// does not exist) releases the event (continue) and is returned as an error: one bad answer, not the end of a wait.
    /// </summary>
    internal ErrorRecord? Answer(VmiPendingEvent pending)
    {
        try
        {
            Session.Guest.Answer(pending, ToResponse());
            return null;
        }
        catch (Exception invalid) when (invalid is ArgumentException or ViewNotFoundException)
        {
            return new ErrorRecord(
                new ArgumentException(string.Format(CultureInfo.CurrentCulture, Messages.EventResponseInvalid, Reason, invalid.Message), invalid),
                VmiErrorIds.InvalidResponse, ErrorCategory.InvalidArgument, this);
        }
    }

    /// <summary>
    /// The pipeline is ending before the event was answered: a response the pipeline set is given (or, refused, the event
    /// released); with none set, the event is left to the stream, which releases it (continue).
    /// </summary>
    internal void AnswerOnExit(VmiPendingEvent pending)
    {
        if (ToResponse() is { } response && response != VmiEventResponse.Continue)
        {
            try
            {
                Session.Guest.Answer(pending, response);
            }
            catch (Exception e) when (e is ArgumentException or VmiException)
            {
                Session.Guest.Release(pending);
            }
        }
    }

    /// <summary>The message for the names in <paramref name="reasons"/> that are no event reason, or null when all are.</summary>
    internal static string? UnknownReasons(string[]? reasons) =>
        reasons?.Where(r => !EventReason.Names.Contains(r, StringComparer.OrdinalIgnoreCase)).ToArray() is { Length: > 0 } unknown
            ? string.Format(CultureInfo.CurrentCulture, Messages.EventReasonUnknown, string.Join(", ", unknown), string.Join(", ", EventReason.Names))
            : null;

    /// <summary>The record as the pipeline gets it: with the reason's fields as note properties (those the record has not already).</summary>
    internal PSObject ToPSObject()
    {
        var o = new PSObject(this);
        foreach (PSPropertyInfo field in PSObject.AsPSObject(Reason).Properties)
        {
            if (field.Name != nameof(EventReason.Name) && o.Properties[field.Name] is null)
            {
                o.Properties.Add(new PSNoteProperty(field.Name, field.Value));
            }
        }

        return o;
    }

    public override string ToString() => $"#{Sequence} {Reason} on vCPU {Vcpu}: {Details}";
}
