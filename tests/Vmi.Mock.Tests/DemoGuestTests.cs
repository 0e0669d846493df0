using Vmi.Core;
using Vmi.Core.Arch.Amd64;
using L = Vmi.Mock.DemoGuestLayout;

namespace Vmi.Mock.Tests;

/// <summary>Each fact <see cref="DemoGuestLayout"/> states is checked through VmiCore, as a cmdlet would see it.</summary>
public sealed class DemoGuestTests : IDisposable
{
    private readonly MockGuest _guest = DemoGuest.Create();
    private readonly VmiCore _core;

    public DemoGuestTests()
    {
        _core = new VmiCore(_guest);
    }

    public void Dispose() => _core.Dispose();

    private static AccessContext K(ulong va) => AccessContext.Paging(new Va(va), new Pa(L.KernelCr3));

    [Fact]
    public void Machine_facts_match_the_layout()
    {
        Assert.Equal(L.VcpuCount, _core.Info.VcpuCount);
        Assert.Equal(new Gfn(L.MaxGfn), _core.Info.MaxGfn);
        Assert.Equal(PagingMode.Ia32e, _core.PagingMode);
        Assert.Equal(9, _core.Capabilities.Count());
        Assert.Equal("Mock", _core.Driver.Name);
    }

    [Fact]
    public void Populated_memory_is_a_few_MiB()
    {
        long bytes = (long)_guest.Memory.PopulatedCount * Amd64.PageSize;
        Assert.InRange(bytes, 2L << 20, 4L << 20);
    }

    [Fact]
    public void Each_vcpu_has_the_registers_the_layout_gives()
    {
        var rips = new HashSet<ulong>();
        var rsps = new HashSet<ulong>();
        for (ushort i = 0; i < L.VcpuCount; i++)
        {
            Registers r = _core.GetRegisters(i);
            Assert.Equal(L.VcpuRip[i], r.Rip);
            Assert.Equal(L.VcpuRsp[i], r.Rsp);
            Assert.Equal(L.VcpuCr3[i], r.Cr3);
            Assert.Equal(L.VcpuRax[i], r.Rax);
            Assert.Equal(L.SyscallEntryVa, r.MsrLstar);
            Assert.Equal(PagingMode.Ia32e, r.PagingMode);
            rips.Add(r.Rip);
            rsps.Add(r.Rsp);

            // RIP and RSP translate under the vCPU's own CR3.
            Assert.True(_core.TryTranslateAddress(new AddressContext(new Va(r.Rip), r.TranslationRoot)).Success);
            Assert.True(_core.TryTranslateAddress(new AddressContext(new Va(r.Rsp), r.TranslationRoot)).Success);
        }

        Assert.Equal(L.VcpuCount, rips.Count);
        Assert.Equal(L.VcpuCount, rsps.Count);
        Assert.Equal(0x33, _core.GetRegisters(2).Cs.Selector & 0xFF);
        Assert.Equal(0x10, _core.GetRegisters(0).Cs.Selector);
    }

    [Fact]
    public void Kernel_text_is_a_global_read_only_executable_2MiB_page()
    {
        TranslationResult r = _core.TryTranslateAddress(new AddressContext(new Va(L.KernelTextVa + 0x1234), new Pa(L.KernelCr3)));
        PageWalk walk = _core.WalkAddress(new AddressContext(new Va(L.KernelTextVa + 0x1234), new Pa(L.KernelCr3)));
        Assert.True(walk.Result.Success);
        Assert.Equal(PageSizeKind.Size2M, walk.Result.PageSize);
        Assert.Equal(new Pa(L.KernelTextPa + 0x1234), r.Pa);
        Assert.False(walk.Result.Writable);
        Assert.False(walk.Result.NoExecute);
        Assert.False(walk.Result.User);
        Assert.True((walk.Result.Flags & PageEntryFlags.Global) != 0);
        Assert.Equal(3, walk.Entries.Count);
    }

    [Fact]
    public void Kernel_text_holds_its_code_breakpoint_and_banner()
    {
        Assert.Equal(L.KernelEntryCode.ToArray(), _core.ReadBytes(K(L.KernelEntryVa), L.KernelEntryCode.Length));
        Assert.Equal(0xCC, _core.ReadU8(K(L.BreakpointVa)));
        Assert.Equal(L.KernelBanner, _core.ReadString(K(L.KernelBannerVa)));
    }

    [Fact]
    public void Direct_map_is_one_1GiB_page_over_physical_memory()
    {
        PageWalk walk = _core.WalkAddress(new AddressContext(new Va(L.DirectMapVa + L.KernelDataPa + 0x100), new Pa(L.KernelCr3)));
        Assert.Equal(PageSizeKind.Size1G, walk.Result.PageSize);
        Assert.Equal(new Pa(L.KernelDataPa + 0x100), walk.Result.Pa);
        Assert.True(walk.Result.NoExecute);
        Assert.True(walk.Result.Writable);
        Assert.Equal(L.AsciiString, _core.ReadString(K(L.DirectMapVa + L.KernelDataPa + 0x100)));
    }

