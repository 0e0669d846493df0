using System.Diagnostics.CodeAnalysis;
using System.Management.Automation;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;
using Vmi.Mock;

namespace Vmi.PowerShell.Tests;

/// <summary>
/// The session's gates against a driver that, like Xen's, holds its own lock while the event handler runs and
/// takes it again to restore the guest.
/// </summary>
public sealed class SessionLockTests : IDisposable
{
    private readonly PowerShellHost _waiter = new();
    private readonly PowerShellHost _other = new();
    private readonly LockingDriver _driver = new(DemoGuest.Create());
    private readonly VmiSession _session;

    public SessionLockTests()
    {
        _session = new VmiSession(new VmiCore(_driver), "locking", "a driver that locks around its handler", readOnly: false, _waiter.Runspace.InstanceId);
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

        // The record is in the pipeline: the session lock is free, the driver's own lock is not.
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

        public int WaitForEvents(TimeSpan timeout, int maxEvents, VmiEventHandler handler, CancellationToken cancellationToken = default)
        {
            lock (_lock)
            {
                return guest.WaitForEvents(timeout, maxEvents, e =>
                {
                    InHandler.Set();
                    return handler(e);
                }, cancellationToken);
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
        _session = new VmiSession(new VmiCore(_guest), "inside", "the demo guest", readOnly: false, _host.Runspace.InstanceId);
        VmiSessionRegistry.Add(_session);
        _host.Runspace.SessionStateProxy.SetVariable("s", _session);
    }

    public void Dispose() => _host.Dispose();

    [Fact]
    public void TheRestoreWaitsUntilTheDriverHasAnsweredTheEventInTheHandler()
    {
        using var ps = System.Management.Automation.PowerShell.Create();
        ps.Runspace = _host.Runspace;
        ps.AddScript("""
            Enable-VmiMonitor Cr3 -Session $s
            Wait-VmiEvent -Timeout 10 -Count 1 -Session $s | ForEach-Object { Disconnect-VmiDomain -Session $s }
            """);
        ps.Invoke();

        // The event was answered by the wait (its handler found the session closed), not torn out from under it by
        // the restore: with a Xen ring, restoring first would unmap the ring the answer is then written into.
        MockEventAnswer answer = Assert.Single(_guest.Responses);
        Assert.IsType<ControlRegisterWriteReason>(answer.Event.Reason);
        Assert.Equal(MockAnswerSource.Fallback, answer.Source);

        // And the restore did run, once the wait had ended: the guest is restored and released.
        Assert.Equal(VmiSessionState.Closed, _session.State);
        Assert.Contains(_guest.Calls, c => c.ToString()!.Contains("ResetState", StringComparison.Ordinal));
        Assert.Empty(_guest.EnabledMonitors);
        Assert.Equal(0, _guest.EventsPending);
        Assert.True(_guest.IsDisposed);
    }
}
