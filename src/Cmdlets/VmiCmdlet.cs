using System.Globalization;
using System.Management.Automation;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.PowerShell;

/// <summary>
/// The base of every cmdlet that works on a session: resolves <c>-Session</c> (or the default), adapts the
/// engine's <see cref="CancellationToken"/> (StopProcessing — Ctrl+C, a downstream Select -First — cancels it)
/// and turns engine exceptions into ErrorRecords: non-terminating per item, terminating when the command
/// cannot go on at all (no session, a closed session).
/// </summary>
public abstract class VmiCmdlet : PSCmdlet, IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private VmiSession? _active;

    /// <summary>The session to use; the last connected one when omitted.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [VmiSessionTransformation]
    [ArgumentCompleter(typeof(VmiSessionCompleter))]
    public VmiSession? Session { get; set; }

    /// <summary>Cancelled when the pipeline stops.</summary>
    protected CancellationToken StopToken => _stop.Token;

    /// <summary>The session this record works on: <c>-Session</c>, else the runspace's default. Terminates when there is none.</summary>
    protected VmiSession ActiveSession
    {
        get
        {
            VmiSession? s = Session ?? VmiSessionRegistry.Default;
            if (s is null)
            {
                ThrowTerminatingError(VmiErrors.FromException(new VmiNoSessionException(), null));
                throw new VmiNoSessionException(); // not reached: ThrowTerminatingError throws
            }

            if (s.State != VmiSessionState.Open)
            {
                ThrowTerminatingError(VmiErrors.FromException(new VmiSessionClosedException(s), s));
            }

            _active = s;
            return s;
        }
    }

    protected sealed override void ProcessRecord()
    {
        try
        {
            ProcessVmiRecord();
        }
        catch (Exception e) when (e is VmiSessionClosedException or GuestClosedException && _active is { ClosedByRunspace: { } by } && by == VmiSessionRegistry.CurrentRunspaceId)
        {
            // This command's own pipeline disconnected its session (Wait-VmiEvent | ForEach-Object { Disconnect-VmiDomain }):
            // what the user asked for, so the command ends quietly.
            WriteVerbose(string.Format(CultureInfo.CurrentCulture, Messages.EndedByDisconnect, _active.Name));
        }
        catch (VmiSessionClosedException e)
        {
            ThrowTerminatingError(VmiErrors.FromException(e, e.Session));
        }
        catch (GuestClosedException)
        {
            VmiSession? s = Session ?? VmiSessionRegistry.Default;
            ThrowTerminatingError(VmiErrors.FromException(s is null ? new VmiNoSessionException() : new VmiSessionClosedException(s), s));
        }
        catch (GuestReadOnlyException e)
        {
            // Nothing in a command that changes the guest can succeed on a read-only session.
            ThrowTerminatingError(VmiErrors.FromException(e, Session ?? VmiSessionRegistry.Default));
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            throw new PipelineStoppedException();
        }
    }

    protected sealed override void StopProcessing() => _stop.Cancel();

    protected abstract void ProcessVmiRecord();

    /// <summary>Writes a non-terminating error for one item.</summary>
    protected void WriteVmiError(Exception exception, object? target) => WriteError(VmiErrors.FromException(exception, target));

    /// <summary>The warning that names the pages a zero-fill read could not read (the first 16 of them).</summary>
    protected void WriteZeroFilledWarning(IReadOnlyCollection<ulong> pages)
    {
        if (pages.Count > 0)
        {
            const int shown = 16;
            string list = string.Join(", ", pages.Take(shown).Select(p => "0x" + p.ToString("x", CultureInfo.InvariantCulture)))
                + (pages.Count > shown ? ", ..." : string.Empty);
            WriteWarning(string.Format(CultureInfo.CurrentCulture, Messages.ZeroFilled, pages.Count, list));
        }
    }

    /// <summary>True for the exceptions that describe one bad item (an address, a frame, a vCPU) rather than a broken command.</summary>
    protected static bool IsItemError(Exception e) =>
        e is VmiException or ArgumentException or FormatException or OverflowException or InvalidOperationException or NotSupportedException
        && e is not (VmiSessionClosedException or GuestClosedException or GuestReadOnlyException);

    /// <summary>The target text ShouldProcess shows: the guest and what is changed.</summary>
    protected static string Target(VmiSession session, string what) =>
        string.Format(CultureInfo.InvariantCulture, "{0} (session {1}): {2}", session.Name, session.Id, what);

    /// <summary>
    /// Reports a long operation's progress (call on the pipeline thread). Operations of at least
    /// <see cref="ProgressThreshold"/> bytes show progress from their first step, then a few times a second.
    /// </summary>
    protected sealed class ProgressReporter(Cmdlet cmdlet, int activityId, string activity) : IProgress<(ulong Done, ulong Total)>, IProgress<VmiProgress>
    {
        public void Report(VmiProgress value) => Report((value.Done, value.Total));

        public const ulong ProgressThreshold = 1 << 20;

        private long _last;
        private bool _shown;

        public void Report((ulong Done, ulong Total) value)
        {
            if (value.Total < ProgressThreshold)
            {
                return; // small operations show no progress
            }

            long now = Environment.TickCount64;
            if (_shown && now - _last < 200 && value.Done < value.Total)
            {
                return;
            }

            _last = now;
            _shown = true;
            int percent = value.Total == 0 ? 0 : (int)Math.Min(100, value.Done * 100 / value.Total);
            cmdlet.WriteProgress(new ProgressRecord(activityId, activity,
                string.Format(CultureInfo.CurrentCulture, Messages.ProgressStatus, value.Done, value.Total))
            { PercentComplete = percent });
        }

        public void Complete()
        {
            if (_shown)
            {
                cmdlet.WriteProgress(new ProgressRecord(activityId, activity, "Done") { RecordType = ProgressRecordType.Completed });
            }
        }
    }

    public void Dispose()
    {
        _stop.Dispose();
        GC.SuppressFinalize(this);
    }
}
