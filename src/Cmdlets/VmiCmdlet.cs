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

            return s;
        }
    }

    protected sealed override void ProcessRecord()
    {
        try
        {
            ProcessVmiRecord();
        }
        catch (VmiSessionClosedException e)
        {
            ThrowTerminatingError(VmiErrors.FromException(e, e.Session));
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

    /// <summary>Refuses a change on a read-only session (a terminating error: nothing in the command could succeed).</summary>
    protected void RequireWritable(VmiSession session, string operation)
    {
        if (session.ReadOnly)
        {
            ThrowTerminatingError(VmiErrors.FromException(new VmiReadOnlyException(session, operation), session));
        }
    }

    /// <summary>True for the exceptions that describe one bad item (an address, a frame, a vCPU) rather than a broken command.</summary>
    protected static bool IsItemError(Exception e) =>
        e is VmiException or ArgumentException or FormatException or OverflowException or InvalidOperationException or NotSupportedException
        && e is not VmiSessionClosedException;

    /// <summary>The target text ShouldProcess shows: the guest and what is changed.</summary>
    protected static string Target(VmiSession session, string what) =>
        string.Format(CultureInfo.InvariantCulture, "{0} (session {1}): {2}", session.Name, session.Id, what);

    /// <summary>
    /// The access context for an address: physical, or virtual under <paramref name="cr3"/> (flag bits masked for the
    /// session's paging mode) or under the CR3 of <paramref name="vcpu"/> (vCPU 0 by default).
    /// </summary>
    internal static AccessContext BuildContext(VmiCore core, VmiSession session, ulong address, bool physical, ulong? cr3, ushort? vcpu)
    {
        if (physical)
        {
            return AccessContext.Direct(new Pa(address));
        }

        return new AccessContext(address, TranslationMechanism.Paging(ResolveRoot(core, session, cr3, vcpu)));
    }

    internal static Pa ResolveRoot(VmiCore core, VmiSession session, ulong? cr3, ushort? vcpu)
    {
        if (cr3 is { } c)
        {
            return Amd64.RootFromCr3(c, core.PagingMode);
        }

        if (!core.Supports(VmiCapability.QueryRegisters))
        {
            throw new RootNotPresentException();
        }

        return core.GetTranslationRoot(new VcpuId(vcpu ?? 0));
    }

    /// <summary>Reports a long operation's progress (call on the pipeline thread).</summary>
    protected sealed class ProgressReporter(Cmdlet cmdlet, int activityId, string activity) : IProgress<(ulong Done, ulong Total)>
    {
        private readonly long _started = Environment.TickCount64;
        private long _last;
        private bool _shown;

        public void Report((ulong Done, ulong Total) value)
        {
            long now = Environment.TickCount64;
            if (now - _started < 300 || now - _last < 200)
            {
                return; // short operations show no progress; long ones update a few times a second
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
