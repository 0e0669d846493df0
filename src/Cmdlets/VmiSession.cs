using System.Globalization;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.PowerShell;

public enum VmiSessionState
{
    Open,
    Closed,
}

/// <summary>
/// A connection to one guest: what <c>Connect-VmiDomain</c> returns and every other cmdlet takes as <c>-Session</c>.
/// Holds a <see cref="VmiCore"/> over any driver and serialises access to it, so that
/// <c>ForEach-Object -Parallel</c> over one session is safe. Closing it restores the guest.
/// </summary>
public sealed class VmiSession : IDisposable
{
    private static int s_nextId;
    private readonly object _gate = new();

    /// <summary>The thread running this session's event handler (a record is in its pipeline); null when none is.</summary>
    private Thread? _handlerThread;

    /// <summary>Set when the session was closed from inside its own event handler: the restore runs when the wait ends.</summary>
    private int _closeDeferred;
    private Action<string>? _deferredLog;

    /// <summary>Held for a whole wait for events, so that two waits never take events from one driver at once.</summary>
    private readonly object _eventGate = new();
    private readonly VmiCore _core;
    private int _closed;

    /// <summary>How many times the owner of <see cref="_gate"/> has entered it (read and written only by that owner).</summary>
    private int _depth;

    internal VmiSession(VmiCore core, string name, string source, bool readOnly, Guid ownerRunspace)
    {
        _core = core;
        Id = Interlocked.Increment(ref s_nextId);
        Name = name;
        Source = source;
        ReadOnly = readOnly;
        OwnerRunspace = ownerRunspace;
        ConnectedAt = DateTime.Now;
        Info = core.Info;
        Capabilities = core.Capabilities.ToArray();
    }

    /// <summary>A number unique in this process; <c>-Session 1</c> finds the session by it.</summary>
    public int Id { get; }

    /// <summary>The session's name (the domain name, the image file name, or "mock").</summary>
    public string Name { get; }

    /// <summary>The driver behind the session, e.g. "Mock", "Xen", "ELF core".</summary>
    public string Driver => _core.Driver.Name;

    /// <summary>What was connected to: a domain, an image path, the demo guest.</summary>
    public string Source { get; }

    /// <summary>True when the session refuses every change to the guest.</summary>
    public bool ReadOnly { get; }

    public VmiSessionState State => Volatile.Read(ref _closed) == 0 ? VmiSessionState.Open : VmiSessionState.Closed;

    public DateTime ConnectedAt { get; }

    public int VcpuCount => Info.VcpuCount;

    public uint PageSize => Info.PageSize;

    public ulong MaxGfn => Info.MaxGfn.Value;

    public IReadOnlyList<VmiCapability> Capabilities { get; }

    /// <summary>The paging mode of vCPU 0 (how virtual addresses are translated by default); null once closed.</summary>
    public PagingMode? PagingMode
    {
        get
        {
            Enter();
            try
            {
                return State == VmiSessionState.Open ? _core.PagingMode : null;
            }
            finally
            {
                Exit();
            }
        }
    }

    public VmiInfo Info { get; }

    /// <summary>The runspace that created the session; closing that runspace closes the session.</summary>
    internal Guid OwnerRunspace { get; }

    /// <summary>The engine, for scripts that need what no cmdlet offers. Use it from one thread at a time.</summary>
    public VmiCore Core => _core;

    public bool Supports(VmiCapability capability) => Capabilities.Contains(capability);

