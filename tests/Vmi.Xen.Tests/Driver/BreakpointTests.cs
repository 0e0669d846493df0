using System.Buffers.Binary;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;
using Vmi.Xen.Events;
using Vmi.Xen.Native;
using Vmi.Xen.Tests.Events;

namespace Vmi.Xen.Tests.Driver;

/// <summary>
/// Breakpoints on Xen against the simulated host: an INT3 in guest memory found through real 4-level page tables, hits
/// from the ring answered by emulating the original instruction (the only way on AMD, which has no single-step), reads
/// that show the original bytes, and every INT3 taken out on every exit path.
/// </summary>
public sealed class BreakpointTests : IDisposable
{
    private const ulong Cr3 = 0x1aa000;           // vCPU 0's CR3 in the simulated HVM context
    private const ulong Code = 0xffffffff81000100; // a kernel address, mapped below to
    private const ulong CodePa = 0x5100;           // this physical address
    private static readonly byte[] Original = [0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0xc3]; // push rbp; mov rbp,rsp; sub rsp,16; nops; ret

    private readonly SimulatedXenHost _xen = new();
    private readonly List<XenDriver> _drivers = [];

    public BreakpointTests()
    {
        // 4-level page tables at CR3 mapping the page of Code to physical 0x5000.
        ulong[] index = [(Code >> 39) & 511, (Code >> 30) & 511, (Code >> 21) & 511, (Code >> 12) & 511];
        ulong[] tables = [Cr3, 0x2000, 0x3000, 0x4000];
        for (int level = 0; level < 4; level++)
        {
            ulong next = level < 3 ? tables[level + 1] : CodePa & ~0xFFFUL;
            BinaryPrimitives.WriteUInt64LittleEndian(Page(tables[level]).AsSpan((int)(index[level] * 8)), next | 0x3);
        }

        Original.CopyTo(Page(CodePa).AsSpan((int)(CodePa & 0xFFF)));
    }

    public void Dispose()
    {
        foreach (XenDriver d in _drivers)
        {
            d.Dispose();
        }
    }

    private byte[] Page(ulong pa)
    {
        if (!_xen.Memory.TryGetValue(pa >> 12, out byte[]? page))
        {
            page = new byte[4096];
            _xen.Memory[pa >> 12] = page;
        }

        return page;
    }

    private byte GuestByte(ulong pa) => Page(pa)[(int)(pa & 0xFFF)];

    private XenDriver Connect(bool readOnly = false)
    {
        XenDriver d = XenDriver.Connect(_xen, XenDomainSelector.ById(SimulatedXenHost.GuestId), new XenConnectOptions { ReadOnly = readOnly }, hookProcessExit: false);
        _drivers.Add(d);
        return d;
    }

    /// <summary>What Xen puts in the ring when a vCPU runs into an INT3: RIP on it, long mode, the gfn of RIP.</summary>
    private static VmEventSt Hit(uint vcpu, ulong rip, ulong pa, ulong cr3 = Cr3)
    {
        VmEventSt r = XenRingSimulator.Request(vcpu, VmEventAbi.ReasonSoftwareBreakpoint);
        r.Data.Regs.X86.Rip = rip;
        r.Data.Regs.X86.Cr3 = cr3;
        r.Data.Regs.X86.Cr0 = 0x80050033;
        r.Data.Regs.X86.Cr4 = 0x350ef8;
        r.Data.Regs.X86.MsrEfer = 0xd01;
        r.U.SoftwareBreakpoint.Gfn = pa >> 12;
        r.U.SoftwareBreakpoint.InsnLength = 1;
        return r;
    }

    private static unsafe byte[] EmulatedBytes(VmEventSt response) => new ReadOnlySpan<byte>(response.Data.Emul.Insn.Data, VmEventEmulInsnData.Size).ToArray();

    [Fact]
    public void A_breakpoint_writes_an_int3_found_through_the_page_tables_and_reads_still_show_the_original_byte()
    {
        XenDriver d = Connect();

        VmiBreakpoint bp = d.SetBreakpoint(new BreakpointRequest(new Va(Code)));

        Assert.Equal(0xCC, GuestByte(CodePa));
        Assert.Equal(new Pa(CodePa), bp.Physical);
        Assert.Contains(EventMonitor.Breakpoint, _xen.Monitors);
        Assert.True(d.TryMapPage(new Gfn(CodePa >> 12), out MappedPage? page));
        using (page)
        {
            Assert.Equal(Original, page.Span.Slice((int)(CodePa & 0xFFF), 16).ToArray());
        }

        Assert.Equal([bp], d.Breakpoints);
    }

