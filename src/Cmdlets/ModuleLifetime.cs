using System.Management.Automation;
using System.Runtime.InteropServices;
using Vmi.Dump;

namespace Vmi.PowerShell;

/// <summary>
/// Runs when the module is imported and removed: Remove-Module closes (and restores) the runspace's sessions.
/// On the first connect it also registers for the signals that end a process by default (SIGTERM, SIGHUP, SIGQUIT,
/// SIGINT), in vmi and in pwsh alike: .NET raises no ProcessExit for them, so without this a `kill` or a dropped ssh
/// session would leave guests paused and trapped. SIGINT is the host's first: pwsh's console host (and so vmi) takes
/// it as Ctrl+C and stops the running command; only where no host took it, and the process would end, are the
/// sessions restored first.
/// </summary>
public sealed class ModuleLifetime : IModuleAssemblyInitializer, IModuleAssemblyCleanup
{
    private const int ExitGraceMs = 20_000;

    private static readonly List<PosixSignalRegistration> s_registrations = [];
    private static int s_registered;
    private static int s_signalled;

    /// <summary>Where a failure while restoring on a signal is reported (there is no pipeline then).</summary>
    internal static Action<string> Log { get; set; } = static m => Console.Error.WriteLine(m);

    public void OnImport()
    {
    }

    public void OnRemove(PSModuleInfo psModuleInfo)
    {
        // Remove-Module and Import-Module -Force close the open sessions (each guest is restored): say which.
        string[] open = VmiSessionRegistry.Current.Select(s => $"{s.Name} (Id {s.Id})").ToArray();
        if (open.Length > 0)
        {
            string message = $"Unloading the Vmi module closes its {open.Length} open session(s), restoring each guest: {string.Join(", ", open)}. Connect again after the import.";
            try
            {
                ScriptBlock.Create("param($m) Write-Warning $m").Invoke(message);
            }
#pragma warning disable CA1031 // a warning that cannot be shown must not stop the sessions from closing
            catch (Exception)
#pragma warning restore CA1031
            {
                Console.Error.WriteLine("WARNING: " + message);
            }
        }

        VmiSessionRegistry.CloseRunspaceSessions(VmiSessionRegistry.CurrentRunspaceId);
    }

    /// <summary>Registers the signal handlers once per process (called when the first session connects).</summary>
    internal static void RegisterSignals()
    {
        if (Interlocked.Exchange(ref s_registered, 1) != 0 || OperatingSystem.IsWindows())
        {
            return;
        }

        foreach (PosixSignal signal in (PosixSignal[])[PosixSignal.SIGTERM, PosixSignal.SIGHUP, PosixSignal.SIGQUIT])
        {
            s_registrations.Add(PosixSignalRegistration.Create(signal, OnSignal));
        }

        // SIGINT through Console.CancelKeyPress, whose handlers run in the order they subscribed with one shared
        // argument: pwsh's console host (and so vmi) subscribes at start, before any module runs, and always cancels
        // (it stops the running command). A PosixSignalRegistration cannot tell that: .NET does not promise its order.
        Console.CancelKeyPress += OnCancelKeyPress;
    }

    /// <summary>
    /// SIGINT (Ctrl+C). Cancelled by a handler before this one: the host's Ctrl+C, left alone (the command stops, the
    /// sessions stay open; a script that ends then exits normally, which restores every guest). Not cancelled: nothing
    /// took it and the process would end now, so it is handled like SIGTERM (restore, then exit 130). During a restore
    /// it is the second signal and ends the process at once.
    /// </summary>
    private static void OnCancelKeyPress(object? sender, ConsoleCancelEventArgs e)
    {
        if (e.SpecialKey != ConsoleSpecialKey.ControlC)
        {
            return;
        }

        if (e.Cancel && Volatile.Read(ref s_signalled) == 0)
        {
            return; // the host's Ctrl+C
        }

        if (Interlocked.Exchange(ref s_signalled, 1) != 0)
        {
            e.Cancel = false; // the second signal: the default action ends the process now
            return;
        }

        e.Cancel = true;
        RestoreAndExit(PosixSignal.SIGINT);
    }

    /// <summary>
    /// The first signal: the process does not end yet; every session is restored (monitors off, access restored, views
    /// destroyed, breakpoints removed, vCPUs resumed) and acquisitions still writing have their temporary files
    /// removed, then the process exits with 128 + the signal number, as the signal would have ended it. A second
    /// signal while that runs ends the process at once (the default action), so a restore that hangs cannot keep it
    /// alive.
    /// </summary>
    private static void OnSignal(PosixSignalContext context)
    {
        if (Interlocked.Exchange(ref s_signalled, 1) != 0)
        {
            context.Cancel = false; // the second signal: the default action ends the process now
            return;
        }

        context.Cancel = true;
        RestoreAndExit(context.Signal);
    }

    /// <summary>Restores every session on a thread of its own, then exits with 128 + the signal's number.</summary>
    private static void RestoreAndExit(PosixSignal signal)
    {
        int code = 128 + signal switch
        {
            PosixSignal.SIGHUP => 1,
            PosixSignal.SIGINT => 2,
            PosixSignal.SIGQUIT => 3,
            _ => 15,
        };
        var restore = new Thread(() =>
        {
            try
            {
                int open = VmiSessionRegistry.Count;
                if (open > 0)
                {
                    Log($"Vmi: {signal}: restoring {open} open session(s) before the process ends (a second signal ends it at once).");
                }

                ImageFileWriter.DeleteFilesInProgress();
                VmiSessionRegistry.CloseAll();
            }
            catch (Exception e)
            {
                Log($"Vmi: restoring the sessions on {signal} failed: {e.Message}");
            }
            finally
            {
                // Environment.Exit runs every ProcessExit handler of the process (the host's and other modules' too). The
                // guests are restored by now, so a handler that hangs must not keep the process alive: after ExitGraceMs
                // it ends at once, with the same code (seen once in CI under heavy load: vmi still alive 120 s after a
                // SIGHUP; where it waited is not known).
                new Thread(() =>
                {
                    Thread.Sleep(ExitGraceMs);
                    Log($"Vmi: the process did not end {ExitGraceMs / 1000} s after {signal} restored its sessions; ending it now.");
                    Vmi.Core.NativeProcess.ExitNow(code);
                })
                {
                    IsBackground = true,
                    Name = "Vmi exit guard",
                }.Start();
                Environment.Exit(code);
            }
        })
        {
            IsBackground = true,
            Name = "Vmi restore on " + signal,
        };
        restore.Start();
    }
}