    /// <summary>Runs <paramref name="action"/> with exclusive access to the engine.</summary>
    public T Use<T>(Func<VmiCore, T> action)
    {
        ArgumentNullException.ThrowIfNull(action);
        Enter();
        try
        {
            ThrowIfClosed();
            return action(_core);
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>Runs <paramref name="action"/> with exclusive access to the engine.</summary>
    public void Use(Action<VmiCore> action)
    {
        ArgumentNullException.ThrowIfNull(action);
        Use<object?>(core =>
        {
            action(core);
            return null;
        });
    }

    /// <summary>
    /// Waits for at most <paramref name="maxEvents"/> events (the rest stay pending for the next wait) and answers each with <paramref name="handler"/>'s response.
    /// The engine is held while the driver takes and answers events, but not while <paramref name="handler"/> runs:
    /// the handler writes the record to the pipeline, and what runs there (on other threads too, as in
    /// <c>ForEach-Object -Parallel</c>) may use this session meanwhile. Only one wait at a time takes events.
    /// </summary>
    internal int WaitForEvents(TimeSpan timeout, int maxEvents, VmiEventHandler handler, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(handler);
        lock (_eventGate)
        {
            try
            {
                return Use(core => core.WaitForEvents(timeout, maxEvents, e =>
                {
                    int depth = ReleaseAll();
                    Thread? previous = _handlerThread;
                    _handlerThread = Thread.CurrentThread;
                    VmiEventResponse response;
                    try
                    {
                        response = handler(e);
                    }
                    finally
                    {
                        _handlerThread = previous;
                        Reacquire(depth);
                    }

                    // Disconnected meanwhile: from another thread, restoring the guest has answered the event; from this
                    // pipeline, the restore waits (below) until the driver has answered the events it took.
                    ThrowIfClosed();
                    return response;
                }, cancellationToken));
            }
            finally
            {
                // The outermost wait on this thread restores (a nested wait in the pipeline leaves it to its caller).
                if (_handlerThread is null && Interlocked.Exchange(ref _closeDeferred, 0) != 0)
                {
                    CloseNow(_deferredLog);
                    _deferredLog = null;
                }
            }
        }
    }

    private void Enter()
    {
        Monitor.Enter(_gate);
        _depth++;
    }

    private void Exit()
    {
        _depth--;
        Monitor.Exit(_gate);
    }

    /// <summary>Leaves the engine lock entirely (however deeply the calling owner holds it); returns the depth to restore.</summary>
    private int ReleaseAll()
    {
        int depth = _depth;
        _depth = 0;
        for (int i = 0; i < depth; i++)
        {
            Monitor.Exit(_gate);
        }

        return depth;
    }

    private void Reacquire(int depth)
    {
        for (int i = 0; i < depth; i++)
        {
            Monitor.Enter(_gate);
        }

        _depth = depth;
    }

    internal void ThrowIfClosed()
    {
        if (Volatile.Read(ref _closed) != 0)
        {
            throw new VmiSessionClosedException(this);
        }
    }

    /// <summary>
    /// Restores the guest (monitors off, access restored, views destroyed, vCPUs resumed) when the driver
    /// controls the VM, then releases the driver. Never throws: failures go to <paramref name="log"/>.
    /// Returns false when restoring failed.
    /// </summary>
    internal bool Close(Action<string>? log = null)
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return true;
        }

        if (_handlerThread == Thread.CurrentThread)
        {
            // Disconnect from inside this session's own event handler (Wait-VmiEvent | ForEach-Object { Disconnect... }):
            // the driver is in the middle of answering an event it took from its ring. Restoring now would tear the ring
            // down under it (Xen: the answer would be written into unmapped memory). The session is closed to every
            // other use at once; the restore runs as soon as the wait has answered its events, on this thread.
            _deferredLog = log is null ? null : message => SafeLog(log, message);
            Volatile.Write(ref _closeDeferred, 1);
            return true;
        }

        return CloseNow(log);
    }

    /// <summary>A deferred restore reports through the log of the command that asked; if that command is gone, to Trace.</summary>
    private static void SafeLog(Action<string> log, string message)
    {
        try
        {
            log(message);
        }
#pragma warning disable CA1031 // the asking command's pipeline may have ended: the message must not be lost or thrown
        catch (Exception)
        {
            System.Diagnostics.Trace.WriteLine(message, "Vmi");
        }
#pragma warning restore CA1031
    }

