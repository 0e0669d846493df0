using System.Globalization;
using System.Text.RegularExpressions;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Qemu.Tests;

/// <summary>
/// The driver on a running guest, checked against QEMU's own monitor (info registers, gva2gpa, x, xp) and the guest's
/// own behaviour (its serial console, its kallsyms). Each test connects and disconnects, so each also exercises restore.
/// </summary>
public abstract partial class LiveTests<TGuest>(TGuest guest)
    where TGuest : LiveGuest
{
    protected TGuest Guest { get; } = guest;

    private QemuDriver Connect(QemuConnectOptions? options = null) => QemuDriver.Connect(Guest.QmpPath, options);

    [Fact]
    public void Every_register_matches_info_registers()
    {
        using QemuDriver d = Connect();
        d.Pause();
        for (int cpu = 0; cpu < d.Info.VcpuCount; cpu++)
        {
            Registers r = d.GetRegisters(new VcpuId((ushort)cpu));
            string text = d.Qmp.Hmp("info registers", cpu);
            Dictionary<string, ulong> v = HmpRegisters.Values(text);
            (string, ulong)[] pairs =
            [
                ("RAX", r.Rax), ("RBX", r.Rbx), ("RCX", r.Rcx), ("RDX", r.Rdx), ("RSI", r.Rsi), ("RDI", r.Rdi), ("RBP", r.Rbp), ("RSP", r.Rsp),
                ("R8", r.R8), ("R9", r.R9), ("R10", r.R10), ("R11", r.R11), ("R12", r.R12), ("R13", r.R13), ("R14", r.R14), ("R15", r.R15),
                ("RIP", r.Rip), ("RFL", r.Rflags), ("CR0", r.Cr0), ("CR2", r.Cr2), ("CR3", r.Cr3), ("CR4", r.Cr4), ("EFER", r.MsrEfer),
                ("DR6", r.Dr6), ("DR7", r.Dr7),
            ];
            foreach ((string name, ulong value) in pairs)
            {
                Assert.True(v[name] == value, $"vCPU {cpu} {name}: QEMU says 0x{v[name]:x}, the driver 0x{value:x}");
            }

            var seg = HmpRegisters.Segments(text);
            Assert.Equal(seg["CS"], r.Cs);
            Assert.Equal(seg["SS"], r.Ss);
            Assert.Equal(seg["TR"], r.Tr);
            Assert.Equal(seg["FS"].Base, r.Fs.Base); // gdbstub fs_base vs the monitor's segment cache
            Assert.Equal(seg["GS"].Base, r.Gs.Base);
            Assert.Equal(HmpRegisters.Tables(text)["IDT"], r.Idtr);
            Assert.Equal(HmpRegisters.Tables(text)["GDT"], r.Gdtr);
            Assert.Equal(Guest.La57 ? PagingMode.Ia32eLa57 : PagingMode.Ia32e, r.PagingMode);

            // The kernel's per-CPU base is in GS or, swapped out by SWAPGS, in KERNEL_GS_BASE. Which one is not fixed by CS:
            // a vCPU stopped on a kernel entry before its SWAPGS (or on the way out after it) runs ring 0 with the user's GS.
            Assert.True(r.Gs.Base >= 0xff00000000000000UL || r.ShadowGs >= 0xff00000000000000UL, $"vCPU {cpu}: no per-CPU base in GS/KERNEL_GS_BASE");
        }

        d.Resume();
    }

    [Fact]
    public void Hundreds_of_translations_and_bytes_match_gva2gpa_and_x()
    {
        using QemuDriver d = Connect();
        using var core = new VmiCore(d);
        d.Pause();
        try
        {
            Registers r = d.GetRegisters(new VcpuId(0));
            Pa root = r.TranslationRoot;
            var addresses = new List<ulong>();
            foreach (ulong s in Guest.Symbols)
            {
                addresses.Add(s & ~31UL);
            }

            addresses.Add(r.Rip & ~31UL);
            addresses.Add(r.Rsp & ~31UL);
            addresses.Add(0x1000); // user space is unmapped at the very bottom: both must say so
            int mapped = 0;
            int compared = 0;
            foreach (ulong va in addresses.Distinct().Take(400))
            {
                string g = d.Qmp.Hmp(string.Create(CultureInfo.InvariantCulture, $"gva2gpa 0x{va:x}"), 0);
                TranslationResult t = core.TryTranslateAddress(new AddressContext(new Va(va), root, r.PagingMode));
                Match m = Gpa().Match(g);
                if (!m.Success)
                {
                    Assert.True(!t.Success, $"0x{va:x}: QEMU says '{g.Trim()}', the driver 0x{t.Pa.Value:x}");
                    compared++;
                    continue;
                }

                ulong gpa = ulong.Parse(m.Groups[1].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                Assert.True(t.Success, $"0x{va:x}: QEMU says 0x{gpa:x}, the driver faults ({t.Fault} at {t.FaultLevel})");
                Assert.Equal(gpa, t.Pa.Value);
                byte[] ours = core.ReadBytes(AccessContext.Paging(new Va(va), root, r.PagingMode), 32);
                Assert.Equal(QemuBytes(d.Qmp.Hmp(string.Create(CultureInfo.InvariantCulture, $"x /4gx 0x{va:x}"), 0)), ours);
                mapped++;
                compared++;
            }

            Assert.True(compared >= 200, $"only {compared} addresses compared");
            Assert.True(mapped >= 150, $"only {mapped} mapped addresses compared");
        }
        finally
        {
            d.Resume();
        }
    }

    [Fact]
    public void A_write_reads_back_through_xp()
    {
        using QemuDriver d = Connect();
        using var core = new VmiCore(d);
        d.Pause();
        try
        {
            // A frame in the middle of RAM, restored before the guest runs again.
            ulong pa = 0x3000000 + 0x128;
            ulong original = core.ReadU64(AccessContext.Direct(new Pa(pa)));
            Assert.Equal(QemuBytes(d.Qmp.Hmp($"xp /1gx 0x{pa:x}"))[..8], BitConverter.GetBytes(original));
            ulong pattern = 0x5a5aa5a5_0123cdefUL ^ original;
            core.WriteU64(AccessContext.Direct(new Pa(pa)), pattern);
            Assert.Equal(BitConverter.GetBytes(pattern), QemuBytes(d.Qmp.Hmp($"xp /1gx 0x{pa:x}"))[..8]);
            core.WriteU64(AccessContext.Direct(new Pa(pa)), original);
            Assert.Equal(BitConverter.GetBytes(original), QemuBytes(d.Qmp.Hmp($"xp /1gx 0x{pa:x}"))[..8]);
        }
        finally
        {
            d.Resume();
        }
    }

    [Fact]
    public void Packet_memory_reads_the_same_bytes_as_the_shared_file_and_says_it_is_slow()
    {
        byte[] viaFile = new byte[3 * 4096];
        Pa text;
        using (QemuDriver d = Connect())
        {
            Assert.False(d.UsesPacketMemory);
            Assert.Contains("zero copy", d.Description, StringComparison.Ordinal);
            d.Pause();
            using var core = new VmiCore(d);
            // Kernel text: read-only, so the bytes cannot change between the two sessions while the guest runs.
            Registers r = d.GetRegisters(new VcpuId(0));
            text = core.TranslateAddress(new AddressContext(new Va(Guest.Functions["__x64_sys_nanosleep"] & ~0xfffUL), r.TranslationRoot, r.PagingMode));
            core.Read(AccessContext.Direct(text), viaFile);
            byte[] viaPackets = new byte[viaFile.Length];
            using (QemuDriver p = ConnectSecondAfter(d))
            {
                Assert.True(p.UsesPacketMemory);
                Assert.Contains("slow", p.Description, StringComparison.Ordinal);
                using var pc = new VmiCore(p);
                pc.Read(AccessContext.Direct(text), viaPackets);
            }

            Assert.Equal(viaFile, viaPackets);
        }

        QemuDriver ConnectSecondAfter(QemuDriver first)
        {
            // QMP serves one client: the first session disconnects (the guest runs again), then the second connects and reads.
            first.Dispose();
            return Connect(new QemuConnectOptions { ForcePacketMemory = true });
        }
    }

    [Fact]
    public void A_breakpoint_on_nanosleep_fires_N_times_with_RIP_there_and_guest_memory_untouched()
    {
        const int N = 5;
        using QemuDriver d = Connect();
        using var core = new VmiCore(d);
        ulong[] targets = [Guest.Functions["__x64_sys_nanosleep"], Guest.Functions["__x64_sys_clock_nanosleep"]];
        d.Pause();
        Registers r0 = d.GetRegisters(new VcpuId(0));
        var before = targets.ToDictionary(t => t, t => core.ReadBytes(AccessContext.Paging(new Va(t), r0.TranslationRoot, r0.PagingMode), 16));
        VmiBreakpoint[] bps = [.. targets.Select(t => d.SetBreakpoint(new BreakpointRequest(new Va(t))))];
        d.Resume();

        var hits = new List<VmiEvent>();
        DateTime deadline = DateTime.UtcNow + TimeSpan.FromMinutes(3); // hang guard only
        while (hits.Count < N && DateTime.UtcNow < deadline)
        {
            d.WaitForEvents(TimeSpan.FromSeconds(10), 1, e =>
            {
                hits.Add(e);
                if (hits.Count == 1)
                {
                    // While the breakpoint is set and hit, guest memory at it is unchanged (QEMU's xp and our mapping).
                    var bp = (SoftwareBreakpointReason)e.Reason;
                    string g = d.Qmp.Hmp($"gva2gpa 0x{bp.Va.Value:x}", e.Vcpu.Value);
                    ulong gpa = ulong.Parse(Gpa().Match(g).Groups[1].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                    Assert.Equal(gpa >> 12, bp.Gfn.Value);
                    Assert.Equal(before[bp.Va.Value], QemuBytes(d.Qmp.Hmp($"xp /2gx 0x{gpa:x}")));
                    Assert.Equal(before[bp.Va.Value], core.ReadBytes(AccessContext.Direct(new Pa(gpa)), 16));
                }

                return VmiEventResponse.Continue;
            });
        }

        Assert.Equal(N, hits.Count);
        foreach (VmiEvent e in hits)
        {
            Assert.IsType<SoftwareBreakpointReason>(e.Reason);
            Assert.Contains(e.Registers.Rip, targets);
            Assert.True(e.Vcpu.Value < d.Info.VcpuCount);
            Assert.Equal(((SoftwareBreakpointReason)e.Reason).Va.Value, e.Registers.Rip);
        }

        Assert.Equal(N, d.Breakpoints.Sum(b => b.Hits));
        Assert.All(bps, b => Assert.True(d.RemoveBreakpoint(b.Id)));
        Assert.Empty(d.Breakpoints);
    }

    [Fact]
    public void A_hardware_breakpoint_fires_with_RIP_there()
    {
        using QemuDriver d = Connect();
        ulong target = Guest.Functions["__x64_sys_clock_nanosleep"];
        VmiBreakpoint bp = d.SetBreakpoint(new BreakpointRequest(new Va(target), BreakpointKind.Hardware));
        var hits = new List<VmiEvent>();
        DateTime deadline = DateTime.UtcNow + TimeSpan.FromMinutes(3);
        while (hits.Count < 2 && DateTime.UtcNow < deadline)
        {
            d.WaitForEvents(TimeSpan.FromSeconds(10), 1, e =>
            {
                hits.Add(e);
                return VmiEventResponse.Continue;
            });
        }

        Assert.Equal(2, hits.Count);
        Assert.All(hits, e => Assert.Equal(target, e.Registers.Rip));
        Assert.Equal(BreakpointKind.Hardware, Assert.Single(d.Breakpoints).Kind);
        Assert.True(d.RemoveBreakpoint(bp.Id));
    }

    [Fact]
    public void Single_step_from_a_breakpoint_advances_RIP_by_one_instruction()
    {
        using QemuDriver d = Connect();
        ulong target = Guest.Functions["__x64_sys_clock_nanosleep"];
        ulong other = Guest.Functions["__x64_sys_nanosleep"];
        d.SetBreakpoint(new BreakpointRequest(new Va(target)));
        d.SetBreakpoint(new BreakpointRequest(new Va(other)));
        var events = new List<VmiEvent>();
        DateTime deadline = DateTime.UtcNow + TimeSpan.FromMinutes(3);
        while (events.Count < 2 && DateTime.UtcNow < deadline)
        {
            d.WaitForEvents(TimeSpan.FromSeconds(10), 1, e =>
            {
                events.Add(e);
                return events.Count == 1 ? VmiEventResponse.ToggleSinglestep() : VmiEventResponse.Continue;
            });
        }

        Assert.Equal(2, events.Count);
        ulong from = events[0].Registers.Rip;
        Assert.IsType<SoftwareBreakpointReason>(events[0].Reason);
        var step = Assert.IsType<SinglestepReason>(events[1].Reason);
        Assert.Equal(events[0].Vcpu, events[1].Vcpu);
        ulong to = events[1].Registers.Rip;
        Assert.Equal(to, step.Va.Value);
        Assert.True(to > from && to <= from + 15, $"one instruction from 0x{from:x} should end within 15 bytes, RIP is 0x{to:x}");
    }

    [Fact]
    public void Breakpoints_and_watchpoints_leave_guest_memory_as_it_was_through_xp()
    {
        using QemuDriver d = Connect();
        using var core = new VmiCore(d);
        d.Pause();
        try
        {
            Registers r = d.GetRegisters(new VcpuId(0));
            ulong[] targets = [Guest.Functions["__x64_sys_nanosleep"], Guest.Functions["__x64_sys_clock_nanosleep"], Guest.Functions["jiffies"]];
            ulong[] gpas = [.. targets.Select(t => ulong.Parse(Gpa().Match(d.Qmp.Hmp($"gva2gpa 0x{t:x}", 0)).Groups[1].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture))];
            byte[][] before = [.. gpas.Select(g => QemuBytes(d.Qmp.Hmp($"xp /2gx 0x{g:x}")))];
            VmiBreakpoint[] set =
            [
                d.SetBreakpoint(new BreakpointRequest(new Va(targets[0]))),
                d.SetBreakpoint(new BreakpointRequest(new Va(targets[1]), BreakpointKind.Hardware)),
                d.SetBreakpoint(new BreakpointRequest(new Va(targets[2])) { Access = BreakpointAccess.ReadWrite, Length = 8 }),
            ];
            for (int i = 0; i < targets.Length; i++)
            {
                // QEMU's own read of guest memory, and ours through the shared RAM file: no INT3, nothing changed.
                Assert.Equal(before[i], QemuBytes(d.Qmp.Hmp($"xp /2gx 0x{gpas[i]:x}")));
                Assert.Equal(before[i], core.ReadBytes(AccessContext.Paging(new Va(targets[i]), r.TranslationRoot, r.PagingMode), 16));
            }

            Assert.Equal(3, d.Breakpoints.Count);
            Assert.All(set, b => Assert.True(d.RemoveBreakpoint(b.Id)));
        }
        finally
        {
            d.Resume();
        }
    }

    [Fact]
    public void Watchpoints_on_jiffies_fire_in_the_kernel_with_the_watched_address()
    {
        ulong jiffies = Guest.Functions["jiffies"];
        using QemuDriver d = Connect();
        using var core = new VmiCore(d);

        // Writes: the timer tick adds to jiffies; each hit comes after the write, so the value grows from hit to hit.
        VmiBreakpoint write = d.SetBreakpoint(new BreakpointRequest(new Va(jiffies)) { Access = BreakpointAccess.Write, Length = 8 });
        var values = new List<ulong>();
        List<VmiEvent> writes = WaitForHits(d, 3, e =>
        {
            string g = d.Qmp.Hmp($"gva2gpa 0x{jiffies:x}", e.Vcpu.Value);
            ulong gpa = ulong.Parse(Gpa().Match(g).Groups[1].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            ulong value = core.ReadU64(AccessContext.Paging(new Va(jiffies), e.Registers.TranslationRoot, e.Registers.PagingMode));
            Assert.Equal(BitConverter.GetBytes(value), QemuBytes(d.Qmp.Hmp($"xp /1gx 0x{gpa:x}"))[..8]); // QEMU's own read
            values.Add(value);
        });
        foreach (VmiEvent e in writes)
        {
            var w = Assert.IsType<WatchpointReason>(e.Reason);
            Assert.Equal(jiffies, w.Address.Value);
            Assert.Equal(BreakpointAccess.Write, w.Access);
            Assert.True(e.Registers.Rip >= 0xff00000000000000UL, $"the write to jiffies came from RIP 0x{e.Registers.Rip:x}, not the kernel");
        }

        Assert.True(values.Zip(values.Skip(1)).All(p => p.Second > p.First), $"jiffies did not grow from hit to hit: {string.Join(", ", values)}");
        Assert.Equal(3, Assert.Single(d.Breakpoints).Hits);
        Assert.True(d.RemoveBreakpoint(write.Id));

        // Reads (Z3, TCG only) and any access (Z4): the kernel reads jiffies all the time.
        foreach (BreakpointAccess access in (BreakpointAccess[])[BreakpointAccess.Read, BreakpointAccess.ReadWrite])
        {
            VmiBreakpoint wp = d.SetBreakpoint(new BreakpointRequest(new Va(jiffies)) { Access = access, Length = 8 });
            List<VmiEvent> hits = WaitForHits(d, 2, _ => { });
            Assert.All(hits, e => Assert.Equal(new WatchpointReason(new Va(jiffies), access, 8), e.Reason));
            Assert.All(hits, e => Assert.True(e.Registers.Rip >= 0xff00000000000000UL));
            Assert.True(d.RemoveBreakpoint(wp.Id));
        }

        Assert.Empty(d.Breakpoints);
    }

    private static List<VmiEvent> WaitForHits(QemuDriver d, int count, Action<VmiEvent> check)
    {
        var hits = new List<VmiEvent>();
        DateTime deadline = DateTime.UtcNow + TimeSpan.FromMinutes(3); // hang guard only
        while (hits.Count < count && DateTime.UtcNow < deadline)
        {
            d.WaitForEvents(TimeSpan.FromSeconds(10), 1, e =>
            {
                hits.Add(e);
                check(e);
                return VmiEventResponse.Continue;
            });
        }

        Assert.Equal(count, hits.Count);
        return hits;
    }

    [Fact]
    public void Set_registers_round_trips_through_info_registers()
    {
        using QemuDriver d = Connect();
        d.Pause();
        try
        {
            Registers r = d.GetRegisters(new VcpuId(0));
            Registers changed = r with { R15 = r.R15 ^ 0x1122334455667788UL, Rax = r.Rax ^ 0xff };
            d.SetRegisters(new VcpuId(0), changed);
            Dictionary<string, ulong> v = HmpRegisters.Values(d.Qmp.Hmp("info registers", 0));
            Assert.Equal(changed.R15, v["R15"]);
            Assert.Equal(changed.Rax, v["RAX"]);
            Assert.Equal(changed.R15, d.GetRegisters(new VcpuId(0)).R15);
            Assert.Throws<VmiNotSupportedException>(() => d.SetRegisters(new VcpuId(0), r with { MsrLstar = 1 }));
            d.SetRegisters(new VcpuId(0), r);
            Assert.Equal(r.R15, HmpRegisters.Values(d.Qmp.Hmp("info registers", 0))["R15"]);
        }
        finally
        {
            d.Resume();
        }
    }

    [Fact]
    public void Disconnect_leaves_the_guest_running_with_no_breakpoint_and_no_gdbstub()
    {
        using (QemuDriver d = Connect())
        {
            d.SetBreakpoint(new BreakpointRequest(new Va(Guest.Functions["__x64_sys_clock_nanosleep"])));
            d.SetBreakpoint(new BreakpointRequest(new Va(Guest.Functions["__x64_sys_nanosleep"])));
            d.SetBreakpoint(new BreakpointRequest(new Va(Guest.Functions["jiffies"])) { Access = BreakpointAccess.Write, Length = 8 });
            d.Pause();
        }

        using QmpClient qmp = QmpClient.Connect(Guest.QmpPath);
        Assert.Equal("running", qmp.Status());
        int tick = Guest.LastTick();
        DateTime deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        while (Guest.LastTick() < tick + 10 && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(200);
        }

        // The loop calls nanosleep dozens of times a second and every tick writes jiffies: a breakpoint or watchpoint
        // left behind would have stopped the VM.
        Assert.True(Guest.LastTick() >= tick + 10, $"the guest's serial stopped at tick {Guest.LastTick()}");
        Assert.Equal("running", qmp.Status());
        // The gdbstub socket the session started is gone (QEMU keeps only its internal "gdb" monitor chardev).
        Assert.DoesNotContain("gdb.sock", qmp.Execute("query-chardev").ToJsonString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Refusals_name_the_alternative()
    {
        using QemuDriver d = Connect();
        Assert.Contains("virtual address", Assert.Throws<VmiNotSupportedException>(() => d.SetBreakpoint(new BreakpointRequest(new Va(0xffffffff81000000)) { Physical = new Pa(0x1000) })).Message, StringComparison.Ordinal);
        Assert.Contains("poll", Assert.Throws<VmiNotSupportedException>(() => d.EnableMonitor(EventMonitor.ControlRegisterWrite(ControlRegister.Cr3))).Message, StringComparison.Ordinal);
        Assert.Throws<VmiNotSupportedException>(() => d.AllocateGfn());
        Assert.Throws<VcpuNotFoundException>(() => d.GetRegisters(new VcpuId(9)));
        Assert.Contains("multiple of 8", Assert.Throws<ArgumentException>(() => d.SetBreakpoint(new BreakpointRequest(new Va(0xffffffff81000004)) { Access = BreakpointAccess.Write, Length = 8 })).Message, StringComparison.Ordinal);
        Assert.Contains("1, 2, 4 or 8", Assert.Throws<ArgumentException>(() => d.SetBreakpoint(new BreakpointRequest(new Va(0xffffffff81000000)) { Access = BreakpointAccess.Read, Length = 3 })).Message, StringComparison.Ordinal);
        Assert.Empty(d.Breakpoints);
    }

    [Fact]
    public void Info_gives_vcpus_ram_ranges_and_the_physical_address_width()
    {
        using QemuDriver d = Connect();
        Assert.Equal(Guest.La57 ? 2 : 1, d.Info.VcpuCount);
        Assert.Contains(d.RamRanges, r => r.Start == 0x100000 && r.End == 0xfffffff);
        Assert.Equal((0x10000000UL >> 12) - 1, d.Info.MaxGfn.Value);
        Assert.InRange(d.Info.PhysicalAddressWidth, 36, 52);
    }

    internal static byte[] QemuBytes(string x)
    {
        var bytes = new List<byte>();
        foreach (string line in x.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            foreach (Match m in Qword().Matches(line[(colon + 1)..]))
            {
                bytes.AddRange(BitConverter.GetBytes(ulong.Parse(m.Groups[1].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture)));
            }
        }

        return [.. bytes];
    }

    [GeneratedRegex(@"gpa: 0x([0-9a-f]+)")]
    private static partial Regex Gpa();

    [GeneratedRegex(@"0x([0-9a-f]{16})")]
    private static partial Regex Qword();
}

[Collection("live-4level")]
public sealed class Live4LevelTests(FourLevelGuest guest) : LiveTests<FourLevelGuest>(guest);

[Collection("live-5level")]
public sealed class Live5LevelTests(FiveLevelGuest guest) : LiveTests<FiveLevelGuest>(guest);
