using Vmi.Core;
using Vmi.Core.Arch.Amd64;
using Vmi.Mock;

namespace Vmi.Mock.Tests;

public sealed class BreakpointTests
{
    private static readonly Va Target = new(DemoGuestLayout.BreakpointVa);

    [Fact]
    public void A_hit_arrives_as_a_breakpoint_event_without_the_monitor_and_counts()
    {
        using MockGuest g = DemoGuest.Create();
        VmiBreakpoint bp = g.SetBreakpoint(new BreakpointRequest(Target));
        Assert.False(g.ExecuteAt(new VcpuId(0), Target + 1));
        Assert.True(g.ExecuteAt(new VcpuId(2), Target));
        VmiEvent? seen = null;
        Assert.Equal(1, g.WaitForEvents(TimeSpan.FromSeconds(10), 10, e =>
        {
            seen = e;
            return VmiEventResponse.Continue;
        }));
        var reason = Assert.IsType<SoftwareBreakpointReason>(seen!.Reason);
        Assert.Equal(Target, reason.Va);
        Assert.Equal(new VcpuId(2), seen.Vcpu);
        Assert.Equal(Target.Value, seen.Registers.Rip);
        Assert.Equal(1, Assert.Single(g.Breakpoints).Hits);
        Assert.True(g.RemoveBreakpoint(bp.Id));
        Assert.False(g.RemoveBreakpoint(bp.Id));
        Assert.False(g.ExecuteAt(new VcpuId(2), Target));
    }

    [Fact]
    public void Cr3_and_vcpu_filters_pass_over_other_hits()
    {
        using MockGuest g = DemoGuest.Create();
        Pa root = g.GetRegisters(new VcpuId(0)).TranslationRoot;
        g.SetBreakpoint(new BreakpointRequest(Target, Cr3: new Pa(0x123000)));
        g.SetBreakpoint(new BreakpointRequest(Target, Vcpu: new VcpuId(3)));
        Assert.False(g.ExecuteAt(new VcpuId(0), Target)); // wrong address space for the first, wrong vCPU for the second
        g.SetBreakpoint(new BreakpointRequest(Target, Cr3: root, Vcpu: new VcpuId(0)));
        Assert.True(g.ExecuteAt(new VcpuId(0), Target));
        Assert.Equal([0L, 0L, 1L], g.Breakpoints.Select(b => b.Hits));
        Assert.Throws<VcpuNotFoundException>(() => g.SetBreakpoint(new BreakpointRequest(Target, Vcpu: new VcpuId(9))));
    }

    [Fact]
    public void Reset_removes_every_breakpoint()
    {
        using MockGuest g = DemoGuest.Create();
        g.SetBreakpoint(new BreakpointRequest(Target));
        g.SetBreakpoint(new BreakpointRequest(Target + 0x10, BreakpointKind.Hardware));
        g.ResetState();
        Assert.Empty(g.Breakpoints);
    }

    [Fact]
    public void A_watchpoint_fires_on_a_matching_access_to_any_byte_it_covers()
    {
        using MockGuest g = DemoGuest.Create();
        var watched = new Va(DemoGuestLayout.WatchedWriteVa);
        VmiBreakpoint wp = g.SetBreakpoint(new BreakpointRequest(watched) { Access = BreakpointAccess.Write, Length = 8 });
        Assert.Equal(BreakpointKind.Hardware, wp.Kind);
        Assert.Equal((BreakpointAccess.Write, 8), (wp.Access, wp.Length));
        Assert.False(g.ExecuteAt(new VcpuId(1), watched)); // executing is not writing
        Assert.False(g.AccessAt(new VcpuId(1), watched, 8, MemoryAccess.R)); // a read does not fire a write watchpoint
        Assert.False(g.AccessAt(new VcpuId(1), watched + 8, 4, MemoryAccess.W)); // just past it
        Assert.False(g.AccessAt(new VcpuId(1), watched - 4, 4, MemoryAccess.W)); // just before it
        Assert.True(g.AccessAt(new VcpuId(1), watched - 2, 4, MemoryAccess.W)); // overlaps its first two bytes
        VmiEvent? seen = null;
        Assert.Equal(1, g.WaitForEvents(TimeSpan.FromSeconds(10), 10, e =>
        {
            seen = e;
            return VmiEventResponse.Continue;
        }));
        Assert.Equal(new WatchpointReason(watched, BreakpointAccess.Write, 8), seen!.Reason);
        Assert.Equal(new VcpuId(1), seen.Vcpu);
        Assert.Equal(1, Assert.Single(g.Breakpoints).Hits);

        g.SetBreakpoint(new BreakpointRequest(watched + 0x100) { Access = BreakpointAccess.ReadWrite, Length = 2 });
        Assert.True(g.AccessAt(new VcpuId(0), watched + 0x101, 1, MemoryAccess.R));
        Assert.Equal(1, g.WaitForEvents(TimeSpan.FromSeconds(10), 10, _ => VmiEventResponse.Continue));
        Assert.True(g.AccessAt(new VcpuId(0), watched + 0x100, 2, MemoryAccess.W));
        Assert.Equal(1, g.WaitForEvents(TimeSpan.FromSeconds(10), 10, _ => VmiEventResponse.Continue));
        Assert.Equal([1L, 2L], g.Breakpoints.Select(b => b.Hits));
        g.ResetState();
        Assert.Empty(g.Breakpoints);
        Assert.False(g.AccessAt(new VcpuId(1), watched, 8, MemoryAccess.W));
    }

    [Theory]
    [InlineData(BreakpointAccess.Write, 3, 0x0, "1, 2, 4 or 8")]
    [InlineData(BreakpointAccess.ReadWrite, 8, 0x4, "multiple of 8")]
    [InlineData(BreakpointAccess.Execute, 4, 0x0, "one instruction")]
    public void A_watchpoint_that_no_hypervisor_can_set_is_refused_with_the_fix(BreakpointAccess access, int length, ulong offset, string message)
    {
        using MockGuest g = DemoGuest.Create();
        var e = Assert.Throws<ArgumentException>(() => g.SetBreakpoint(new BreakpointRequest(new Va(DemoGuestLayout.WatchedWriteVa + offset)) { Access = access, Length = length }));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
        Assert.Empty(g.Breakpoints);
    }
}
