using System.Diagnostics;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;
using static Vmi.Mock.Tests.MockGuestTests;

namespace Vmi.Mock.Tests;

/// <summary>The event ring: blocking, answers and their effects, and the WaitForEvents contract.</summary>
public sealed class EventTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(10);

    private static MockGuest Guest(int vcpus = 2)
    {
        var b = new MockGuestBuilder(PagingMode.Ia32e, vcpus);
        b.Map(new Va(0xFFFF_8000_0000_0000), new Pa(0x40_0000), 0x2000);
        return b.Build();
    }

    [Fact]
    public async Task A_raised_event_is_handed_to_the_handler_and_its_task_completes_with_the_answer()
    {
        MockGuest guest = Guest();
        Task<VmiEventResponse> task = guest.Raise(Event(1, new CpuidReason(1, 0, 2)));
        Assert.Equal(1, guest.EventsPending);
        Assert.True(guest.IsVcpuBlocked(1));
        Assert.False(task.IsCompleted);

        VmiEvent? seen = null;
        Assert.Equal(1, guest.WaitForEvents(Long, e => { seen = e; return VmiEventResponse.Emulate; }));
        Assert.Equal(new VcpuId(1), seen!.Vcpu);
        Assert.Same(VmiEventResponse.Emulate, await task.WaitAsync(Long));
        Assert.False(guest.IsVcpuBlocked(1));
        Assert.Equal(1, guest.GetEmulationCount(1));
        MockEventAnswer answer = Assert.Single(guest.Responses);
        Assert.Same(seen, answer.Event);
        Assert.Same(VmiEventResponse.Emulate, answer.Response);
        Assert.Equal(MockAnswerSource.Handler, answer.Source);
    }

    [Fact]
    public void MaxEvents_takes_no_more_and_leaves_the_rest_in_the_ring_unanswered()
    {
        MockGuest guest = Guest(3);
        Task<VmiEventResponse>[] tasks = [.. Enumerable.Range(0, 3).Select(v => guest.Raise(Event((ushort)v, new CpuidReason((uint)v + 1, 0, 2))))];
        var leaves = new List<uint>();

        Assert.Equal(1, guest.WaitForEvents(TimeSpan.Zero, 1, e => { leaves.Add(((CpuidReason)e.Reason).Leaf); return VmiEventResponse.Deny; }));
        Assert.Equal([1u], leaves);
        Assert.Single(guest.Responses);
        Assert.Equal(2, guest.EventsPending);
        Assert.False(tasks[1].IsCompleted);
        Assert.False(tasks[2].IsCompleted);

        Assert.Equal(2, guest.WaitForEvents(TimeSpan.Zero, 5, e => { leaves.Add(((CpuidReason)e.Reason).Leaf); return VmiEventResponse.Continue; }));
        Assert.Equal([1u, 2u, 3u], leaves);
        Assert.All(guest.Responses, a => Assert.Equal(MockAnswerSource.Handler, a.Source));
        Assert.Throws<ArgumentOutOfRangeException>(() => guest.WaitForEvents(TimeSpan.Zero, 0, _ => VmiEventResponse.Continue));
    }

    [Fact]
    public void A_vcpu_has_one_event_outstanding_and_the_next_waits_behind_the_answer()
    {
        MockGuest guest = Guest();
        guest.Raise(Event(0, new CpuidReason(1, 0, 2)));
        guest.Raise(Event(0, new CpuidReason(2, 0, 2)));
        guest.Raise(Event(1, new CpuidReason(3, 0, 2)));
        Assert.Equal(2, guest.EventsPending); // vCPU 0's second event is not in the ring yet

        var leaves = new List<uint>();
        Assert.Equal(2, guest.WaitForEvents(TimeSpan.Zero, e => { leaves.Add(((CpuidReason)e.Reason).Leaf); return VmiEventResponse.Continue; }));
        Assert.Equal([1u, 3u], leaves);

        // Answering released vCPU 0, which now raises its next event.
        Assert.Equal(1, guest.EventsPending);
        Assert.Equal(1, guest.WaitForEvents(TimeSpan.Zero, e => { leaves.Add(((CpuidReason)e.Reason).Leaf); return VmiEventResponse.Continue; }));
        Assert.Equal([1u, 3u, 2u], leaves);
    }

    [Fact]
    public async Task Raise_from_another_thread_wakes_a_waiting_handler()
    {
        MockGuest guest = Guest();
        var started = new ManualResetEventSlim();
        Task<int> waiter = Task.Factory.StartNew(
            () =>
            {
                started.Set();
                return guest.WaitForEvents(Timeout.InfiniteTimeSpan, e => new VmiEventResponse(Registers: e.Registers with { Rax = 0xAB }));
            },
            TaskCreationOptions.LongRunning);
        Assert.True(started.Wait(Long));
        Thread.Sleep(50);
        Assert.False(waiter.IsCompleted);

        Task<VmiEventResponse> answer = guest.Raise(Event(1, new GuestRequestReason()));
        Assert.Equal(1, await waiter.WaitAsync(Long));
        await answer.WaitAsync(Long);
        Assert.Equal(0xABUL, guest.GetRegisters(1).Rax);
    }

    [Fact]
    public async Task A_vcpu_thread_blocks_until_the_handler_answers()
    {
        MockGuest guest = Guest();
        guest.EnableMonitor(EventMonitor.ControlRegisterWrite(ControlRegister.Cr3));
        var handled = new ManualResetEventSlim();

        // A "vCPU" thread raises and waits for the answer, as the guest's vCPU would.
        Task<VmiEventResponse> vcpu = Task.Run(async () =>
        {
            guest.TriggerControlRegisterWrite(1, ControlRegister.Cr3, 0x5000);
            return await guest.Raise(Event(1, new GuestRequestReason())).ConfigureAwait(false);
        });

        int total = 0;
        var watch = Stopwatch.StartNew();
        while (total < 2 && watch.Elapsed < Long)
        {
            total += guest.WaitForEvents(TimeSpan.FromMilliseconds(100), e => VmiEventResponse.Continue);
        }

        Assert.Equal(2, total);
        await vcpu.WaitAsync(Long);
        Assert.Equal(0x5000UL, guest.GetRegisters(1).Cr3);
    }

    [Fact]
    public void Timeout_returns_zero_after_the_timeout()
    {
        MockGuest guest = Guest();
        var watch = Stopwatch.StartNew();
        Assert.Equal(0, guest.WaitForEvents(TimeSpan.FromMilliseconds(100), _ => throw new InvalidOperationException("no event expected")));
        Assert.True(watch.ElapsedMilliseconds >= 90, $"returned after {watch.ElapsedMilliseconds} ms");
        Assert.Equal(0, guest.WaitForEvents(TimeSpan.Zero, _ => VmiEventResponse.Continue));
        Assert.Throws<ArgumentOutOfRangeException>(() => guest.WaitForEvents(TimeSpan.FromSeconds(-2), _ => VmiEventResponse.Continue));
        Assert.Throws<ArgumentNullException>(() => guest.WaitForEvents(TimeSpan.Zero, null!));
    }

    [Fact]
    public async Task Cancellation_ends_an_infinite_wait_with_zero()
    {
        MockGuest guest = Guest();
        using var cts = new CancellationTokenSource();
        Task<int> waiter = Task.Factory.StartNew(() => guest.WaitForEvents(Timeout.InfiniteTimeSpan, _ => VmiEventResponse.Continue, cts.Token), TaskCreationOptions.LongRunning);
        Thread.Sleep(50);
        Assert.False(waiter.IsCompleted);
        cts.Cancel();
        Assert.Equal(0, await waiter.WaitAsync(Long));

        // Already cancelled: returns at once even with events pending, which stay pending.
        _ = guest.Raise(Event(0, new GuestRequestReason()));
        Assert.Equal(0, guest.WaitForEvents(Long, _ => VmiEventResponse.Continue, cts.Token));
        Assert.Equal(1, guest.EventsPending);
    }

    [Fact]
    public void Cancellation_during_handling_answers_the_rest_with_Continue()
    {
        MockGuest guest = Guest(3);
        guest.Raise(Event(0, new GuestRequestReason()));
        guest.Raise(Event(1, new GuestRequestReason()));
        guest.Raise(Event(2, new GuestRequestReason()));
        using var cts = new CancellationTokenSource();
        int handled = guest.WaitForEvents(Long, e => { cts.Cancel(); return VmiEventResponse.Deny; }, cts.Token);
        Assert.Equal(1, handled);
        Assert.Equal(
            [MockAnswerSource.Handler, MockAnswerSource.Fallback, MockAnswerSource.Fallback],
            guest.Responses.Select(a => a.Source));
        Assert.All(guest.Responses.Skip(1), a => Assert.Same(VmiEventResponse.Continue, a.Response));
        for (ushort i = 0; i < 3; i++)
        {
            Assert.False(guest.IsVcpuBlocked(i));
        }
    }

    [Fact]
    public void A_throwing_handler_leaves_no_vcpu_waiting_and_the_exception_surfaces()
    {
        MockGuest guest = Guest(3);
        guest.Raise(Event(0, new GuestRequestReason()));
        guest.Raise(Event(1, new GuestRequestReason()));
        guest.Raise(Event(2, new GuestRequestReason()));
        int calls = 0;
        var ex = Assert.Throws<InvalidOperationException>(() => guest.WaitForEvents(Long, e =>
        {
            if (++calls == 2)
            {
                throw new InvalidOperationException("handler failed");
            }

            return VmiEventResponse.Deny;
        }));
        Assert.Equal("handler failed", ex.Message);
        Assert.Equal(3, guest.Responses.Count);
        Assert.Equal([MockAnswerSource.Handler, MockAnswerSource.Fallback, MockAnswerSource.Fallback], guest.Responses.Select(a => a.Source));
        Assert.Equal(0, guest.EventsPending);
        for (ushort i = 0; i < 3; i++)
        {
            Assert.False(guest.IsVcpuBlocked(i));
        }
    }

    [Fact]
    public void An_invalid_response_is_answered_with_Continue_and_reported()
    {
        MockGuest guest = Guest();
        guest.Raise(Event(0, new GuestRequestReason()));
        Assert.Throws<ViewNotFoundException>(() => guest.WaitForEvents(Long, _ => VmiEventResponse.SwitchView(new View(4))));
        guest.Raise(Event(0, new GuestRequestReason()));
        Assert.Throws<ArgumentException>(() => guest.WaitForEvents(Long, _ => new VmiEventResponse(VmiEventResponseFlags.ToggleFastSinglestep)));
        Assert.All(guest.Responses, a => Assert.Equal(MockAnswerSource.Fallback, a.Source));
        Assert.Equal(View.Default, guest.GetVcpuView(0));
    }

    [Fact]
    public void The_guest_object_takes_and_answers_through_the_mock_and_closing_releases_what_is_left()
    {
        MockGuest guest = Guest();
        var vmi = new VmiGuest(guest);
        guest.Raise(Event(0, new GuestRequestReason()));
        guest.Raise(Event(1, new GuestRequestReason()));
        IReadOnlyList<VmiPendingEvent> taken = vmi.TakeEvents(Long, 10);
        Assert.Equal(2, taken.Count);
        Assert.Equal(0, vmi.EventsPending);
        Assert.True(guest.IsVcpuBlocked(0) && guest.IsVcpuBlocked(1)); // taken, not answered: both vCPUs wait

        Assert.True(vmi.Answer(taken[0], VmiEventResponse.Deny));
        Assert.False(vmi.Answer(taken[0], VmiEventResponse.Continue)); // answered once only
        Assert.False(guest.IsVcpuBlocked(0));

        Assert.True(vmi.Close());
        Assert.False(vmi.Answer(taken[1], VmiEventResponse.Deny)); // the close released it
        Assert.Equal([MockAnswerSource.Handler, MockAnswerSource.Fallback], guest.Responses.Select(a => a.Source));
        Assert.True(guest.IsDisposed);
        Assert.Throws<GuestClosedException>(() => vmi.TakeEvents(TimeSpan.Zero, 1));
    }

    [Fact]
    public void Events_are_held_while_the_guest_is_paused()
    {
        MockGuest guest = Guest();
        guest.EnableMonitor(EventMonitor.GuestRequest);
        guest.Pause();
        Assert.True(guest.TriggerGuestRequest(1));
        Assert.Equal(0, guest.EventsPending);
        guest.Resume();
        Assert.Equal(1, guest.EventsPending);
    }

    [Fact]
    public void Control_register_writes_happen_unless_denied()
    {
        MockGuest guest = Guest();
        ulong cr3 = guest.GetRegisters(0).Cr3;

        // Not monitored: the write just happens.
        Assert.False(guest.TriggerControlRegisterWrite(0, ControlRegister.Cr3, 0x7000));
        Assert.Equal(0x7000UL, guest.GetRegisters(0).Cr3);

        guest.EnableMonitor(EventMonitor.ControlRegisterWrite(ControlRegister.Cr3));
        Assert.True(guest.TriggerControlRegisterWrite(0, ControlRegister.Cr3, cr3));
        Assert.Equal(0x7000UL, guest.GetRegisters(0).Cr3); // not yet: the vCPU waits
        guest.WaitForEvents(Long, e =>
        {
            var r = Assert.IsType<ControlRegisterWriteReason>(e.Reason);
            Assert.Equal(0x7000UL, r.OldValue);
            Assert.Equal(cr3, r.NewValue);
            return VmiEventResponse.Deny;
        });
        Assert.Equal(0x7000UL, guest.GetRegisters(0).Cr3);

        Assert.True(guest.TriggerControlRegisterWrite(0, ControlRegister.Cr3, cr3));
        guest.WaitForEvents(Long, _ => VmiEventResponse.Continue);
        Assert.Equal(cr3, guest.GetRegisters(0).Cr3);

        // Another register's monitor is not this one.
        Assert.False(guest.TriggerControlRegisterWrite(0, ControlRegister.Cr4, 0x20));
        guest.DisableMonitor(EventMonitor.ControlRegisterWrite(ControlRegister.Cr3));
        Assert.Empty(guest.EnabledMonitors);
        Assert.False(guest.TriggerControlRegisterWrite(0, ControlRegister.Cr3, 0x9000));
    }

    [Fact]
    public void Msr_writes_happen_unless_denied()
    {
        MockGuest guest = Guest();
        guest.EnableMonitor(EventMonitor.MsrWrite(0xC000_0082));
        Assert.True(guest.TriggerMsrWrite(1, 0xC000_0082, 0xDEAD));
        guest.WaitForEvents(Long, _ => VmiEventResponse.Deny);
        Assert.Equal(0UL, guest.GetRegisters(1).MsrLstar);
        Assert.True(guest.TriggerMsrWrite(1, 0xC000_0082, 0xBEEF));
        guest.WaitForEvents(Long, _ => VmiEventResponse.Continue);
        Assert.Equal(0xBEEFUL, guest.GetRegisters(1).MsrLstar);
    }

    [Fact]
    public void Breakpoints_report_their_frame_and_can_be_reinjected()
    {
        MockGuest guest = Guest();
        guest.UpdateRegisters(0, r => r with { Rip = 0xFFFF_8000_0000_1234 });
        Assert.False(guest.TriggerBreakpoint(0));
        guest.EnableMonitor(EventMonitor.Breakpoint);
        Assert.True(guest.TriggerBreakpoint(0));
        VmiEvent? seen = null;
        guest.WaitForEvents(Long, e => { seen = e; return VmiEventResponse.ReinjectInterrupt; });
        var bp = Assert.IsType<SoftwareBreakpointReason>(seen!.Reason);
        Assert.Equal(new Va(0xFFFF_8000_0000_1234), bp.Va);
        Assert.Equal(new Gfn(0x401), bp.Gfn);
        Assert.Equal(0xFFFF_8000_0000_1234UL, seen.Registers.Rip);
        Assert.Equal([Interrupt.Breakpoint()], guest.GetInjectedInterrupts(0));

        Assert.Throws<PageFaultException>(() => guest.TriggerBreakpoint(0, new Va(0x1000)));
    }

    [Fact]
    public void Memory_access_events_come_only_when_the_vcpus_view_forbids_the_access()
    {
        MockGuest guest = Guest();
        var pa = new Pa(0x40_0010);
        Assert.False(guest.TriggerMemoryAccess(0, pa, MemoryAccess.W));
        guest.SetMemoryAccess(new Gfn(0x400), View.Default, MemoryAccess.RX);
        Assert.False(guest.TriggerMemoryAccess(0, pa, MemoryAccess.R));
        Assert.False(guest.TriggerMemoryAccess(0, pa, MemoryAccess.X));
        Assert.True(guest.TriggerMemoryAccess(0, pa, MemoryAccess.W, new Va(0xFFFF_8000_0000_0010)));
        VmiEvent? seen = null;
        guest.WaitForEvents(Long, e => { seen = e; return VmiEventResponse.Continue; });
        Assert.Equal(new MemoryAccessReason(pa, new Va(0xFFFF_8000_0000_0010), MemoryAccess.W), seen!.Reason);
        Assert.Equal(VmiEventFlags.VcpuPaused, seen.Flags);

        // In a view, the view's access decides and the event says which view.
        View v = guest.CreateView(MemoryAccess.R);
        guest.SwitchToView(v);
        Assert.True(guest.TriggerMemoryAccess(1, new Pa(0x9000), MemoryAccess.X));
        guest.WaitForEvents(Long, e => { seen = e; return VmiEventResponse.Continue; });
        Assert.Equal(v, seen!.View);
        Assert.True((seen.Flags & VmiEventFlags.AltP2m) != 0);
    }

    [Fact]
    public void Responses_switch_views_and_toggle_singlestep()
    {
        MockGuest guest = Guest();
        guest.UpdateRegisters(1, r => r with { Rip = 0xFFFF_8000_0000_0010 });
        View v = guest.CreateView(MemoryAccess.RWX);
        guest.Raise(Event(1, new GuestRequestReason()));
        guest.WaitForEvents(Long, _ => VmiEventResponse.ToggleSinglestep(v));
        Assert.Equal(v, guest.GetVcpuView(1));
        Assert.Equal(View.Default, guest.GetVcpuView(0));
        Assert.True(guest.IsSinglestepping(1));

        // Singlestepping vCPUs raise singlestep events without the monitor.
        Assert.False(guest.TriggerSinglestep(0));
        Assert.True(guest.TriggerSinglestep(1));
        guest.WaitForEvents(Long, e =>
        {
            Assert.IsType<SinglestepReason>(e.Reason);
            return new VmiEventResponse(VmiEventResponseFlags.ToggleSinglestep, View.Default);
        });
        Assert.False(guest.IsSinglestepping(1));
        Assert.Equal(View.Default, guest.GetVcpuView(1));

        // Fast singlestep steps in the view and comes back.
        guest.Raise(Event(1, new GuestRequestReason()));
        guest.WaitForEvents(Long, _ => VmiEventResponse.FastSinglestep(v));
        Assert.Equal(View.Default, guest.GetVcpuView(1));
        Assert.Equal(1, guest.GetFastSinglestepCount(1));
    }

    [Fact]
    public void Scripted_events_fire_once_when_their_condition_comes_true()
    {
        MockGuest guest = Guest();
        guest.ScriptMonitoredEvent(1, EventMonitor.Cpuid, new CpuidReason(7, 0, 2));
        guest.ScriptMemoryAccess(0, new Pa(0x40_0000), MemoryAccess.X);
        Assert.Equal(2, guest.ScriptedEventsRemaining);
        Assert.Equal(0, guest.EventsPending);

        guest.EnableMonitor(EventMonitor.Cpuid);
        Assert.Equal(1, guest.EventsPending);
        guest.SetMemoryAccess(new Gfn(0x400), View.Default, MemoryAccess.RW);
        Assert.Equal(2, guest.EventsPending);
        Assert.Equal(2, guest.WaitForEvents(TimeSpan.Zero, _ => VmiEventResponse.Continue));
        Assert.Equal(0, guest.ScriptedEventsRemaining);
        Assert.Equal(0, guest.WaitForEvents(TimeSpan.Zero, _ => VmiEventResponse.Continue));
    }

    [Fact]
    public void RaiseAll_queues_a_script_given_up_front()
    {
        MockGuest guest = Guest();
        IReadOnlyList<Task<VmiEventResponse>> tasks = guest.RaiseAll([Event(0, new CpuidReason(1, 0, 2)), Event(0, new CpuidReason(2, 0, 2)), Event(1, new GuestRequestReason())]);
        int total = 0;
        while (guest.EventsPending > 0)
        {
            total += guest.WaitForEvents(TimeSpan.Zero, _ => VmiEventResponse.Continue);
        }

        Assert.Equal(3, total);
        Assert.All(tasks, t => Assert.True(t.IsCompleted));
        Assert.Throws<VcpuNotFoundException>(() => { _ = guest.Raise(Event(5, new GuestRequestReason())); });
    }

    [Fact]
    public void Bad_monitors_are_refused()
    {
        MockGuest guest = Guest();
        Assert.Throws<ArgumentException>(() => guest.EnableMonitor(new EventMonitor(MonitorKind.ControlRegister, 9)));
        Assert.Throws<ArgumentException>(() => guest.EnableMonitor(new EventMonitor((MonitorKind)77)));
        Assert.Throws<ArgumentException>(() => guest.EnableMonitor(new EventMonitor(MonitorKind.Breakpoint, 1)));
        guest.DisableMonitor(EventMonitor.Cpuid); // not enabled: nothing to do
    }

    [Fact]
    public async Task Disposing_wakes_a_waiter()
    {
        MockGuest guest = Guest();
        Task<int> waiter = Task.Factory.StartNew(() => guest.WaitForEvents(Timeout.InfiniteTimeSpan, _ => VmiEventResponse.Continue), TaskCreationOptions.LongRunning);
        Thread.Sleep(50);
        guest.Dispose();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => waiter.WaitAsync(Long));
    }

    [Fact]
    public async Task Many_raising_threads_and_one_handler_never_see_two_events_of_one_vcpu_at_once()
    {
        const int vcpus = 4;
        const int perVcpu = 50;
        MockGuest guest = Guest(vcpus);
        Task[] raisers = Enumerable.Range(0, vcpus).Select(v => Task.Run(async () =>
        {
            for (int i = 0; i < perVcpu; i++)
            {
                // A vCPU raises and waits for its answer before it runs on, as a real one does.
                await guest.Raise(Event((ushort)v, new CpuidReason((uint)i, 0, 2))).ConfigureAwait(false);
            }
        })).ToArray();

        var outstanding = new HashSet<ushort>();
        var lastLeaf = new int[vcpus];
        Array.Fill(lastLeaf, -1);
        int handled = 0;
        var watch = Stopwatch.StartNew();
        while (handled < vcpus * perVcpu && watch.Elapsed < Long)
        {
            handled += guest.WaitForEvents(TimeSpan.FromMilliseconds(50), e =>
            {
                Assert.True(outstanding.Add(e.Vcpu.Value), $"vCPU {e.Vcpu} has two events in one batch");
                int leaf = (int)((CpuidReason)e.Reason).Leaf;
                Assert.Equal(lastLeaf[e.Vcpu.Value] + 1, leaf); // in order, none lost
                lastLeaf[e.Vcpu.Value] = leaf;
                return VmiEventResponse.Continue;
            });
            outstanding.Clear();
        }

        await Task.WhenAll(raisers).WaitAsync(Long);
        Assert.Equal(vcpus * perVcpu, handled);
        Assert.Equal(vcpus * perVcpu, guest.Responses.Count);
    }

    [Fact]
    public void A_handler_may_use_the_guest()
    {
        MockGuest guest = Guest();
        guest.EnableMonitor(EventMonitor.GuestRequest);
        guest.TriggerGuestRequest(0);
        guest.WaitForEvents(Long, e =>
        {
            // Calls from inside the handler do not deadlock, and events they cause queue for the next wait.
            guest.SetMemoryAccess(new Gfn(0x400), View.Default, MemoryAccess.R);
            guest.TriggerGuestRequest(1);
            Registers r = guest.GetRegisters(e.Vcpu);
            return new VmiEventResponse(Registers: r with { Rip = r.Rip + 3 });
        });
        Assert.Equal(3UL, guest.GetRegisters(0).Rip);
        Assert.Equal(MemoryAccess.R, guest.GetMemoryAccess(new Gfn(0x400), View.Default));
        Assert.Equal(1, guest.EventsPending);
    }

    [Fact]
    public void Any_monitored_reason_can_be_raised_and_debug_exceptions_reinjected()
    {
        MockGuest guest = Guest();
        var reason = new DebugExceptionReason(new Gfn(0x400), new Va(0xFFFF_8000_0000_0000), 1, InterruptType.HardwareException, 0, 0x4000);
        Assert.False(guest.TriggerMonitored(0, EventMonitor.DebugException, reason));
        guest.EnableMonitor(EventMonitor.DebugException);
        Assert.True(guest.TriggerMonitored(0, EventMonitor.DebugException, reason));
        guest.WaitForEvents(Long, e => { Assert.Same(reason, e.Reason); return VmiEventResponse.ReinjectInterrupt; });
        Assert.Equal([new Interrupt(1, InterruptType.HardwareException)], guest.GetInjectedInterrupts(0));

        guest.EnableMonitor(EventMonitor.Io);
        Assert.True(guest.TriggerMonitored(1, EventMonitor.Io, new IoReason(0x3F8, 1, false, false)));
        Assert.Equal(1, guest.EventsPending);
    }

    [Fact]
    public void A_scripted_breakpoint_at_an_unmapped_address_is_refused_when_scripted()
    {
        MockGuest guest = Guest();
        Assert.Throws<PageFaultException>(() => guest.ScriptBreakpoint(0, new Va(0x1000)));
        guest.ScriptBreakpoint(0, new Va(0xFFFF_8000_0000_1000));
        guest.EnableMonitor(EventMonitor.Breakpoint);
        VmiEvent? seen = null;
        Assert.Equal(1, guest.WaitForEvents(TimeSpan.Zero, e => { seen = e; return VmiEventResponse.Continue; }));
        Assert.Equal(new Gfn(0x401), ((SoftwareBreakpointReason)seen!.Reason).Gfn);
    }
}
