using System.Diagnostics;
using System.Globalization;
using System.Management.Automation;
using Vmi.Core;

namespace Vmi.PowerShell.Commands;

/// <summary>
/// Waits for events from the enabled monitors and memory-access settings and writes one typed record per event,
/// until -Timeout, -Count or Ctrl+C. Each event's vCPU waits while the rest of the pipeline handles the record;
/// then the event is answered with what the pipeline set on it (<c>$_.Response = 'Deny'</c>), continue by default.
/// However the command ends — Ctrl+C, a downstream error, Select-Object -First — every event taken is answered.
/// </summary>
[Cmdlet(VerbsLifecycle.Wait, "VmiEvent")]
[OutputType(typeof(VmiMemoryAccessEvent), typeof(VmiControlRegisterEvent), typeof(VmiMsrEvent), typeof(VmiBreakpointEvent),
    typeof(VmiDebugExceptionEvent), typeof(VmiSinglestepEvent), typeof(VmiCpuidEvent), typeof(VmiIoEvent), typeof(VmiHypercallEvent),
    typeof(VmiGuestRequestEvent), typeof(VmiDescriptorAccessEvent), typeof(VmiUnknownEvent))]
public sealed class WaitVmiEventCommand : VmiCmdlet
{
    /// <summary>The longest a single wait for the driver lasts, so other runspaces get the session in between.</summary>
    private static readonly TimeSpan Slice = TimeSpan.FromMilliseconds(250);

    private VmiSession? _session;
    private long _written;

    /// <summary>Seconds to wait in all (default: until -Count events or Ctrl+C).</summary>
    [Parameter(Position = 0)]
    [ValidateRange(0.0, 31536000.0)]
    public double Timeout { get; set; } = double.PositiveInfinity;

    /// <summary>Stop after this many events.</summary>
    [Parameter]
    [ValidateRange(1, long.MaxValue)]
    public long Count { get; set; } = long.MaxValue;

    protected override void ProcessVmiRecord()
    {
        _session = ActiveSession;
        var clock = Stopwatch.StartNew();
        TimeSpan total = double.IsPositiveInfinity(Timeout) ? System.Threading.Timeout.InfiniteTimeSpan : TimeSpan.FromSeconds(Timeout);
        try
        {
            while (_written < Count && !StopToken.IsCancellationRequested)
            {
                TimeSpan wait = Slice;
                if (total != System.Threading.Timeout.InfiniteTimeSpan)
                {
                    TimeSpan left = total - clock.Elapsed;
                    if (left <= TimeSpan.Zero)
                    {
                        break;
                    }

                    wait = left < Slice ? left : Slice;
                }

                // Take no more than -Count still allows: events beyond it stay pending for the next wait.
                int max = (int)Math.Min(Count - _written, int.MaxValue);
                Handle(_session.Guest.TakeEvents(wait, max, StopToken));
            }
        }
        catch (Exception e) when (IsItemError(e))
        {
            // The driver answered every event it had taken before this surfaced.
            ThrowTerminatingError(VmiErrors.FromException(e, _session));
        }

        if (StopToken.IsCancellationRequested)
        {
            WriteVerbose(Messages.WaitStopped);
        }
    }

    /// <summary>
    /// Writes each taken event's record and answers it with what the pipeline set (no lock is held meanwhile). However
    /// this ends — Ctrl+C, a downstream error — every event taken is answered: with the response set on its record, else released.
    /// </summary>
    private void Handle(IReadOnlyList<VmiPendingEvent> taken)
    {
        VmiGuest guest = _session!.Guest;
        VmiEventRecord? current = null;
        try
        {
            foreach (VmiPendingEvent pending in taken)
            {
                current = VmiEventRecord.Create(_session, pending.Event, ++_written);
                VmiEventRecord record = current;
                guest.ProposeAnswer(pending, () => record.ToResponse()); // a disconnect meanwhile answers with what the pipeline set
                WriteObject(current); // the rest of the pipeline runs now, on this thread, and may set the response
                Answer(guest, pending, current);
                current = null;
            }
        }
        finally
        {
            foreach (VmiPendingEvent pending in taken)
            {
                if (current is not null && ReferenceEquals(pending.Event, current.Event) && current.ToResponse() != VmiEventResponse.Continue)
                {
                    TryAnswer(guest, pending, current.ToResponse());
                }
                else
                {
                    guest.Release(pending); // false when already answered
                }
            }
        }
    }

    private void Answer(VmiGuest guest, VmiPendingEvent pending, VmiEventRecord record)
    {
        try
        {
            guest.Answer(pending, record.ToResponse());
        }
        catch (Exception invalid) when (invalid is ArgumentException or ViewNotFoundException)
        {
            // One bad answer, not the end of the wait: the guest released the event (Continue).
            WriteError(new ErrorRecord(
                new ArgumentException(string.Format(CultureInfo.CurrentCulture, Messages.EventResponseInvalid, record.Reason, invalid.Message), invalid),
                VmiErrorIds.InvalidResponse, ErrorCategory.InvalidArgument, record));
        }
    }

    private static void TryAnswer(VmiGuest guest, VmiPendingEvent pending, VmiEventResponse response)
    {
        try
        {
            guest.Answer(pending, response);
        }
        catch (Exception e) when (e is ArgumentException or VmiException)
        {
            guest.Release(pending); // the command is ending anyway; the guest must not wait
        }
    }
}