    [Theory]
    [InlineData(XenCpuVendor.Intel)]
    [InlineData(XenCpuVendor.Amd)]
    public void Continuing_a_hit_emulates_the_original_instruction_with_the_int3_left_in_place(XenCpuVendor vendor)
    {
        _xen.CpuVendor = vendor;
        XenDriver d = Connect();
        VmiBreakpoint bp = d.SetBreakpoint(new BreakpointRequest(new Va(Code)));
        _xen.Channel!.Put(Hit(0, Code, CodePa));

        var seen = new List<VmiEvent>();
        Assert.Equal(1, d.WaitForEvents(TimeSpan.FromSeconds(5), e => { seen.Add(e); return VmiEventResponse.Continue; }));

        SoftwareBreakpointReason reason = Assert.IsType<SoftwareBreakpointReason>(seen[0].Reason);
        Assert.Equal(new Va(Code), reason.Va);
        VmEventSt rsp = Assert.Single(_xen.Channel.Responses);
        Assert.Equal(VmEventAbi.FlagVcpuPaused | VmEventAbi.FlagEmulate | VmEventAbi.FlagSetEmulInsnData, rsp.Flags);
        Assert.Equal(Original, EmulatedBytes(rsp)); // push rbp, not the INT3
        Assert.Empty(_xen.WaitingVcpus);
        Assert.Equal(0xCC, GuestByte(CodePa)); // still armed for the next vCPU
        Assert.Equal(1, Assert.Single(d.Breakpoints).Hits);
        Assert.DoesNotContain(_xen.Calls, c => c.StartsWith("SetSinglestep", StringComparison.Ordinal));
        Assert.Equal(bp.Id, d.Breakpoints[0].Id);
    }

    [Fact]
    public void An_instruction_across_a_page_boundary_is_read_through_both_pages()
    {
        // The last 3 bytes of the code page, then the next virtual page mapped to physical 0x7000.
        ulong va = (Code & ~0xFFFUL) + 0xFFD;
        ulong pa = (CodePa & ~0xFFFUL) + 0xFFD;
        BinaryPrimitives.WriteUInt64LittleEndian(Page(0x4000).AsSpan((int)((((va + 3) >> 12) & 511) * 8)), 0x7000 | 0x3);
        Page(pa)[0xFFD] = 0x48; Page(pa)[0xFFE] = 0x8b; Page(pa)[0xFFF] = 0x05;
        Page(0x7000)[0] = 0x11; Page(0x7000)[1] = 0x22; Page(0x7000)[2] = 0x33; Page(0x7000)[3] = 0x44; // mov rax, [rip+0x44332211]
        XenDriver d = Connect();
        d.SetBreakpoint(new BreakpointRequest(new Va(va)));
        _xen.Channel!.Put(Hit(0, va, pa));

        Assert.Equal(1, d.WaitForEvents(TimeSpan.FromSeconds(5), _ => VmiEventResponse.Continue));

        Assert.Equal(new byte[] { 0x48, 0x8b, 0x05, 0x11, 0x22, 0x33, 0x44 }, EmulatedBytes(Assert.Single(_xen.Channel.Responses))[..7]);
    }

    [Fact]
    public void A_hit_that_the_filters_leave_out_is_stepped_over_without_an_event()
    {
        XenDriver d = Connect();
        d.SetBreakpoint(new BreakpointRequest(new Va(Code), Cr3: new Pa(Cr3), Vcpu: new VcpuId(1)));
        _xen.Channel!.Put(Hit(0, Code, CodePa));

        Assert.Empty(d.TakeEvents(10));

        VmEventSt rsp = Assert.Single(_xen.Channel.Responses);
        Assert.Equal(Original, EmulatedBytes(rsp));
        Assert.Empty(_xen.WaitingVcpus);
        Assert.Equal(0, Assert.Single(d.Breakpoints).Hits);
    }

    [Fact]
    public void The_guests_own_int3_goes_back_to_the_guest_when_only_breakpoints_turned_the_monitor_on()
    {
        XenDriver d = Connect();
        d.SetBreakpoint(new BreakpointRequest(new Va(Code)));
        Page(0x6000)[0x10] = 0xCC; // the guest's own INT3, elsewhere
        _xen.Channel!.Put(Hit(0, 0xffffffff81001010, 0x6010));

        Assert.Empty(d.TakeEvents(10));

        Assert.Equal(Interrupt.Breakpoint(1), Assert.Single(_xen.Injected).Interrupt);
        Assert.Empty(_xen.WaitingVcpus);
    }

    [Fact]
    public void With_the_breakpoint_monitor_enabled_the_guests_own_int3_is_an_event_and_disabling_it_keeps_the_breakpoints_armed()
    {
        XenDriver d = Connect();
        d.EnableMonitor(EventMonitor.Breakpoint);
        d.SetBreakpoint(new BreakpointRequest(new Va(Code)));
        _xen.Channel!.Put(Hit(0, 0xffffffff81001010, 0x6010));
        Assert.Single(d.TakeEvents(10));

        d.DisableMonitor(EventMonitor.Breakpoint);

        Assert.Contains(EventMonitor.Breakpoint, _xen.Monitors); // Xen's monitor stays on for the breakpoint
        Assert.DoesNotContain(EventMonitor.Breakpoint, d.EnabledMonitors);
        d.RemoveBreakpoint(d.Breakpoints[0].Id);
        Assert.DoesNotContain(EventMonitor.Breakpoint, _xen.Monitors);
    }

