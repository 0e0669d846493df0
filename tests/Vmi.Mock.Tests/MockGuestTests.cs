using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Mock.Tests;

/// <summary>Memory, registers, protection, views and VM control of <see cref="MockGuest"/>.</summary>
public sealed class MockGuestTests
{
    private static MockGuest Guest(int vcpus = 2) => new(vcpus, new Gfn(0xFFFF));

    // ------------------------------------------------------------------ memory

    [Fact]
    public void Frames_never_populated_are_absent_and_populated_ones_are_live()
    {
        MockGuest guest = Guest();
        Assert.False(guest.TryMapPage(new Gfn(5), out _));
        Assert.False(guest.TryMapPage(new Gfn(0x1_0000), out _)); // beyond MaxGfn

        guest.WritePhysical(new Pa(0x5010), [1, 2, 3]);
        Assert.True(guest.TryMapPage(new Gfn(5), out MappedPage? page));
        using (page)
        {
            Assert.Equal(new Gfn(5), page.Gfn);
            Assert.Equal(4096, page.Length);
            Assert.Equal([1, 2, 3], page.Span.Slice(0x10, 3).ToArray());

            // The page is the live frame: later writes show through.
            guest.WritePage(new Gfn(5), 0x10, [9]);
            Assert.Equal(9, page.Span[0x10]);
        }
    }

    [Fact]
    public void WritePage_refuses_absent_frames_and_writes_that_leave_the_frame()
    {
        MockGuest guest = Guest();
        Assert.Throws<GfnNotPresentException>(() => guest.WritePage(new Gfn(7), 0, [1]));
        guest.Memory.Populate(new Gfn(7));
        Assert.Throws<ArgumentOutOfRangeException>(() => guest.WritePage(new Gfn(7), 4095, [1, 2]));
        Assert.Throws<ArgumentOutOfRangeException>(() => guest.WritePage(new Gfn(7), -1, [1]));
        guest.WritePage(new Gfn(7), 4095, [0x42]);
        byte[] b = new byte[1];
        guest.ReadPhysical(new Pa(0x7FFF), b);
        Assert.Equal(0x42, b[0]);
    }

    [Fact]
    public void VmiCore_reads_and_writes_physical_memory_and_its_cache_sees_later_writes()
    {
        MockGuest guest = Guest();
        guest.Memory.Populate(new Gfn(0x10), 2);
        using var core = new VmiCore(guest);
        core.WriteU64(AccessContext.Direct(new Pa(0x10FFC)), 0x1122_3344_5566_7788); // across two frames
        Assert.Equal(0x1122_3344_5566_7788UL, core.ReadU64(AccessContext.Direct(new Pa(0x10FFC))));
        guest.WritePhysical(new Pa(0x10FFC), [0xAA]);
        Assert.Equal(0xAA, core.ReadU8(AccessContext.Direct(new Pa(0x10FFC))));
        Assert.Throws<GfnNotPresentException>(() => core.ReadU8(AccessContext.Direct(new Pa(0x20000))));
        Assert.Throws<GfnNotPresentException>(() => core.WriteU8(AccessContext.Direct(new Pa(0x20000)), 1));
    }

