using System.Management.Automation;
using System.Runtime.InteropServices;
using Vmi.Dump;

namespace Vmi.PowerShell;

/// <summary>
/// Runs when the module is imported and removed: Remove-Module closes (and restores) the runspace's sessions.
/// On the first connect it also registers for the signals that end a process by default (SIGTERM, SIGHUP, SIGQUIT),
/// in vmi and in pwsh alike: .NET raises no ProcessExit for them, so without this a `kill` or a dropped ssh session
/// would leave guests paused and trapped.
/// </summary>
public sealed class ModuleLifetime : IModuleAssemblyInitializer, IModuleAssemblyCleanup
{
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

        // SIGINT is left to the host: vmi and pwsh treat it as Ctrl+C and stop the running command, also with standard
        // input redirected (a handler here runs before theirs and cannot know whether they will go on).
        foreach (PosixSignal signal in (PosixSignal[])[PosixSignal.SIGTERM, PosixSignal.SIGHUP, PosixSignal.SIGQUIT])
        {
            s_registrations.Add(PosixSignalRegistration.Create(signal, OnSignal));
        }
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
        PosixSignal signal = context.Signal;
        int code = 128 + signal switch
        {
            PosixSignal.SIGHUP => 1,
            PosixSignal.SIGQUIT => 3,
            _ => 15,
        };
        var restore = new Thread(() =>
        {
            try
            {
                ImageFileWriter.DeleteFilesInProgress();
                VmiSessionRegistry.CloseAll();
            }
            catch (Exception e)
            {
                Log($"Vmi: restoring the sessions on {signal} failed: {e.Message}");
            }
            finally
            {
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
