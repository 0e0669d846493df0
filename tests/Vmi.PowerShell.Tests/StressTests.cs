using System.Collections;
using System.Collections.ObjectModel;
using System.Management.Automation;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;
using Vmi.Mock;
using L = Vmi.Mock.DemoGuestLayout;

namespace Vmi.PowerShell.Tests;

/// <summary>
/// One session used from several runspaces at once — readers, writers, an event waiter holding an event in its
/// pipeline, a thread raising events — and disconnected from yet another runspace in the middle. Fixed counts and
/// seeds; the only timeouts are hang guards.
/// </summary>
public sealed class StressTests : IDisposable
{
    private const int Readers = 2;
    private const int Writers = 2;
    private const int EventsPerVcpu = 10;

    /// <summary>Iterations each reader and writer finishes before the disconnect is let go.</summary>
    private const int BeforeDisconnect = 40;

    /// <summary>
    /// The most iterations a reader or writer runs: it stops when the session closes. Past <see cref="BeforeDisconnect"/>
    /// each iteration sleeps 1 ms until the disconnect, so on a fast machine no loop ends before the disconnect comes (one
    /// did at 5000 unthrottled iterations).
    /// </summary>
    private const int MaxIterations = 100_000;

    private static readonly TimeSpan HangGuard = TimeSpan.FromMinutes(3);

    private readonly PowerShellHost _owner = new();
    private readonly List<PowerShellHost> _hosts = [];

    public void Dispose()
    {
        foreach (PowerShellHost h in _hosts)
        {
            h.Dispose();
        }

        _owner.Dispose();
    }

    private PowerShellHost NewHost(VmiSession session, Hashtable sync)
    {
        var host = new PowerShellHost();
        host.Runspace.SessionStateProxy.SetVariable("s", session);
        host.Runspace.SessionStateProxy.SetVariable("sync", sync);
        _hosts.Add(host);
        return host;
    }

    private static Task<Collection<PSObject>> Start(PowerShellHost host, string script) =>
        Task.Factory.StartNew(() => host.Run(script), TaskCreationOptions.LongRunning);