    [Fact]
    public void Kernel_data_values_and_strings_are_where_the_layout_says()
    {
        Assert.Equal(L.MagicValue, _core.ReadU64(K(L.MagicValueVa)));
        Assert.Equal(L.AsciiStringVa, _core.ReadVa64(K(L.PointerVa)).Value);
        Assert.Equal(L.AsciiString, _core.ReadString(K(L.AsciiStringVa)));
        Assert.Equal(L.WideString, _core.ReadWString(K(L.WideStringVa)));
        Assert.Equal(L.CrossPageString, _core.ReadString(K(L.CrossPageStringVa)));
        Assert.NotEqual(L.CrossPageStringVa >> 12, (L.CrossPageStringVa + (ulong)L.CrossPageString.Length) >> 12);
        Assert.Equal(L.Vcpu0ReturnAddress, _core.ReadU64(K(L.VcpuRsp[0])));
        Assert.Equal(new Pa(L.KernelDataPa + 0x100), _core.TranslateAddress(new AddressContext(new Va(L.AsciiStringVa), new Pa(L.KernelCr3))));
    }

    [Fact]
    public void The_pattern_occurs_exactly_once_in_physical_memory()
    {
        byte[] pattern = L.Pattern.ToArray();
        var hits = new List<ulong>();
        byte[] page = new byte[Amd64.PageSize + pattern.Length];
        foreach (Gfn gfn in _guest.Memory.PopulatedFrames)
        {
            Array.Clear(page);
            _core.TryReadPage(gfn, page);
            if (_guest.Memory.IsPopulated(gfn + 1))
            {
                _core.Read(AccessContext.Direct(Amd64.PaFromGfn(gfn + 1)), page.AsSpan((int)Amd64.PageSize, pattern.Length));
            }

            for (int i = 0; i < Amd64.PageSize; i++)
            {
                if (page.AsSpan(i, pattern.Length).SequenceEqual(pattern))
                {
                    hits.Add((gfn.Value << 12) + (ulong)i);
                }
            }
        }

        ulong expected = _core.TranslateAddress(new AddressContext(new Va(L.PatternVa), new Pa(L.KernelCr3))).Value;
        Assert.Equal([expected], hits);
    }

    [Fact]
    public void The_hole_faults_at_the_PT_level_and_zero_fills()
    {
        var ex = Assert.Throws<PageFaultException>(() => _core.ReadU8(K(L.UnmappedVa)));
        Assert.Equal(PagingLevel.Pt, ex.Level);
        Assert.Equal(new Va(L.UnmappedVa), ex.Va);

        byte[] buffer = new byte[3 * Amd64.PageSize];
        ReadResult result = _core.Read(K(L.BeforeHoleVa), buffer, ReadMode.ZeroFill);
        Assert.Equal([L.UnmappedVa], result.UnreadablePages);
        Assert.All(buffer[..4096], b => Assert.Equal(L.BeforeHoleFill, b));
        Assert.All(buffer[4096..8192], b => Assert.Equal(0, b));
        Assert.All(buffer[8192..], b => Assert.Equal(L.AfterHoleFill, b));

        // The frame behind the hole is there, reachable through the direct map.
        Assert.Equal(L.HiddenFill, _core.ReadU8(K(L.DirectMapVa + L.UnmappedPa)));
        Assert.Equal(L.HiddenFill, _core.ReadU8(AccessContext.Direct(new Pa(L.UnmappedPa))));
    }

    [Fact]
    public void Processes_share_the_kernel_half_and_separate_the_user_half()
    {
        var a = new Pa(L.ProcessACr3);
        var b = new Pa(L.ProcessBCr3);
        Assert.Equal(L.ProcessASecret, _core.ReadString(AccessContext.Paging(new Va(L.UserSecretVa), a)));
        Assert.Equal(L.ProcessBSecret, _core.ReadString(AccessContext.Paging(new Va(L.UserSecretVa), b)));
        Assert.Equal(new Pa(L.ProcessADataPa + 0x40), _core.TranslateAddress(new AddressContext(new Va(L.UserSecretVa), a)));
        Assert.Equal(new Pa(L.ProcessBDataPa + 0x40), _core.TranslateAddress(new AddressContext(new Va(L.UserSecretVa), b)));

        // The kernel address space has no user half.
        Assert.Throws<PageFaultException>(() => _core.ReadU8(K(L.UserSecretVa)));

        // Kernel strings read the same from every address space.
        Assert.Equal(L.AsciiString, _core.ReadString(AccessContext.Paging(new Va(L.AsciiStringVa), a)));
        Assert.Equal(L.AsciiString, _core.ReadString(AccessContext.Paging(new Va(L.AsciiStringVa), b)));

        foreach ((Pa root, ulong codePa, ulong stackPa) in new[] { (a, L.ProcessACodePa, L.ProcessAStackPa), (b, L.ProcessBCodePa, L.ProcessBStackPa) })
        {
            Assert.Equal(L.UserCodeMagic.ToArray(), _core.ReadBytes(AccessContext.Paging(new Va(L.UserCodeVa), root), L.UserCodeMagic.Length));
            TranslationResult code = _core.WalkAddress(new AddressContext(new Va(L.UserCodeVa), root)).Result;
            Assert.Equal(new Pa(codePa), code.Pa);
            Assert.True(code.User);
            Assert.False(code.Writable);
            Assert.False(code.NoExecute);
            TranslationResult stack = _core.WalkAddress(new AddressContext(new Va(L.UserStackTop - 8), root)).Result;
            Assert.Equal(new Pa(stackPa + 0x1FF8), stack.Pa);
            Assert.True(stack.User && stack.Writable && stack.NoExecute);
        }
    }

