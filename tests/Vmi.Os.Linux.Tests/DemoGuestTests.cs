using Vmi.Core;
using Vmi.Mock;
using Vmi.Mock.Linux;
using L = Vmi.Mock.DemoGuestLayout;
using X = Vmi.Mock.Linux.DemoLinuxLayout;

namespace Vmi.Os.Linux.Tests;

/// <summary>The demo guest's Linux-like kernel, read back through the same code that reads real guests.</summary>
public sealed class DemoGuestTests
{
    private static (VmiCore Core, LinuxKernel Kernel) Open()
    {
        var core = new VmiCore(DemoGuest.Create());
        return (core, LinuxKernel.Open(new CoreGuestMemory(core)));
    }

    [Fact]
    public void Kernel_is_found_from_lstar_with_its_banner_and_types()
    {
        (VmiCore core, LinuxKernel k) = Open();
        using (core)
        {
            Assert.Equal(L.KernelTextVa, k.Info.TextBase);
            Assert.Equal(0, k.Info.Slide);
            Assert.Equal("IA32_LSTAR", k.Info.TextFoundBy);
            Assert.Equal(L.KernelBanner, k.Info.Banner);
            Assert.Equal("6.6.0-vmi-demo", k.Info.Release);
            Assert.Equal(X.KallsymsVa + (ulong)KallsymsWriterLayout().TokenTable, k.Symbols.Layout.TokenTable);
            Assert.NotNull(k.Types);
            Assert.False(k.Info.PtiEnabled);
            Assert.Null(k.Info.VmcoreinfoAgrees);
        }
    }

    [Fact]
    public void Without_lstar_the_kernel_map_is_scanned()
    {
        using var core = new VmiCore(DemoGuest.Create());
        for (ushort v = 0; v < L.VcpuCount; v++)
        {
            core.SetRegisters(new VcpuId(v), core.GetRegisters(new VcpuId(v)) with { MsrLstar = 0 });
        }

        LinuxKernel k = LinuxKernel.Open(new CoreGuestMemory(core));
        Assert.Equal("kernel-map page-table scan", k.Info.TextFoundBy);
        Assert.Equal(L.KernelTextVa, k.Info.TextBase);
    }

    [Fact]
    public void Without_lstar_the_idt_first_gate_leads_to_the_kernel()
    {
        using var core = new VmiCore(DemoGuest.Create());
        const ulong idt = X.ImageDataVa + 0x3_A000;
        ulong handler = L.KernelTextVa + 0x3_1234;
        byte[] gate = new byte[16];
        BitConverter.GetBytes((ushort)(handler & 0xFFFF)).CopyTo(gate, 0);
        BitConverter.GetBytes((ushort)0x10).CopyTo(gate, 2);
        gate[5] = 0x8E; // present interrupt gate
        BitConverter.GetBytes((ushort)((handler >> 16) & 0xFFFF)).CopyTo(gate, 6);
        BitConverter.GetBytes((uint)(handler >> 32)).CopyTo(gate, 8);
        core.Write(AccessContext.Paging(new Va(idt), new Pa(L.KernelCr3)), gate);
        core.SetRegisters(new VcpuId(0), core.GetRegisters(new VcpuId(0)) with { MsrLstar = 0, Idtr = new Vmi.Core.Arch.Amd64.DescriptorTable(idt, 0xFFF) });
        LinuxKernel k = LinuxKernel.Open(new CoreGuestMemory(core));
        Assert.Equal(("IDT", L.KernelTextVa), (k.Info.TextFoundBy, k.Info.TextBase));
    }

    [Fact]
    public void Vmcoreinfo_kerneloffset_is_used_and_checked()
    {
        using var core = new VmiCore(DemoGuest.Create());
        LinuxKernel k = LinuxKernel.Open(new CoreGuestMemory(core, $"OSRELEASE=6.6.0-vmi-demo\nKERNELOFFSET=0\nSYMBOL(_stext)={L.KernelTextVa:x}\n"));
        Assert.Equal(("VMCOREINFO KERNELOFFSET", true), (k.Info.TextFoundBy, k.Info.VmcoreinfoAgrees));
        LinuxKernel wrong = LinuxKernel.Open(new CoreGuestMemory(core, $"KERNELOFFSET=0\nSYMBOL(_stext)={L.KernelTextVa + 0x1000:x}\n"));
        Assert.False(wrong.Info.VmcoreinfoAgrees);
    }

