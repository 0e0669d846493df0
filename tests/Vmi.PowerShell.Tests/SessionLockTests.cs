using System.Diagnostics.CodeAnalysis;
using System.Management.Automation;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;
using Vmi.Mock;

namespace Vmi.PowerShell.Tests;

/// <summary>
/// Disconnect from another runspace while a taken event's record is in the pipeline, against a driver that, like
/// Xen's, has its own lock around every call: nothing holds a lock while the pipeline runs, so nothing deadlocks.
/// </summary>
public sealed class SessionLockTests : IDisposable
{
    private readonly PowerShellHost _waiter = new();
    private readonly PowerShellHost _other = new();
    private readonly LockingDriver _driver = new(DemoGuest.Create());
    private readonly VmiSession _session;

    public SessionLockTests()
    {
        _session = new VmiSession(new VmiGuest(_driver), "locking", "a driver with its own lock", _waiter.Runspace.InstanceId);
        VmiSessionRegistry.Add(_session);
        _waiter.Runspace.SessionStateProxy.SetVariable("s", _session);
        _other.Runspace.SessionStateProxy.SetVariable("s", _session);
    }

    public void Dispose()
    {
        _other.Dispose();
        _waiter.Dispose();
    }

    [Fact]
    public async Task DisconnectingFromAnotherRunspaceWhileARecordIsInThePipelineDoesNotDeadlock()
    {
        Task waiting = Task.Factory.StartNew(() => _waiter.Run("""
            Enable-VmiMonitor Cr3 -Session $s
            Wait-VmiEvent -Timeout 10 -Count 1 -Session $s | ForEach-Object { [System.Threading.Thread]::Sleep(500) }
            """), TaskCreationOptions.LongRunning);
        Assert.True(_driver.InHandler.Wait(TimeSpan.FromSeconds(30)), "no event reached the handler");

        // The record is in the pipeline: the event is taken and not answered; no lock is held.
        Task disconnecting = Task.Factory.StartNew(() => _other.Run("Disconnect-VmiDomain -Session $s"), TaskCreationOptions.LongRunning);
        Task both = Task.WhenAll(waiting, disconnecting);
        Assert.True(await Task.WhenAny(both, Task.Delay(TimeSpan.FromSeconds(60))) == both, "Disconnect-VmiDomain and Wait-VmiEvent deadlocked");
        await both;
        Assert.Equal(VmiSessionState.Closed, _session.State);
        Assert.Equal(0, _driver.Guest.EventsPending);
        Assert.True(_driver.Guest.IsDisposed);
    }

    private sealed class LockingDriver(MockGuest guest) : IVmiDriver, IVmiRead, IVmiEventControl, IVmiVmControl
    {
        private readonly object _lock = new();

        public MockGuest Guest => guest;

        public ManualResetEventSlim InHandler { get; } = new();

        public string Name => "Locking";

        public VmiInfo Info => guest.Info;

        public IReadOnlyCollection<EventMonitor> EnabledMonitors => guest.EnabledMonitors;

        public int EventsPending => guest.EventsPending;

        public bool TryMapPage(Gfn gfn, [NotNullWhen(true)] out MappedPage? page) => guest.TryMapPage(gfn, out page);

        public void EnableMonitor(EventMonitor monitor)
        {
            lock (_lock)
            {
                guest.EnableMonitor(monitor);
            }
        }

        public void DisableMonitor(EventMonitor monitor)
        {
            lock (_lock)
            {
                guest.DisableMonitor(monitor);
            }
        }

        public bool WaitForPending(TimeSpan timeout, CancellationToken cancellationToken = default) => guest.WaitForPending(timeout, cancellationToken);

        public IReadOnlyList<VmiPendingEvent> TakeEvents(int maxEvents)
        {
            lock (_lock)
            {
                IReadOnlyList<VmiPendingEvent> taken = guest.TakeEvents(maxEvents);
                if (taken.Count > 0)
                {
                    InHandler.Set();
                }

                return taken;
            }
        }

        public void Answer(VmiPendingEvent pending, VmiEventResponse response)
        {
            lock (_lock)
            {
                guest.Answer(pending, response);
            }
        }

        public void Release(VmiPendingEvent pending)
        {
            lock (_lock)
            {
                guest.Release(pending);
            }
        }

        public void Pause()
        {
            lock (_lock)
            {
                guest.Pause();
            }
        }

        public void Resume()
        {
            lock (_lock)
            {
                guest.Resume();
            }
        }

        public Gfn AllocateGfn() => guest.AllocateGfn();

        public void AllocateGfn(Gfn gfn) => guest.AllocateGfn(gfn);

        public void FreeGfn(Gfn gfn) => guest.FreeGfn(gfn);

        public void InjectInterrupt(VcpuId vcpu, Interrupt interrupt) => guest.InjectInterrupt(vcpu, interrupt);

        public void ResetState()
        {
            lock (_lock)
            {
                guest.ResetState();
            }
        }

        public void Dispose()
        {
            guest.Dispose();
            InHandler.Dispose();
        }
    }
}

/// <summary>Disconnect from inside the session's own Wait-VmiEvent pipeline, on the waiting thread.</summary>
public sealed class DisconnectInsideTheEventPipelineTests : IDisposable
{
    private readonly PowerShellHost _host = new();
    private readonly MockGuest _guest = DemoGuest.Create();
    private readonly VmiSession _session;

    public DisconnectInsideTheEventPipelineTests()
    {
        _session = new VmiSession(new VmiGuest(_guest), "inside", "the demo guest", _host.Runspace.InstanceId);
        VmiSessionRegistry.Add(_session);
        _host.Runspace.SessionStateProxy.SetVariable("s", _session);
    }

    public void Dispose() => _host.Dispose();

    [Fact]
    public void ClosingReleasesTheTakenEventBeforeItRestores()
    {
        using var ps = System.Management.Automation.PowerShell.Create();
        ps.Runspace = _host.Runspace;
        ps.AddScript("""
            Enable-VmiMonitor Cr3 -Session $s
            Wait-VmiEvent -Timeout 10 -Count 1 -Session $s | ForEach-Object { Disconnect-VmiDomain -Session $s }
            """);
        ps.Invoke();

        // The close released the event the wait had taken (no answer was set on it) before it restored the guest; the
        // wait's own answer afterwards found it released and wrote nothing (with a Xen ring: into a ring already gone).
        MockEventAnswer answer = Assert.Single(_guest.Responses);
        Assert.IsType<ControlRegisterWriteReason>(answer.Event.Reason);
        Assert.Equal(MockAnswerSource.Fallback, answer.Source);

        // And the restore did run: the guest is restored and released.
        Assert.Equal(VmiSessionState.Closed, _session.State);
        Assert.Contains(_guest.Calls, c => c.ToString()!.Contains("ResetState", StringComparison.Ordinal));
        Assert.Empty(_guest.EnabledMonitors);
        Assert.Equal(0, _guest.EventsPending);
        Assert.True(_guest.IsDisposed);
    }
}