    [Fact]
    public async Task ReadersWritersAnEventWaiterAndADisconnectAcrossRunspacesNeitherDeadlockNorCorruptNorLeaveTheGuestChanged()
    {
        VmiSession session = _owner.Get<VmiSession>("Connect-VmiDomain -Mock -SessionName stress");
        MockGuest guest = session.Guest.GetDriver<MockGuest>()!;
        Hashtable sync = Hashtable.Synchronized(new Hashtable { ["Errors"] = ArrayList.Synchronized(new ArrayList()) });
        _owner.RunClean("Enable-VmiMonitor Cpuid");

        // Readers: a string by virtual address, again and again; every read must be right.
        var work = new List<Task<Collection<PSObject>>>();
        for (int r = 0; r < Readers; r++)
        {
            work.Add(Start(NewHost(session, sync), $$"""
                $done = 0
                for ($i = 0; $i -lt {{MaxIterations}}; $i++) {
                    try { $t = Read-VmiMemory {{Hex(L.AsciiStringVa)}} -As String -Session $s -ErrorAction Stop }
                    catch { if ($_.FullyQualifiedErrorId -notlike 'Vmi.SessionClosed*') { $sync.Errors.Add("reader: $_") }; break }
                    if ($t -ne '{{L.AsciiString}}') { $sync.Errors.Add("reader read '$t'") }
                    $done++
                    $sync["r{{r}}"] = $done
                    if ($done -ge {{BeforeDisconnect}} -and -not $sync.Disconnected) { [System.Threading.Thread]::Sleep(1) } # still running when the disconnect comes
                }
                $done
                """));
        }

        // Writers: seeded bytes through the direct map (translated), read back by physical address (the page cache).
        for (int w = 0; w < Writers; w++)
        {
            ulong pa = L.KernelStackPa + (ulong)w * 0x1000 + 0x800;
            work.Add(Start(NewHost(session, sync), $$"""
                $rng = [System.Random]::new({{w + 1}})
                $done = 0
                for ($i = 0; $i -lt {{MaxIterations}}; $i++) {
                    $b = [byte[]]::new(8); $rng.NextBytes($b)
                    try {
                        Write-VmiMemory {{Hex(L.DirectMapVa + pa)}} -Bytes $b -Session $s -Confirm:$false -ErrorAction Stop
                        $back = (Read-VmiMemory {{Hex(pa)}} -Physical -Length 8 -Session $s -ErrorAction Stop).Bytes
                    }
                    catch { if ($_.FullyQualifiedErrorId -notlike 'Vmi.SessionClosed*') { $sync.Errors.Add("writer: $_") }; break }
                    if ([Convert]::ToHexString($back) -ne [Convert]::ToHexString($b)) { $sync.Errors.Add("writer read back $([Convert]::ToHexString($back))") }
                    $done++
                    $sync["w{{w}}"] = $done
                    if ($done -ge {{BeforeDisconnect}} -and -not $sync.Disconnected) { [System.Threading.Thread]::Sleep(1) }
                }
                $done
                """));
        }

        // The waiter holds its first event in the pipeline until the disconnect has happened (20 s at most).
        work.Add(Start(NewHost(session, sync), """
            try {
                Wait-VmiEvent -Session $s -Timeout 120 | ForEach-Object {
                    $sync.Taken = 1 + [int]$sync.Taken
                    if ($sync.Taken -eq 1) {
                        $sync.Holding = $true
                        $until = [DateTime]::UtcNow.AddSeconds(20)
                        while (-not $sync.Disconnected -and [DateTime]::UtcNow -lt $until) { [System.Threading.Thread]::Sleep(5) }
                        $sync.SawDisconnect = [bool]$sync.Disconnected
                    }
                    $_.Response = 'Deny'
                }
            }
            catch { if ($_.FullyQualifiedErrorId -notlike 'Vmi.SessionClosed*') { $sync.Errors.Add("waiter: $_") } }
            """));

        // Events, raised by every vCPU from a thread of its own: each must be answered or released by the end.
        var raised = new List<Task<VmiEventResponse>>();
        Task raiser = Task.Run(() =>
        {
            for (int i = 0; i < EventsPerVcpu; i++)
            {
                for (ushort v = 0; v < L.VcpuCount; v++)
                {
                    var e = new VmiEvent(new VcpuId(v), View.Default, VmiEventFlags.VcpuPaused, guest.GetRegisters(new VcpuId(v)), new CpuidReason((uint)i, 0, 2));
                    lock (raised)
                    {
                        raised.Add(guest.Raise(e));
                    }
                }
            }
        });

        // The disconnect, from another runspace, once everyone is busy and the waiter holds an event.
        PowerShellHost disconnector = NewHost(session, sync);
        Task<Collection<PSObject>> disconnect = Task.Factory.StartNew(() =>
        {
            string[] keys = [.. Enumerable.Range(0, Readers).Select(r => $"r{r}"), .. Enumerable.Range(0, Writers).Select(w => $"w{w}")];
            SpinWait.SpinUntil(() => true.Equals(sync["Holding"]) && keys.All(k => sync[k] is int n && n >= BeforeDisconnect), HangGuard);
            return disconnector.Run("Disconnect-VmiDomain -Session $s; $sync.Disconnected = $true");
        }, TaskCreationOptions.LongRunning);

        Task all = Task.WhenAll([.. work, disconnect, raiser]);
        Assert.True(await Task.WhenAny(all, Task.Delay(HangGuard)) == all, "the runspaces deadlocked: " + Describe(sync, [.. work, disconnect, raiser]));
        await all;

        Assert.Empty((ArrayList)sync["Errors"]!);
        Assert.Empty(disconnector.LastErrors);
        Assert.True(true.Equals(sync["SawDisconnect"]), "the disconnect waited for the pipeline that held an event");
        Assert.All(work.Take(Readers + Writers), t => Assert.InRange((int)t.Result.Single().BaseObject, BeforeDisconnect, MaxIterations - 1));

        // The guest is left as it was found: restored once, released, no vCPU waiting, every event answered.
        Assert.Equal(VmiSessionState.Closed, session.State);
        Assert.True(guest.IsDisposed);
        Assert.Equal(1, guest.CallCount(MockOperation.ResetState));
        Assert.Empty(guest.EnabledMonitors);
        Assert.Equal(0, guest.PauseCount);
        Assert.Equal(0, guest.EventsPending);
        Assert.All(Enumerable.Range(0, L.VcpuCount), v => Assert.False(guest.IsVcpuBlocked(new VcpuId((ushort)v))));
        Assert.All(raised, t => Assert.True(t.IsCompletedSuccessfully));
        Assert.Equal(raised.Count, guest.Responses.Count);
    }

    private static string Describe(Hashtable sync, Task[] tasks) =>
        string.Join(", ", sync.Keys.Cast<object>().Select(k => $"{k}={(sync[k] is ArrayList a ? string.Join(" | ", a.Cast<object>()) : sync[k])}"))
        + "; tasks: " + string.Join(", ", tasks.Select(t => t.Status));

    private static string Hex(ulong value) => "0x" + value.ToString("x", System.Globalization.CultureInfo.InvariantCulture);
}