    private static KallsymsWriter.Layout KallsymsWriterLayout()
    {
        KallsymsWriter.Write(DemoLinuxKernel.Symbols(0), out KallsymsWriter.Layout layout);
        return layout;
    }

    [Fact]
    public void Symbols_equal_the_ones_written()
    {
        (VmiCore core, LinuxKernel k) = Open();
        using (core)
        {
            var expected = DemoLinuxKernel.Symbols(0).Where(s => s.Name is not "__stop_BTF").OrderBy(s => s.Address).ToList();
            Assert.Equal(expected.Count + 1, k.Symbols.Count);
            foreach ((char type, string name, ulong address) in expected)
            {
                Assert.True(k.Symbols.TryGetAddress(name, out ulong got), name);
                Assert.Equal(address, got);
                Assert.Contains(k.Symbols.Symbols, s => s.Name == name && s.Type == type);
            }

            Assert.True(k.Symbols.TryFindNearest(X.SysOpenatVa + 0x12, out KernelSymbol near));
            Assert.Equal("__x64_sys_openat", near.Name);
            Assert.True(k.Symbols.TryFindNearest(L.KernelTextVa, out near));
            Assert.Equal("_text", near.Name); // the first of the three at that address, in table order
        }
    }

    [Fact]
    public void Processes_equal_the_demo_task_list()
    {
        (VmiCore core, LinuxKernel k) = Open();
        using (core)
        {
            var warnings = new List<string>();
            var ours = k.GetProcesses(warning: warnings.Add).ToList();
            Assert.Empty(warnings);
            Assert.Equal(X.Tasks.Count, ours.Count);
            for (int i = 0; i < ours.Count; i++)
            {
                DemoTask t = X.Tasks[i];
                LinuxProcess p = ours[i];
                Assert.Equal((t.Pid, t.Ppid, t.Name, t.Comm, t.State, t.Uid, t.CommandLine, t.Cr3),
                    (p.Pid, p.Ppid, p.Name, p.Comm, p.State, p.Uid ?? 99, p.CommandLine, p.Cr3));
                Assert.Equal(TimeSpan.FromTicks((long)(t.StartNs / 100)), p.StartTime);
                Assert.Equal(p.Cr3, p.UserCr3); // no PTI in the demo
            }
        }
    }

    [Fact]
    public void Modules_equal_the_demo_module_list()
    {
        (VmiCore core, LinuxKernel k) = Open();
        using (core)
        {
            Assert.Equal(X.Modules.Select(m => (m.Name, m.Base, m.Size)), k.GetModules().Select(m => (m.Name, m.Base, m.Size)));
        }
    }

    [Fact]
    public void A_process_cr3_reads_that_process_memory()
    {
        (VmiCore core, LinuxKernel k) = Open();
        using (core)
        {
            LinuxProcess sshd = k.GetProcesses().Single(p => p.Name == "sshd");
            string secret = core.ReadString(AccessContext.Paging(new Va(L.UserSecretVa), new Pa(sshd.Cr3!.Value)));
            Assert.Equal(L.ProcessASecret, secret);
        }
    }

    [Fact]
    public void Module_symbols_come_from_each_modules_own_table()
    {
        (VmiCore core, LinuxKernel k) = Open();
        using (core)
        {
            var warnings = new List<string>();
            var expected = X.Modules.SelectMany(m => X.ModuleSymbols(m).Select(s => new LinuxModuleSymbol(m.Name, s.Name, m.Base + s.Offset, s.Type)));
            Assert.Equal(expected, k.GetModuleSymbols(warning: warnings.Add));
            Assert.Empty(warnings);
        }
    }
}

/// <summary>The demo guest built with a longer task list (the benchmark's 100 processes).</summary>
public sealed class LargeTaskListTests
{
    [Fact]
    public void A_hundred_tasks_are_listed_in_order_with_their_parents()
    {
        var tasks = X.Tasks.Concat(Enumerable.Range(0, 94).Select(i =>
            new DemoTask(2000 + i, 2, $"kworker/0:{i}", $"kworker/0:{i}", "I", 0, 90_000_000, null, null))).ToList();
        using var core = new VmiCore(DemoGuest.Create(tasks));
        var ours = LinuxKernel.Open(new CoreGuestMemory(core)).GetProcesses().ToList();
        Assert.Equal(tasks.Select(t => (t.Pid, t.Ppid, t.Name, t.State)), ours.Select(p => (p.Pid, p.Ppid, p.Name, p.State)));
    }
}