    private bool CloseNow(Action<string>? log)
    {
        bool ok = true;

        // A wait in progress on another thread finishes its batch first (it answers every event it took, and its
        // handler finds the session closed). Taking the gates in the order the wait takes them (events, then engine)
        // means a driver that holds its own lock while the handler runs (Xen) cannot deadlock against the restore.
        Monitor.Enter(_eventGate);
        Enter();
        try
        {
            if (_core.Supports(VmiCapability.VmControl))
            {
                try
                {
                    _core.ResetState();
                }
#pragma warning disable CA1031 // cleanup must go on: the failure is reported, the driver still released
                catch (Exception e)
                {
                    // Best effort: whatever else was left changed, the vCPUs must not stay paused.
                    ok = false;
                    (int released, string? resumeFailure) = ReleasePauses();
                    log?.Invoke(string.Format(CultureInfo.InvariantCulture, Messages.RestoreFailed, Name, e.Message, released));
                    if (resumeFailure is not null)
                    {
                        log?.Invoke(string.Format(CultureInfo.InvariantCulture, Messages.ResumeFailed, Name, resumeFailure));
                    }
                }
            }

            try
            {
                _core.Dispose();
            }
            catch (Exception e)
            {
                ok = false;
                log?.Invoke(string.Format(CultureInfo.InvariantCulture, Messages.DisposeFailed, Name, e.Message));
            }
#pragma warning restore CA1031
        }
        finally
        {
            Exit();
            Monitor.Exit(_eventGate);
        }

        return ok;
    }

    /// <summary>The most pauses <see cref="ReleasePauses"/> releases: far more than any script nests.</summary>
    private const int MaxPausesReleased = 1 << 16;

    /// <summary>
    /// Resumes the guest until the driver says it holds no more pauses of this session (its Resume throws once the
    /// pauses are all released). Returns how many were released, and the hypervisor's error if resuming itself failed.
    /// </summary>
    private (int Released, string? Failure) ReleasePauses()
    {
        int released = 0;
        while (released < MaxPausesReleased)
        {
            try
            {
                _core.Resume();
                released++;
            }
            catch (VmiDriverException e)
            {
                return (released, e.Message); // the hypervisor refused
            }
#pragma warning disable CA1031 // the drivers' "not paused by this session" (VmiException, InvalidOperationException): done
            catch (Exception)
            {
                return (released, null);
            }
#pragma warning restore CA1031
        }

        return (released, null);
    }

    public void Dispose()
    {
        VmiSessionRegistry.Remove(this);
        Close();
    }

    /// <summary>The name: what a session turns into when a record holding it is serialised, and what -Session accepts back.</summary>
    public override string ToString() => Name;
}

/// <summary>A cmdlet was given a session that has been disconnected.</summary>
public sealed class VmiSessionClosedException(VmiSession session)
    : VmiException(string.Format(CultureInfo.InvariantCulture, Messages.SessionClosed, session?.Name, session?.Id))
{
    public VmiSession? Session { get; } = session;
}

/// <summary>A change was asked of a read-only session.</summary>
public sealed class VmiReadOnlyException(VmiSession session, string operation)
    : VmiException(string.Format(CultureInfo.InvariantCulture, Messages.ReadOnlySession, session?.Name, operation))
{
    public VmiSession? Session { get; } = session;
}

/// <summary>No session was given and none is connected.</summary>
public sealed class VmiNoSessionException()
    : VmiException(Messages.NoSession);

/// <summary>A virtual address was given, but there is no CR3 to translate it: no -Cr3, and a driver without registers.</summary>
public sealed class VmiNoTranslationRootException(VmiSession session)
    : VmiException(string.Format(CultureInfo.InvariantCulture, Messages.NoTranslationRoot, session?.Name, session?.Driver));