    [Fact]
    public void Page_tables_live_where_the_layout_says()
    {
        Assert.True(_guest.Memory.IsPageTableFrame(Amd64.GfnFromPa(new Pa(L.KernelCr3))));
        Assert.True(_guest.Memory.IsPageTableFrame(Amd64.GfnFromPa(new Pa(L.ProcessACr3))));
        Assert.True(_guest.Memory.IsPageTableFrame(Amd64.GfnFromPa(new Pa(L.ProcessBCr3))));
    }

    [Fact]
    public void Scripted_events_arrive_only_when_their_monitors_are_enabled()
    {
        Assert.Equal(0, _core.EventsPending);
        Assert.Equal(0, _guest.WaitForEvents(TimeSpan.Zero, _ => VmiEventResponse.Continue));

        _core.EnableMonitor(EventMonitor.ControlRegisterWrite(ControlRegister.Cr3));
        var seen = new List<VmiEvent>();
        Assert.Equal(1, _guest.WaitForEvents(TimeSpan.FromSeconds(5), e => { seen.Add(e); return VmiEventResponse.Continue; }));
        var cr3 = Assert.IsType<ControlRegisterWriteReason>(seen[0].Reason);
        Assert.Equal((ushort)L.Cr3WriteVcpu, seen[0].Vcpu.Value);
        Assert.Equal(L.ProcessACr3, cr3.NewValue);
        Assert.Equal(L.KernelCr3, cr3.OldValue);
        Assert.Equal(L.ProcessACr3, _core.GetRegisters((ushort)L.Cr3WriteVcpu).Cr3);

        _core.EnableMonitor(EventMonitor.Breakpoint);
        seen.Clear();
        Assert.Equal(1, _guest.WaitForEvents(TimeSpan.FromSeconds(5), e => { seen.Add(e); return VmiEventResponse.ReinjectInterrupt; }));
        var bp = Assert.IsType<SoftwareBreakpointReason>(seen[0].Reason);
        Assert.Equal(new Va(L.BreakpointVa), bp.Va);
        Assert.Equal(Amd64.GfnFromPa(new Pa(L.KernelTextPa)), bp.Gfn);
        Assert.Equal([Interrupt.Breakpoint()], _guest.GetInjectedInterrupts((ushort)L.BreakpointVcpu));

        _core.SetMemoryAccess(Amd64.GfnFromPa(new Pa(L.WatchedPa)), View.Default, MemoryAccess.R);
        seen.Clear();
        Assert.Equal(1, _guest.WaitForEvents(TimeSpan.FromSeconds(5), e => { seen.Add(e); return VmiEventResponse.Continue; }));
        var ma = Assert.IsType<MemoryAccessReason>(seen[0].Reason);
        Assert.Equal(new Pa(L.WatchedWritePa), ma.Pa);
        Assert.Equal(new Va(L.WatchedWriteVa), ma.Gla);
        Assert.Equal(MemoryAccess.W, ma.Access);

        _core.EnableMonitor(EventMonitor.MsrWrite(L.LstarMsr));
        seen.Clear();
        Assert.Equal(1, _guest.WaitForEvents(TimeSpan.FromSeconds(5), e => { seen.Add(e); return VmiEventResponse.Deny; }));
        var msr = Assert.IsType<MsrWriteReason>(seen[0].Reason);
        Assert.Equal(L.HookedSyscallEntryVa, msr.NewValue);
        Assert.Equal(L.SyscallEntryVa, _core.GetRegisters((ushort)L.LstarWriteVcpu).MsrLstar);

        Assert.Equal(0, _guest.ScriptedEventsRemaining);
        Assert.Equal(0, _guest.WaitForEvents(TimeSpan.FromMilliseconds(20), _ => VmiEventResponse.Continue));
    }

    [Fact]
    public void Each_call_builds_an_independent_guest()
    {
        using MockGuest other = DemoGuest.Create();
        other.WritePhysical(new Pa(L.KernelDataPa + 0x100), "X"u8);
        Assert.Equal(L.AsciiString, _core.ReadString(K(L.AsciiStringVa)));
    }
}
