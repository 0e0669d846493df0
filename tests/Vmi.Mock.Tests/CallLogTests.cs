using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Mock.Tests;

/// <summary>The call log and fault injection that tests of higher layers rely on.</summary>
public sealed class CallLogTests
{
    [Fact]
    public void Capability_calls_are_logged_in_order_with_their_arguments()
    {
        var guest = new MockGuest(2, new Gfn(0xFF));
        guest.Pause();
        guest.SetMemoryAccess(new Gfn(3), View.Default, MemoryAccess.R);
        guest.GetRegisters(1);
        guest.Resume();
        guest.EnableMonitor(EventMonitor.Breakpoint);

        Assert.Equal(
            [MockOperation.Pause, MockOperation.SetMemoryAccess, MockOperation.GetRegisters, MockOperation.Resume, MockOperation.EnableMonitor],
            guest.Calls.Select(c => c.Operation));
        MockCall set = guest.Calls[1];
        Assert.Equal(new Gfn(3), set.Argument<Gfn>(0));
        Assert.Equal(MemoryAccess.R, set.Argument<MemoryAccess>(2));
        Assert.Equal("SetMemoryAccess(0x3, 0, R, None)", set.ToString());
        Assert.Equal(new VcpuId(1), guest.Calls[2].Argument<VcpuId>(0));

        // Helpers for test setup are not capability calls.
        guest.WritePhysical(new Pa(0), [1]);
        guest.GetRegistersUnlogged(0);
        Assert.Equal(5, guest.Calls.Count);

        guest.ClearCalls();
        Assert.Empty(guest.Calls);
        Assert.Equal(0, guest.CallCount(MockOperation.Pause));
    }

    [Fact]
    public void The_log_shows_what_the_page_cache_saves()
    {
        var guest = new MockGuest(1, new Gfn(0xFF));
        guest.WritePhysical(new Pa(0x2000), new byte[64]);
        using var core = new VmiCore(guest);
        for (int i = 0; i < 10; i++)
        {
            core.ReadU64(AccessContext.Direct(new Pa(0x2000 + ((ulong)i * 8))));
        }

        Assert.Equal(1, guest.CallCount(MockOperation.MapPage));
        core.DisableGfnCache();
        core.ReadU64(AccessContext.Direct(new Pa(0x2000)));
        core.ReadU64(AccessContext.Direct(new Pa(0x2000)));
        Assert.Equal(3, guest.CallCount(MockOperation.MapPage));
    }

    [Fact]
    public void FailNext_fails_one_call_changes_nothing_and_then_lets_calls_through()
    {
        var guest = new MockGuest(1, new Gfn(0xFF));
        guest.FailNext(MockOperation.Pause);
        Assert.Equal(1, guest.PendingFaults);
        var ex = Assert.Throws<VmiDriverException>(guest.Pause);
        Assert.Contains("Pause", ex.Message, StringComparison.Ordinal);
        Assert.Equal(0, guest.PauseCount);
        Assert.Equal(0, guest.PendingFaults);
        guest.Pause();
        Assert.Equal(1, guest.PauseCount);

        // The failed call is still in the log: it was made.
        Assert.Equal(2, guest.CallCount(MockOperation.Pause));
    }

    [Fact]
    public void FailNext_takes_an_exception_and_a_condition()
    {
        var guest = new MockGuest(1, new Gfn(0xFF));
        guest.WritePhysical(new Pa(0x1000), new byte[0x3000]);
        var boom = new VmiDriverException("mapping refused", 13);
        guest.FailNext(MockOperation.MapPage, boom, c => c.Argument<Gfn>(0) == new Gfn(2));

        using var core = new VmiCore(guest);
        core.ReadU8(AccessContext.Direct(new Pa(0x1000))); // frame 1 is not affected
        var thrown = Assert.Throws<VmiDriverException>(() => core.ReadBytes(AccessContext.Direct(new Pa(0x1000)), 0x3000));
        Assert.Same(boom, thrown);
        Assert.Equal(13, thrown.ErrorCode);

        // Once only: the same read now works.
        Assert.Equal(0x3000, core.ReadBytes(AccessContext.Direct(new Pa(0x1000)), 0x3000).Length);
    }

