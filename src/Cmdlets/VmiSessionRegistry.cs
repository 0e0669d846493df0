using System.Diagnostics;
using System.Management.Automation.Runspaces;

namespace Vmi.PowerShell;

/// <summary>
/// The open sessions of this process, and the default session of each runspace (the last one connected there).
/// Closes a runspace's sessions when that runspace closes, and every session when the process exits,
/// so no exit path leaves a guest paused, trapped or remapped.
/// </summary>
public static class VmiSessionRegistry
{
    private static readonly object Gate = new();
    private static readonly List<VmiSession> Sessions = [];
    private static readonly Dictionary<Guid, VmiSession> Defaults = [];
    private static readonly HashSet<Guid> Watched = [];
    private static int s_processHooked;

    /// <summary>Where cleanup failures at exit are reported (there is no pipeline to write to then).</summary>
    internal static Action<string> Log { get; set; } = static m => Trace.WriteLine(m, "Vmi");

    /// <summary>Every open session in the process, oldest first.</summary>
    public static IReadOnlyList<VmiSession> All
    {
        get
        {
            lock (Gate)
            {
                return Sessions.ToArray();
            }
        }
    }

    /// <summary>The open sessions created in the calling runspace, oldest first (what Get-VmiSession lists).</summary>
    public static IReadOnlyList<VmiSession> Current
    {
        get
        {
            Guid id = CurrentRunspaceId;
            lock (Gate)
            {
                return Sessions.Where(s => s.OwnerRunspace == id).ToArray();
            }
        }
    }

    internal static Guid CurrentRunspaceId => Runspace.DefaultRunspace?.InstanceId ?? Guid.Empty;

    /// <summary>The default session of the calling runspace: the last one connected in it that is still open.</summary>
    public static VmiSession? Default
    {
        get
        {
            lock (Gate)
            {
                return Defaults.TryGetValue(CurrentRunspaceId, out VmiSession? s) && s.State == VmiSessionState.Open ? s : null;
            }
        }
    }

    internal static void Add(VmiSession session)
    {
        HookProcessExit();
        Runspace? runspace = Runspace.DefaultRunspace;
        lock (Gate)
        {
            Sessions.Add(session);
            Defaults[session.OwnerRunspace] = session;
            if (runspace is not null && Watched.Add(runspace.InstanceId))
            {
                runspace.StateChanged += OnRunspaceStateChanged;
            }
        }
    }

    internal static void Remove(VmiSession session)
    {
        lock (Gate)
        {
            Sessions.Remove(session);
            foreach (Guid key in Defaults.Where(kv => ReferenceEquals(kv.Value, session)).Select(kv => kv.Key).ToArray())
            {
                // Fall back to the newest session left in that runspace.
                VmiSession? previous = Sessions.LastOrDefault(s => s.OwnerRunspace == key);
                if (previous is null)
                {
                    Defaults.Remove(key);
                }
                else
                {
                    Defaults[key] = previous;
                }
            }
        }
    }

    /// <summary>Closes (restores and releases) every session created in <paramref name="runspaceId"/>.</summary>
    internal static void CloseRunspaceSessions(Guid runspaceId)
    {
        VmiSession[] mine;
        lock (Gate)
        {
            mine = Sessions.Where(s => s.OwnerRunspace == runspaceId).ToArray();
        }

        foreach (VmiSession s in mine)
        {
            Remove(s);
            s.Close(Log);
        }
    }

    /// <summary>How many sessions are open in the process.</summary>
    internal static int Count
    {
        get
        {
            lock (Gate)
            {
                return Sessions.Count;
            }
        }
    }

    /// <summary>Closes every session in the process.</summary>
    internal static void CloseAll()
    {
        VmiSession[] all;
        lock (Gate)
        {
            all = Sessions.ToArray();
        }

        foreach (VmiSession s in all)
        {
            Remove(s);
            s.Close(Log);
        }
    }

    private static void OnRunspaceStateChanged(object? sender, RunspaceStateEventArgs e)
    {
        if (sender is not Runspace runspace)
        {
            return;
        }

        RunspaceState state = e.RunspaceStateInfo.State;
        if (state is RunspaceState.Closing or RunspaceState.Closed or RunspaceState.Broken)
        {
            lock (Gate)
            {
                if (!Watched.Remove(runspace.InstanceId))
                {
                    return;
                }
            }

            runspace.StateChanged -= OnRunspaceStateChanged;
            CloseRunspaceSessions(runspace.InstanceId);
        }
    }

    private static void HookProcessExit()
    {
        if (Interlocked.Exchange(ref s_processHooked, 1) == 0)
        {
            AppDomain.CurrentDomain.ProcessExit += static (_, _) => CloseAll();
            ModuleLifetime.RegisterSignals();
        }
    }
}
