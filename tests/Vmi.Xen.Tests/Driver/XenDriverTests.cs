using Vmi.Core;
using Vmi.Core.Arch.Amd64;
using Vmi.Xen.Native;
using Vmi.Xen.Tests.Events;

namespace Vmi.Xen.Tests.Driver;

/// <summary>The driver's bookkeeping against a simulated Xen: what it sets up lazily, what it refuses, what it restores.</summary>
public sealed class XenDriverTests : IDisposable
{
    private readonly SimulatedXenHost _xen = new();
    private readonly List<XenDriver> _drivers = [];

    public void Dispose()
    {
        foreach (XenDriver d in _drivers)
        {
            d.Dispose();
        }
    }

    private XenDriver Connect(bool readOnly = false, string? name = null)
    {
        XenDriver d = XenDriver.Connect(
            _xen,
            name is null ? XenDomainSelector.ById(SimulatedXenHost.GuestId) : XenDomainSelector.ByName(name),
            new XenConnectOptions { ReadOnly = readOnly },
            hookProcessExit: false);
        _drivers.Add(d);
        return d;
    }

    [Fact]
    public void Connecting_by_name_or_id_changes_nothing_in_the_guest()
    {
        XenDriver byName = Connect(name: "WIN10");
        Assert.Equal(SimulatedXenHost.GuestId, byName.Domain.Id);
        Assert.Equal(new VmiInfo(4096, 12, new Gfn(0x7FFFF), 2), byName.Info);
        Assert.Equal("Xen", byName.Name);
        Assert.Empty(_xen.Calls);
        byName.Dispose();
        Assert.Empty(_xen.Calls); // nothing to restore: not even a pause
        Assert.True(_xen.Disposed);
    }