    [Fact]
    public void Sparse_memory_tracks_the_highest_frame_and_range_errors()
    {
        var memory = new SparseMemory(new Gfn(0xFF));
        Assert.Null(memory.HighestPopulated);
        memory.Populate(new Gfn(3));
        memory.Populate(new Gfn(9));
        Assert.Equal(new Gfn(9), memory.HighestPopulated);
        memory.Free(new Gfn(9));
        Assert.Equal(new Gfn(3), memory.HighestPopulated);
        Assert.Throws<GfnNotPresentException>(() => memory.Free(new Gfn(9)));
        Assert.Throws<ArgumentOutOfRangeException>(() => memory.Populate(new Gfn(0xFF), 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => memory.Write(new Pa(0xFFFFF), [1, 2]));
        Assert.Throws<ArgumentOutOfRangeException>(() => new SparseMemory(new Gfn(1UL << 40)));
        Assert.False(memory.TryRead(new Pa(0x3FFF), new byte[2], out Gfn missing));
        Assert.Equal(new Gfn(4), missing);
        Assert.Equal([new Gfn(3)], memory.PopulatedFrames);
    }

    // ------------------------------------------------------------------ registers

    [Fact]
    public void Registers_are_per_vcpu_and_a_change_is_a_copy()
    {
        MockGuest guest = Guest();
        Registers r = guest.GetRegisters(1) with { Rax = 0x1234 };
        Assert.Equal(0UL, guest.GetRegisters(1).Rax); // the change made a new record; the guest's is untouched
        guest.SetRegisters(1, r);
        Assert.Equal(0x1234UL, guest.GetRegisters(1).Rax);
        Assert.Equal(0UL, guest.GetRegisters(0).Rax);
        Assert.Equal(PagingMode.Disabled, guest.GetRegisters(0).PagingMode);

        var ex = Assert.Throws<VcpuNotFoundException>(() => guest.GetRegisters(2));
        Assert.Contains("2 vCPU", ex.Message, StringComparison.Ordinal);
        Assert.Throws<VcpuNotFoundException>(() => guest.SetRegisters(7, r));
        Assert.Throws<ArgumentNullException>(() => guest.SetRegisters(0, null!));
    }

    [Fact]
    public void Msrs_outside_the_register_set_live_in_a_side_table()
    {
        MockGuest guest = Guest();
        Assert.False(guest.TriggerMsrWrite(0, 0x1234, 77));
        Assert.Equal(77UL, guest.GetMsr(0, 0x1234));
        Assert.False(guest.TriggerMsrWrite(0, 0xC000_0082, 0xFFFF_8000_0000_1000));
        Assert.Equal(0xFFFF_8000_0000_1000, guest.GetRegisters(0).MsrLstar);
    }

    // ------------------------------------------------------------------ protection and views

    [Fact]
    public void Access_defaults_to_RWX_and_is_set_per_frame_and_view()
    {
        MockGuest guest = Guest();
        Assert.Equal(MemoryAccess.RWX, guest.GetMemoryAccess(new Gfn(3), View.Default));
        guest.SetMemoryAccess(new Gfn(3), View.Default, MemoryAccess.RX);
        Assert.Equal(MemoryAccess.RX, guest.GetMemoryAccess(new Gfn(3), View.Default));
        Assert.Equal(MemoryAccess.RWX, guest.GetMemoryAccess(new Gfn(4), View.Default));

        View v = guest.CreateView(MemoryAccess.R);
        Assert.Equal(MemoryAccess.R, guest.GetMemoryAccess(new Gfn(3), v));
        guest.SetMemoryAccess(new Gfn(10), 5, v, MemoryAccess.None);
        Assert.Equal(MemoryAccess.None, guest.GetMemoryAccess(new Gfn(14), v));
        Assert.Equal(MemoryAccess.R, guest.GetMemoryAccess(new Gfn(15), v));
        Assert.Equal(1, guest.CallCount(MockOperation.SetMemoryAccess) - 1); // the range was one call

        Assert.Throws<ViewNotFoundException>(() => guest.GetMemoryAccess(new Gfn(3), new View(7)));
        Assert.Throws<ArgumentOutOfRangeException>(() => guest.SetMemoryAccess(new Gfn(0x1_0000), View.Default, MemoryAccess.R));
        Assert.Throws<ArgumentOutOfRangeException>(() => guest.SetMemoryAccess(new Gfn(0xFFFF), 2, View.Default, MemoryAccess.R));
        Assert.Throws<ArgumentOutOfRangeException>(() => guest.SetMemoryAccess(new Gfn(1), View.Default, (MemoryAccess)8));
    }

    [Fact]
    public void Views_are_created_switched_and_destroyed_with_clear_rules()
    {
        MockGuest guest = Guest();
        Assert.Equal(View.Default, guest.DefaultView);
        Assert.Empty(guest.Views);
        View a = guest.CreateView(MemoryAccess.RWX);
        View b = guest.CreateView(MemoryAccess.RX);
        Assert.Equal([new View(1), new View(2)], guest.Views);

        guest.SwitchToView(b);
        Assert.Equal(b, guest.GetVcpuView(0));
        Assert.Equal(b, guest.GetVcpuView(1));
        Assert.Throws<VmiException>(() => guest.DestroyView(b)); // in use
        Assert.Throws<VmiException>(() => guest.DestroyView(View.Default));
        Assert.Throws<ViewNotFoundException>(() => guest.SwitchToView(new View(9)));
        guest.SwitchToView(View.Default);
        guest.DestroyView(b);
        Assert.Equal([a], guest.Views);
        Assert.Throws<ViewNotFoundException>(() => guest.DestroyView(b));

        // Views 1..9 can exist at once; the tenth is refused.
        for (int i = 0; i < MockGuest.MaxViews - 2; i++)
        {
            guest.CreateView(MemoryAccess.RWX);
        }

        Assert.Equal(MockGuest.MaxViews - 1, guest.Views.Count);
        Assert.Throws<VmiException>(() => guest.CreateView(MemoryAccess.RWX));
    }

    [Fact]
    public void Gfn_remaps_are_per_view_and_ReadPhysical_follows_them()
    {
        MockGuest guest = Guest();
        guest.WritePhysical(new Pa(0x3000), "original"u8);
        guest.WritePhysical(new Pa(0x8000), "shadowed"u8);
        View v = guest.CreateView(MemoryAccess.RWX);
        guest.ChangeViewGfn(v, new Gfn(3), new Gfn(8));

        byte[] seen = new byte[8];
        guest.ReadPhysical(v, new Pa(0x3000), seen);
        Assert.Equal("shadowed"u8.ToArray(), seen);
        guest.ReadPhysical(View.Default, new Pa(0x3000), seen);
        Assert.Equal("original"u8.ToArray(), seen);
        Assert.Equal(new Gfn(8), guest.GetViewRemaps(v)[new Gfn(3)]);

        // The capabilities read the default view, as a foreign mapping does.
        var core = new VmiCore(guest); // not disposed: that would dispose the guest
        Assert.Equal("original", core.ReadString(AccessContext.Direct(new Pa(0x3000)), 8));

        guest.ResetViewGfn(v, new Gfn(3));
        guest.ReadPhysical(v, new Pa(0x3000), seen);
        Assert.Equal("original"u8.ToArray(), seen);

        Assert.Throws<VmiException>(() => guest.ChangeViewGfn(View.Default, new Gfn(3), new Gfn(8)));
        Assert.Throws<GfnNotPresentException>(() => guest.ChangeViewGfn(v, new Gfn(3), new Gfn(9)));
        Assert.Throws<ViewNotFoundException>(() => guest.ChangeViewGfn(new View(5), new Gfn(3), new Gfn(8)));
    }

    // ------------------------------------------------------------------ VM control

    [Fact]
    public void Pauses_nest_and_an_extra_resume_is_an_error()
    {
        MockGuest guest = Guest();
        guest.Pause();
        guest.Pause();
        Assert.Equal(2, guest.PauseCount);
        guest.Resume();
        Assert.True(guest.IsPaused);
        guest.Resume();
        Assert.False(guest.IsPaused);
        var ex = Assert.Throws<VmiException>(guest.Resume);
        Assert.Contains("not paused", ex.Message, StringComparison.Ordinal);
        Assert.Equal(0, guest.PauseCount);

        using var core = new VmiCore(guest);
        using (core.PauseGuard())
        {
            Assert.Equal(1, guest.PauseCount);
        }

        Assert.Equal(0, guest.PauseCount);
    }

    [Fact]
    public void Gfn_allocation_goes_above_the_highest_frame_or_where_asked()
    {
        MockGuest guest = Guest();
        guest.WritePhysical(new Pa(0x42000), [1]);
        Gfn first = guest.AllocateGfn();
        Assert.Equal(new Gfn(0x43), first);
        Assert.True(guest.TryMapPage(first, out MappedPage? page));
        Assert.All(page!.Span.ToArray(), b => Assert.Equal(0, b));
        Assert.Equal(new Gfn(0x44), guest.AllocateGfn());

        guest.AllocateGfn(new Gfn(0x10));
        Assert.True(guest.Memory.IsPopulated(new Gfn(0x10)));
        Assert.Throws<VmiException>(() => guest.AllocateGfn(new Gfn(0x10)));
        Assert.Throws<ArgumentOutOfRangeException>(() => guest.AllocateGfn(new Gfn(0x1_0000)));
        Assert.Equal([new Gfn(0x10), new Gfn(0x43), new Gfn(0x44)], guest.AllocatedGfns);

        guest.FreeGfn(new Gfn(0x44));
        Assert.False(guest.TryMapPage(new Gfn(0x44), out _));
        Assert.Throws<GfnNotPresentException>(() => guest.FreeGfn(new Gfn(0x44)));

        var full = new MockGuest(1, new Gfn(3));
        full.WritePhysical(new Pa(0x3000), [1]);
        Assert.Throws<VmiException>(() => full.AllocateGfn());
    }

    [Fact]
    public void Injected_interrupts_are_recorded_per_vcpu()
    {
        MockGuest guest = Guest();
        guest.InjectInterrupt(1, Interrupt.PageFault(new Va(0x1000), 2));
        guest.InjectInterrupt(1, Interrupt.Breakpoint());
        Assert.Empty(guest.GetInjectedInterrupts(0));
        Assert.Equal([Interrupt.PageFault(new Va(0x1000), 2), Interrupt.Breakpoint()], guest.GetInjectedInterrupts(1));
        Assert.Throws<VcpuNotFoundException>(() => guest.InjectInterrupt(2, Interrupt.Breakpoint()));
    }

    [Fact]
    public async Task ResetState_undoes_everything_the_capabilities_changed()
    {
        MockGuest guest = Guest();
        guest.WritePhysical(new Pa(0x1000), [1]);
        guest.EnableMonitor(EventMonitor.Breakpoint);
        guest.EnableMonitor(EventMonitor.ControlRegisterWrite(ControlRegister.Cr3));
        guest.SetMemoryAccess(new Gfn(1), View.Default, MemoryAccess.R);
        View v = guest.CreateView(MemoryAccess.None);
        Gfn extra = guest.AllocateGfn();
        guest.ChangeViewGfn(v, new Gfn(1), extra);
        guest.SwitchToView(v);
        guest.Pause();
        guest.Pause();
        Task<VmiEventResponse> pending = guest.Raise(Event(0, new GuestRequestReason()));

        guest.ResetState();

        Assert.Empty(guest.EnabledMonitors);
        Assert.Empty(guest.Views);
        Assert.Equal(View.Default, guest.GetVcpuView(0));
        Assert.Equal(MemoryAccess.RWX, guest.GetMemoryAccess(new Gfn(1), View.Default));
        Assert.False(guest.Memory.IsPopulated(extra));
        Assert.Empty(guest.AllocatedGfns);
        Assert.Equal(0, guest.PauseCount);
        Assert.True(pending.IsCompleted);
        Assert.Same(VmiEventResponse.Continue, await pending);
        Assert.Equal(MockAnswerSource.ResetState, Assert.Single(guest.Responses).Source);
        Assert.Equal(0, guest.EventsPending);
        Assert.False(guest.IsVcpuBlocked(0));
        Assert.Equal(1, guest.CallCount(MockOperation.ResetState));

        // The guest works normally afterwards.
        Assert.Equal(new byte[] { 1 }, Read(guest, 0x1000, 1));
    }

    [Fact]
    public void A_disposed_guest_refuses_calls_but_stays_readable()
    {
        MockGuest guest = Guest();
        guest.Pause();
        Task<VmiEventResponse> pending = guest.Raise(Event(1, new GuestRequestReason()));
        guest.Dispose();
        guest.Dispose();
        Assert.True(guest.IsDisposed);
        Assert.True(pending.IsCompleted);
        Assert.Throws<ObjectDisposedException>(() => guest.GetRegisters(0));
        Assert.Throws<ObjectDisposedException>(() => guest.TryMapPage(new Gfn(0), out _));
        Assert.Equal(1, guest.PauseCount);
        Assert.Equal(1, guest.CallCount(MockOperation.Dispose));
    }

    [Fact]
    public void Info_describes_the_guest()
    {
        using var guest = new MockGuest(3, new Gfn(0x1234));
        Assert.Equal(new VmiInfo(4096, 12, new Gfn(0x1234), 3), guest.Info);
        Assert.Equal("Mock", guest.Name);
        Assert.Throws<ArgumentOutOfRangeException>(() => new MockGuest(0));
        using var core = new VmiCore(guest);
        Assert.Equal(Enum.GetValues<VmiCapability>(), core.Capabilities);
    }

    internal static VmiEvent Event(ushort vcpu, EventReason reason) =>
        new(vcpu, View.Default, VmiEventFlags.VcpuPaused, new Registers(), reason);

    private static byte[] Read(MockGuest guest, ulong pa, int length)
    {
        byte[] b = new byte[length];
        guest.ReadPhysical(new Pa(pa), b);
        return b;
    }
}