    [Fact]
    public void A_hit_of_a_breakpoint_removed_meanwhile_continues_on_the_restored_instruction()
    {
        XenDriver d = Connect();
        VmiBreakpoint bp = d.SetBreakpoint(new BreakpointRequest(new Va(Code)));
        d.EnableMonitor(EventMonitor.Cpuid); // keeps the ring after the last breakpoint goes
        _xen.Channel!.Put(Hit(0, Code, CodePa));

        Assert.True(d.RemoveBreakpoint(bp.Id));
        Assert.Equal(Original[0], GuestByte(CodePa));
        Assert.Empty(d.TakeEvents(10));

        VmEventSt rsp = Assert.Single(_xen.Channel.Responses);
        Assert.Equal(VmEventAbi.FlagVcpuPaused, rsp.Flags); // plain continue: RIP is on push rbp again
        Assert.Empty(_xen.WaitingVcpus);
        Assert.Empty(_xen.Injected);
    }

    [Fact]
    public void A_write_over_an_int3_changes_the_byte_it_restores_and_keeps_it_armed()
    {
        XenDriver d = Connect();
        VmiBreakpoint bp = d.SetBreakpoint(new BreakpointRequest(new Va(Code)));

        d.WritePage(new Gfn(CodePa >> 12), (int)(CodePa & 0xFFF), [0x90, 0x90]);

        Assert.Equal(0xCC, GuestByte(CodePa));
        Assert.Equal(0x90, GuestByte(CodePa + 1));
        d.RemoveBreakpoint(bp.Id);
        Assert.Equal(0x90, GuestByte(CodePa));
    }

    [Fact]
    public void Reset_takes_every_int3_out_turns_the_monitor_off_and_releases_waiting_hits()
    {
        XenDriver d = Connect();
        d.SetBreakpoint(new BreakpointRequest(new Va(Code)));
        d.SetBreakpoint(new BreakpointRequest(new Va(Code + 1)));
        _xen.Channel!.Put(Hit(0, Code, CodePa));
        Assert.Single(d.TakeEvents(10)); // taken, never answered

        d.ResetState();

        Assert.Equal(Original[..2], new[] { GuestByte(CodePa), GuestByte(CodePa + 1) });
        Assert.Empty(_xen.Monitors);
        Assert.Null(_xen.Channel);
        Assert.Empty(_xen.WaitingVcpus);
        Assert.Empty(d.Breakpoints);
        Assert.Empty(_xen.Store);
        Assert.Equal(0, _xen.PauseCount);
    }

    [Fact]
    public void The_next_session_takes_out_the_int3s_of_a_killed_one()
    {
        XenDriver d = Connect();
        d.SetBreakpoint(new BreakpointRequest(new Va(Code)));
        _xen.Channel!.Put(Hit(0, Code, CodePa)); // a vCPU waits on it when the process dies
        Assert.Contains(_xen.Store.Values, v => v.Contains("int3=5100:55", StringComparison.Ordinal));
        _drivers.Remove(d);
        _xen.KillSessions();

        XenDriver next = Connect();

        Assert.Equal(Original[0], GuestByte(CodePa));
        Assert.Contains("removed its INT3 at physical 0x5100", next.Notice, StringComparison.Ordinal);
        Assert.Contains("turned the Breakpoint monitor off", next.Notice, StringComparison.Ordinal);
        Assert.Empty(_xen.WaitingVcpus);
        Assert.Empty(_xen.Monitors);
    }

    [Fact]
    public void Hardware_breakpoints_watchpoints_and_read_only_sessions_are_refused_clearly()
    {
        XenDriver d = Connect();
        var hw = Assert.Throws<VmiNotSupportedException>(() => d.SetBreakpoint(new BreakpointRequest(new Va(Code), BreakpointKind.Hardware)));
        Assert.Contains("software breakpoints (an INT3", hw.Message, StringComparison.Ordinal);

        var watch = Assert.Throws<VmiNotSupportedException>(() => d.SetBreakpoint(new BreakpointRequest(new Va(Code)) { Access = BreakpointAccess.Write, Length = 4 }));
        Assert.Contains("no watchpoints", watch.Message, StringComparison.Ordinal);
        Assert.Equal(Original[0], GuestByte(CodePa));

        XenDriver ro = Connect(readOnly: true);
        var ex = Assert.Throws<VmiDriverException>(() => ro.SetBreakpoint(new BreakpointRequest(new Va(Code))));
        Assert.Contains("read-only", ex.Message, StringComparison.Ordinal);
        Assert.Equal(Original[0], GuestByte(CodePa));
    }

    [Fact]
    public void An_unmapped_address_is_refused_naming_it()
    {
        XenDriver d = Connect();
        var ex = Assert.Throws<VmiDriverException>(() => d.SetBreakpoint(new BreakpointRequest(new Va(0xffffffff82000000))));
        Assert.Contains("0xffffffff82000000", ex.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("not mapped", ex.Message, StringComparison.Ordinal);
        Assert.Null(_xen.Channel); // nothing was set up for it
    }
}