    [Fact]
    public void Unknown_pv_and_control_domains_are_refused_clearly()
    {
        var missing = Assert.Throws<VmiDriverException>(() => XenDriver.Connect(_xen, XenDomainSelector.ByName("nope"), XenConnectOptions.Default, false));
        Assert.Contains("No Xen domain matches domain 'nope'", missing.Message, StringComparison.Ordinal);
        Assert.Contains("7 'win10'", missing.Message, StringComparison.Ordinal);
        Assert.Contains("PV guest", Assert.Throws<VmiDriverException>(() => XenDriver.Connect(_xen, XenDomainSelector.ById(9), XenConnectOptions.Default, false)).Message, StringComparison.Ordinal);
        Assert.Contains("Domain 0", Assert.Throws<VmiDriverException>(() => XenDriver.Connect(_xen, XenDomainSelector.Parse("0"), XenConnectOptions.Default, false)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_only_reads_and_refuses_every_change()
    {
        _xen.Memory[0x10] = Enumerable.Range(0, 4096).Select(i => (byte)i).ToArray();
        XenDriver d = Connect(readOnly: true);
        Assert.True(d.TryMapPage(new Gfn(0x10), out MappedPage? page));
        Assert.Equal(5, page.Span[5]);
        Assert.False(d.TryMapPage(new Gfn(0x11), out _));
        Assert.Equal(0x1aa000ul, d.GetRegisters(0).Cr3);
        Assert.Equal(MemoryAccess.RWX, d.GetMemoryAccess(new Gfn(0x10), View.Default));

        Action[] changes =
        [
            () => d.WritePage(new Gfn(0x10), 0, [1]),
            () => d.SetRegisters(0, new Registers()),
            () => d.SetMemoryAccess(new Gfn(0x10), View.Default, MemoryAccess.R),
            () => d.CreateView(MemoryAccess.RWX),
            () => d.SwitchToView(View.Default),
            () => d.EnableMonitor(EventMonitor.Cpuid),
            () => d.AllocateGfn(),
            () => d.InjectInterrupt(0, Interrupt.Breakpoint()),
        ];
        foreach (Action change in changes)
        {
            var ex = Assert.Throws<VmiDriverException>(change);
            Assert.Contains("read-only", ex.Message, StringComparison.Ordinal);
        }

        Assert.DoesNotContain(_xen.Calls, c => c != "GetHvmContext");
        Assert.Null(_xen.Channel);
    }

    [Fact]
    public void Registers_come_from_the_vcpus_records_of_the_hvm_context()
    {
        XenDriver d = Connect();
        Registers r1 = d.GetRegisters(1);
        Assert.Equal(0x1001ul, r1.Rax);
        Assert.Equal(0xfffff800_12345001ul, r1.Rip);
        Assert.Equal(0x1ab000ul, r1.Cr3);
        Assert.Equal(new SegmentRegister(0x10, 0, 0xFFFFFFFF, 0xA9B), r1.Cs);
        Assert.Equal(new DescriptorTable(0xfffff800_0000a000, 0xfff), r1.Idtr);
        Assert.Equal(0x0007010600070106ul, r1.MsrPat);
        Assert.Equal(7ul, r1.Xcr0);
        Assert.Equal(PagingMode.Ia32e, r1.PagingMode);
        Assert.Throws<VcpuNotFoundException>(() => d.GetRegisters(2));
    }

    [Fact]
    public void Setting_registers_writes_them_back_and_leaves_the_domain_running()
    {
        XenDriver d = Connect();
        Registers r = d.GetRegisters(0) with { Rip = 0x1234, Cr3 = 0x5000, MsrPat = 0x6 };
        d.SetRegisters(0, r);
        Assert.Equal(0, _xen.PauseCount);
        Registers back = d.GetRegisters(0);
        Assert.Equal(r, back);
        Assert.Equal(0xfffff800_12345001ul, d.GetRegisters(1).Rip); // other vCPU untouched
    }

    [Fact]
    public void Setting_registers_unpauses_the_domain_when_xen_refuses()
    {
        XenDriver d = Connect();
        _xen.Fail = c => c == "SetHvmContext" ? new VmiDriverException("refused", 22) : null;
        Assert.Throws<VmiDriverException>(() => d.SetRegisters(0, d.GetRegisters(0)));
        Assert.Equal(0, _xen.PauseCount);
        Assert.Equal(["GetHvmContext", "Pause", "GetHvmContext", "SetHvmContext", "Unpause"], _xen.Calls);
    }

    [Fact]
    public void Restricting_access_sets_up_the_ring_first_and_reset_restores_what_was_there()
    {
        _xen.Access[(0, 0x102)] = MemoryAccess.RX; // set by someone before us
        XenDriver d = Connect();
        d.SetMemoryAccess(new Gfn(0x100), 4, View.Default, MemoryAccess.R, MemoryAccessOptions.IgnorePageWalkUpdates);
        Assert.Equal("EnableMonitorRing", _xen.Calls[0]);
        Assert.Contains("SetMemAccess 0 0x100 4 R", _xen.Calls); // one call for the range
        Assert.True(_xen.PageWalkEventsDisabled);
        Assert.Equal(MemoryAccess.R, d.GetMemoryAccess(new Gfn(0x103), View.Default));

        d.ResetState();

        Assert.Equal(MemoryAccess.RWX, _xen.Access[(0, 0x100)]);
        Assert.Equal(MemoryAccess.RWX, _xen.Access[(0, 0x101)]);
        Assert.Equal(MemoryAccess.RX, _xen.Access[(0, 0x102)]);
        Assert.Equal(MemoryAccess.RWX, _xen.Access[(0, 0x103)]);
        Assert.Contains("SetMemAccess 0 0x100 2 RWX", _xen.Calls); // restored in runs
        Assert.False(_xen.PageWalkEventsDisabled);
        Assert.Null(_xen.Channel);
        Assert.Equal(0, _xen.PauseCount);
    }

    [Fact]
    public void Views_need_altp2m_in_the_domain_config()
    {
        _xen.Altp2mParam = 0;
        XenDriver d = Connect();
        var ex = Assert.Throws<VmiDriverException>(() => d.CreateView(MemoryAccess.RWX));
        Assert.Contains("altp2m = \"external\"", ex.Message, StringComparison.Ordinal);
        Assert.False(_xen.Altp2mState);
    }

    [Fact]
    public void Reset_destroys_views_returns_to_view_0_and_turns_altp2m_back_off()
    {
        XenDriver d = Connect();
        View v = d.CreateView(MemoryAccess.RX);
        Assert.True(_xen.Altp2mState);
        d.SetMemoryAccess(new Gfn(0x200), 3, v, MemoryAccess.R);
        d.ChangeViewGfn(v, new Gfn(0x200), new Gfn(0x300));
        d.ChangeViewGfn(View.Default, new Gfn(0x201), new Gfn(0x301));
        d.SwitchToView(v);
        Assert.Equal([v], d.Views);
        Assert.Throws<ViewNotFoundException>(() => d.SwitchToView(new View(9)));

        d.ResetState();

        Assert.Equal(View.Default, _xen.ActiveView);
        Assert.Empty(_xen.ViewsInXen);
        Assert.Empty(_xen.Remapped);
        Assert.False(_xen.Altp2mState);
        Assert.Empty(d.Views);
        Assert.Equal(0, _xen.PauseCount);
        int switchBack = _xen.Calls.LastIndexOf("SwitchToView 0");
        Assert.True(switchBack < _xen.Calls.IndexOf("DestroyView " + v) && _xen.Calls.IndexOf("DestroyView " + v) < _xen.Calls.LastIndexOf("SetAltp2mState False"));
    }

    [Fact]
    public void Altp2m_that_was_already_on_stays_on()
    {
        _xen.Altp2mState = true;
        XenDriver d = Connect();
        d.CreateView(MemoryAccess.RWX);
        d.ResetState();
        Assert.True(_xen.Altp2mState);
        Assert.DoesNotContain(_xen.Calls, c => c.StartsWith("SetAltp2mState", StringComparison.Ordinal));
    }

    [Fact]
    public void Monitors_are_enabled_once_and_turned_off_by_reset_with_singlestep_per_vcpu()
    {
        XenDriver d = Connect();
        d.EnableMonitor(EventMonitor.ControlRegisterWrite(ControlRegister.Cr3));
        d.EnableMonitor(EventMonitor.ControlRegisterWrite(ControlRegister.Cr3));
        d.EnableMonitor(EventMonitor.MsrWrite(0xC0000082));
        d.EnableMonitor(EventMonitor.Singlestep);
        Assert.Equal(3, _xen.Monitors.Count);
        Assert.Equal([(ushort)0, (ushort)1], _xen.Singlestepping.Order());
        Assert.Single(_xen.Calls, "EnableMonitorRing");

        d.ResetState();

        Assert.Empty(_xen.Monitors);
        Assert.Empty(_xen.Singlestepping);
        Assert.Empty(d.EnabledMonitors);
        Assert.Null(_xen.Channel);
        Assert.Equal(0, _xen.PauseCount);
    }

    [Fact]
    public void Waiting_hands_events_to_the_handler_and_answers_them()
    {
        XenDriver d = Connect();
        Assert.Throws<InvalidOperationException>(() => d.WaitForEvents(TimeSpan.Zero, _ => VmiEventResponse.Continue));
        d.EnableMonitor(EventMonitor.Breakpoint);
        Assert.Equal(0, d.WaitForEvents(TimeSpan.FromMilliseconds(30), _ => VmiEventResponse.Continue));

        VmEventSt bp = XenRingSimulator.Request(1, VmEventAbi.ReasonSoftwareBreakpoint);
        bp.U.SoftwareBreakpoint.InsnLength = 1;
        _xen.Channel!.Put(bp);
        Assert.Equal(1, d.EventsPending);
        VmiEvent? seen = null;
        int n = d.WaitForEvents(TimeSpan.FromSeconds(5), e =>
        {
            seen = e;
            return VmiEventResponse.ReinjectInterrupt;
        });

        Assert.Equal(1, n);
        Assert.IsType<SoftwareBreakpointReason>(seen!.Reason);
        Assert.Equal((new VcpuId(1), Interrupt.Breakpoint(1)), Assert.Single(_xen.Injected));
        VmEventSt rsp = Assert.Single(_xen.Channel.Responses);
        Assert.Equal(1u, rsp.VcpuId);
        Assert.Equal(VmEventAbi.FlagVcpuPaused, rsp.Flags);
    }

    [Fact]
    public async Task Between_take_and_answer_the_driver_is_free_and_a_reset_answers_the_taken_event_before_the_ring_goes()
    {
        XenDriver d = Connect();
        d.EnableMonitor(EventMonitor.Breakpoint);
        var channel = _xen.Channel!;
        channel.Put(XenRingSimulator.Request(1, VmEventAbi.ReasonSoftwareBreakpoint));
        VmiPendingEvent taken = Assert.Single(d.TakeEvents(8));
        Assert.Empty(channel.Responses); // taken, not answered: the vCPU waits

        // What a PowerShell pipeline does with the record: another thread reads registers through the driver.
        await Task.Run(() => d.GetRegisters(new VcpuId(0))).WaitAsync(TimeSpan.FromSeconds(30));

        // A restore (another thread, a signal) answers the taken event with Continue, then tears the ring down.
        await Task.Run(d.ResetState).WaitAsync(TimeSpan.FromSeconds(30));
        VmEventSt rsp = Assert.Single(channel.Responses);
        Assert.Equal(1u, rsp.VcpuId);
        Assert.Equal(VmEventAbi.FlagVcpuPaused, rsp.Flags);
        Assert.Contains("DisableMonitorRing", _xen.Calls);

        d.Answer(taken, VmiEventResponse.Deny); // too late: ignored, nothing written into a ring that is gone
        Assert.Single(channel.Responses);
    }

    [Fact]
    public void Single_stepping_toggled_by_a_response_is_stopped_by_reset()
    {
        XenDriver d = Connect();
        d.EnableMonitor(EventMonitor.Breakpoint);
        _xen.Channel!.Put(XenRingSimulator.Request(1, VmEventAbi.ReasonSoftwareBreakpoint));
        Assert.Equal(1, d.WaitForEvents(TimeSpan.FromSeconds(5), _ => VmiEventResponse.ToggleSinglestep()));
        Assert.Equal(VmEventAbi.FlagVcpuPaused | VmEventAbi.FlagToggleSinglestep, Assert.Single(_xen.Channel.Responses).Flags);

        d.ResetState();

        Assert.DoesNotContain("SetSinglestep 0 False", _xen.Calls); // never turned on there: never undone
        Assert.Contains("SetSinglestep 1 False", _xen.Calls);
        Assert.True(_xen.Calls.IndexOf("SetSinglestep 1 False") < _xen.Calls.IndexOf("DisableMonitorRing"));
    }

    [Fact]
    public void Reset_answers_events_left_in_the_ring_before_tearing_it_down()
    {
        XenDriver d = Connect();
        d.EnableMonitor(EventMonitor.Cpuid);
        SimulatedXenHost.SimulatedChannel channel = _xen.Channel!;
        channel.Put(XenRingSimulator.Request(0, VmEventAbi.ReasonCpuid));
        channel.Put(XenRingSimulator.Request(1, VmEventAbi.ReasonCpuid));

        d.Dispose();

        Assert.False(channel.Open);
        Assert.Equal([0u, 1u], channel.Responses.Select(r => r.VcpuId));
        Assert.All(channel.Responses, r => Assert.Equal(VmEventAbi.FlagVcpuPaused, r.Flags & VmEventAbi.FlagVcpuPaused));
        Assert.Equal(0, _xen.PauseCount);
        Assert.True(_xen.Disposed);
        d.Dispose(); // idempotent
    }

    [Fact]
    public void Reset_runs_every_step_when_one_fails_and_never_leaves_the_domain_paused()
    {
        XenDriver d = Connect();
        d.Pause();
        d.Pause();
        d.EnableMonitor(EventMonitor.Cpuid);
        d.CreateView(MemoryAccess.RWX);
        _xen.Fail = c => c.StartsWith("SetMonitor", StringComparison.Ordinal) ? new VmiDriverException("monitor op failed", 5) : null;

        var ex = Assert.Throws<VmiDriverException>(d.ResetState);

        Assert.Contains("monitor op failed", ex.Message, StringComparison.Ordinal);
        Assert.Empty(_xen.ViewsInXen);
        Assert.Null(_xen.Channel);
        Assert.Equal(0, _xen.PauseCount);
    }

    [Fact]
    public void A_busy_ring_is_drained_again_until_xen_lets_it_go()
    {
        XenDriver d = Connect();
        d.EnableMonitor(EventMonitor.Cpuid);
        SimulatedXenHost.SimulatedChannel channel = _xen.Channel!;
        channel.BusyTimes = 2;

        d.ResetState();

        Assert.False(channel.Open);
        Assert.Equal(2, channel.Responses.Count); // the requests that arrived meanwhile were answered
        Assert.Equal(3, _xen.Calls.Count(c => c == "DisableMonitorRing"));
        Assert.Equal(0, _xen.PauseCount);
    }

    [Fact]
    public void Waiting_stops_when_cancelled()
    {
        XenDriver d = Connect();
        d.EnableMonitor(EventMonitor.Cpuid);
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));
        var watch = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal(0, d.WaitForEvents(TimeSpan.FromMinutes(1), _ => VmiEventResponse.Continue, cts.Token));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10));
    }

    [Fact]
    public void The_process_exit_hook_restores_the_domain()
    {
        XenDriver d = XenDriver.Connect(_xen, XenDomainSelector.ById(SimulatedXenHost.GuestId), XenConnectOptions.Default, hookProcessExit: true);
        _drivers.Add(d);
        d.Pause();
        d.EnableMonitor(EventMonitor.Cpuid);
        System.Reflection.MethodInfo onExit = typeof(XenDriver).GetMethod("OnProcessExit", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!;

        onExit.Invoke(d, [null, EventArgs.Empty]);

        Assert.Empty(_xen.Monitors);
        Assert.Null(_xen.Channel);
        Assert.Equal(0, _xen.PauseCount);
        Assert.True(_xen.Disposed);
    }

    [Fact]
    public void Pauses_nest_and_resume_without_pause_is_refused()
    {
        XenDriver d = Connect();
        Assert.Throws<InvalidOperationException>(d.Resume);
        d.Pause();
        d.Pause();
        d.Resume();
        Assert.Equal(1, _xen.PauseCount);
        d.Dispose();
        Assert.Equal(0, _xen.PauseCount);
    }

    [Fact]
    public void Frames_are_allocated_above_the_guest_and_only_ours_can_be_freed()
    {
        XenDriver d = Connect();
        Gfn a = d.AllocateGfn();
        Gfn b = d.AllocateGfn();
        Assert.Equal(new Gfn(0x80000), a);
        Assert.Equal(new Gfn(0x80001), b);
        Assert.Throws<ArgumentException>(() => d.FreeGfn(new Gfn(0x100)));
        _xen.Memory[b.Value] = new byte[4096];
        Assert.True(d.TryMapPage(b, out MappedPage? above)); // above the guest's memory, but ours
        above.Dispose();
        Assert.False(d.TryMapPage(new Gfn(0x90000), out _));
        d.SetMemoryAccess(b, View.Default, MemoryAccess.RW);
        Assert.Throws<ArgumentOutOfRangeException>(() => d.SetMemoryAccess(new Gfn(0x7FFFF), 4, View.Default, MemoryAccess.RW));
        d.SetMemoryAccess(new Gfn(0x7FFFF), 3, View.Default, MemoryAccess.RW);
        d.FreeGfn(a);
        d.ResetState();
        Assert.Empty(_xen.Populated);
    }

    [Fact]
    public void Writes_reach_guest_memory_and_may_not_cross_a_frame()
    {
        _xen.Memory[0x10] = new byte[4096];
        XenDriver d = Connect();
        d.WritePage(new Gfn(0x10), 4094, [1, 2]);
        Assert.Equal([1, 2], _xen.Memory[0x10][4094..]);
        Assert.Throws<ArgumentOutOfRangeException>(() => d.WritePage(new Gfn(0x10), 4095, [1, 2]));
    }

    [Fact]
    public void Interrupts_are_injected_into_existing_vcpus_only()
    {
        XenDriver d = Connect();
        d.InjectInterrupt(1, Interrupt.PageFault(new Va(0x7000), 2));
        Assert.Equal(new Interrupt(14, InterruptType.HardwareException, 2, 0, 0x7000), Assert.Single(_xen.Injected).Interrupt);
        Assert.Throws<VcpuNotFoundException>(() => d.InjectInterrupt(5, Interrupt.Breakpoint()));
    }

    [Fact]
    public void Runs_group_consecutive_frames_of_equal_access()
    {
        var frames = new Dictionary<ulong, MemoryAccess> { [5] = MemoryAccess.RWX, [1] = MemoryAccess.RWX, [2] = MemoryAccess.RWX, [3] = MemoryAccess.R, [4] = MemoryAccess.RWX };
        Assert.Equal(
            [(1ul, 2u, MemoryAccess.RWX), (3ul, 1u, MemoryAccess.R), (4ul, 2u, MemoryAccess.RWX)],
            XenDriver.Runs(frames).ToArray());
    }
}