    [Theory]
    [InlineData(MockOperation.WritePage)]
    [InlineData(MockOperation.GetMemoryAccess)]
    [InlineData(MockOperation.SetMemoryAccess)]
    [InlineData(MockOperation.GetRegisters)]
    [InlineData(MockOperation.SetRegisters)]
    [InlineData(MockOperation.CreateView)]
    [InlineData(MockOperation.SwitchToView)]
    [InlineData(MockOperation.EnableMonitor)]
    [InlineData(MockOperation.DisableMonitor)]
    [InlineData(MockOperation.WaitForEvents)]
    [InlineData(MockOperation.Resume)]
    [InlineData(MockOperation.AllocateGfn)]
    [InlineData(MockOperation.FreeGfn)]
    [InlineData(MockOperation.InjectInterrupt)]
    [InlineData(MockOperation.ResetState)]
    public void Every_operation_can_be_made_to_fail(MockOperation operation)
    {
        var guest = new MockGuest(1, new Gfn(0xFF));
        guest.WritePhysical(new Pa(0x1000), [1]);
        guest.Pause();
        var marker = new InvalidOperationException("injected");
        guest.FailNext(operation, marker);
        Action call = operation switch
        {
            MockOperation.WritePage => () => guest.WritePage(new Gfn(1), 0, [2]),
            MockOperation.GetMemoryAccess => () => guest.GetMemoryAccess(new Gfn(1), View.Default),
            MockOperation.SetMemoryAccess => () => guest.SetMemoryAccess(new Gfn(1), View.Default, MemoryAccess.R),
            MockOperation.GetRegisters => () => guest.GetRegisters(0),
            MockOperation.SetRegisters => () => guest.SetRegisters(0, new Registers { Rax = 5 }),
            MockOperation.CreateView => () => guest.CreateView(MemoryAccess.RWX),
            MockOperation.SwitchToView => () => guest.SwitchToView(View.Default),
            MockOperation.EnableMonitor => () => guest.EnableMonitor(EventMonitor.Cpuid),
            MockOperation.DisableMonitor => () => guest.DisableMonitor(EventMonitor.Cpuid),
            MockOperation.WaitForEvents => () => guest.WaitForEvents(TimeSpan.Zero, _ => VmiEventResponse.Continue),
            MockOperation.Resume => guest.Resume,
            MockOperation.AllocateGfn => () => guest.AllocateGfn(),
            MockOperation.FreeGfn => () => guest.FreeGfn(new Gfn(1)),
            MockOperation.InjectInterrupt => () => guest.InjectInterrupt(0, Interrupt.Breakpoint()),
            MockOperation.ResetState => guest.ResetState,
            _ => throw new ArgumentOutOfRangeException(nameof(operation)),
        };

        Assert.Same(marker, Assert.Throws<InvalidOperationException>(call));

        // Nothing changed.
        Assert.Equal(1, guest.PauseCount);
        Assert.Empty(guest.Views);
        Assert.Empty(guest.EnabledMonitors);
        Assert.Empty(guest.AllocatedGfns);
        Assert.True(guest.Memory.IsPopulated(new Gfn(1)));
        Assert.Equal(0UL, guest.GetRegistersUnlogged(0).Rax);
        Assert.Equal(MemoryAccess.RWX, guest.GetMemoryAccess(new Gfn(1), View.Default));
        Assert.Empty(guest.GetInjectedInterrupts(0));

        // The second attempt succeeds.
        call();
    }

    [Fact]
    public void The_log_keeps_the_most_recent_calls()
    {
        var guest = new MockGuest(1, new Gfn(0xFF));
        for (int i = 0; i < MockGuest.CallLogCapacity + 10; i++)
        {
            guest.TryMapPage(new Gfn((ulong)(i & 0xFF)), out _);
        }

        Assert.Equal(MockGuest.CallLogCapacity, guest.Calls.Count);
        Assert.Equal(MockGuest.CallLogCapacity + 10, guest.CallCount(MockOperation.MapPage));
        Assert.Equal(new Gfn(10), guest.Calls[0].Argument<Gfn>(0));
    }
}
