using System.Management.Automation;
using Vmi.Core;

namespace Vmi.PowerShell.Commands;

/// <summary>
/// Waits for events from the enabled monitors and memory-access settings and writes one record per event (of the
/// -Reason given), until -Timeout, -Count or Ctrl+C. Each event's vCPU waits while the rest of the pipeline handles the
/// record; then the event is answered with what the pipeline set on it (<c>$_.Response = 'Deny'</c>), continue by
/// default. However the command ends — Ctrl+C, a downstream error, Select-Object -First — every event taken is answered.
/// </summary>
[Cmdlet(VerbsLifecycle.Wait, "VmiEvent")]
[OutputType(typeof(VmiEventRecord))]
public sealed class WaitVmiEventCommand : VmiCmdlet
{
    /// <summary>Seconds to wait in all (default: until -Count events or Ctrl+C).</summary>
    [Parameter(Position = 0), ValidateRange(0.0, 31536000.0)]
    public double Timeout { get; set; } = double.PositiveInfinity;

    /// <summary>Stop after this many events.</summary>
    [Parameter, ValidateRange(1, long.MaxValue)]
    public long Count { get; set; } = long.MaxValue;

    /// <summary>Only events of these reasons (MemoryAccess, Msr, Breakpoint, ...); the others are answered with continue, unseen.</summary>
    [Parameter, ArgumentCompleter(typeof(VmiEventReasonCompleter)), ValidateNotNullOrEmpty]
    public string[]? Reason { get; set; }

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        if (VmiEventRecord.UnknownReasons(Reason) is { } unknown)
        {
            ThrowTerminatingError(VmiErrors.InvalidArgument(unknown, Reason));
        }

        Func<VmiEvent, bool>? wanted = Reason is null ? null : e => Reason.Contains(e.Reason.Name, StringComparer.OrdinalIgnoreCase);
        TimeSpan timeout = double.IsPositiveInfinity(Timeout) ? System.Threading.Timeout.InfiniteTimeSpan : TimeSpan.FromSeconds(Timeout);
        long written = 0;
        try
        {
            foreach (VmiPendingEvent pending in session.Guest.StreamEvents(timeout, Count, wanted, StopToken))
            {
                VmiEventRecord record = VmiEventRecord.Take(session, pending, ++written);
                try
                {
                    WriteObject(record.ToPSObject()); // the rest of the pipeline runs now, on this thread, and may set the response
                }
                catch
                {
                    record.AnswerOnExit(pending); // the pipeline is ending: answer as set (else the stream releases it)
                    throw;
                }

                if (record.Answer(pending) is { } invalid)
                {
                    WriteError(invalid);
                }
            }
        }
        catch (Exception e) when (IsItemError(e))
        {
            // Every event taken was answered before this surfaced.
            ThrowTerminatingError(VmiErrors.FromException(e, session));
        }

        if (StopToken.IsCancellationRequested)
        {
            WriteVerbose(Messages.WaitStopped);
        }
    }
}
