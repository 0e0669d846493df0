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
}
