using Vmi.Core;
using Vmi.Mock;
using Vmi.Mock.Linux;
using L = Vmi.Mock.DemoGuestLayout;
using X = Vmi.Mock.Linux.DemoLinuxLayout;

namespace Vmi.Os.Linux.Tests;

/// <summary>
/// A guest controls its own memory: crafted task and module lists (loops, bogus pointers, huge counts, names
/// without terminators, absurd command-line ranges) end in bounded time with a warning, never a hang or crash.
/// </summary>
public sealed class HostileTests
{
    private static (VmiCore Core, LinuxKernel Kernel) Open()
    {
        var core = new VmiCore(DemoGuest.Create());
        return (core, LinuxKernel.Open(new CoreGuestMemory(core)));
    }

    private static ulong Tasks(LinuxKernel k) => k.Types!.GetField("task_struct", "tasks").Offset;

    private static AccessContext Kernel(VmiCore core, ulong va) => AccessContext.Paging(new Va(va), new Pa(L.KernelCr3));

    [Fact]
    public void A_task_list_that_loops_ends_with_a_warning()
    {
        (VmiCore core, LinuxKernel k) = Open();
        using (core)
        {
            List<LinuxProcess> before = k.GetProcesses().ToList();
            // sshd's next points back at kthreadd: the walk never returns to init_task
            LinuxProcess sshd = before.Single(p => p.Pid == 412), kthreadd = before.Single(p => p.Pid == 2);
            core.WriteU64(Kernel(core, sshd.TaskAddress + Tasks(k)), kthreadd.TaskAddress + Tasks(k));
            var warnings = new List<string>();
            List<LinuxProcess> after = k.GetProcesses(warning: warnings.Add).ToList();
            Assert.Equal([0, 1, 2, 3, 412], after.Select(p => p.Pid));
            Assert.Contains("loops back", Assert.Single(warnings), StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData(0xDEAD_0000_0000_0000UL)] // non-canonical
    [InlineData(0xFFFF_C900_1234_5000UL)] // canonical kernel address, not mapped
    [InlineData(0x0000_0000_0040_0000UL)] // a user address
    [InlineData(0UL)]
    public void A_bogus_next_pointer_ends_the_walk_with_a_warning(ulong bogus)
    {
        (VmiCore core, LinuxKernel k) = Open();
        using (core)
        {
            LinuxProcess systemd = k.GetProcesses().Single(p => p.Pid == 1);
            core.WriteU64(Kernel(core, systemd.TaskAddress + Tasks(k)), bogus);
            var warnings = new List<string>();
            List<LinuxProcess> after = k.GetProcesses(warning: warnings.Add).ToList();
            Assert.Equal([0, 1], after.Select(p => p.Pid));
            Assert.Contains("not readable kernel memory", Assert.Single(warnings), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void A_walk_stops_at_the_entry_limit()
    {
        (VmiCore core, LinuxKernel k) = Open();
        using (core)
        {
            var warnings = new List<string>();
            List<LinuxProcess> some = k.GetProcesses(new LinuxWalkOptions { MaxEntries = 3 }, warnings.Add).ToList();
            Assert.Equal(3, some.Count);
            Assert.Contains("more than 3", Assert.Single(warnings), StringComparison.Ordinal);
            List<LinuxModule> modules = k.GetModules(new LinuxWalkOptions { MaxEntries = 2 }, warnings.Add).ToList();
            Assert.Equal(2, modules.Count);
            Assert.Equal(2, warnings.Count);
        }
    }

    [Fact]
    public void A_name_without_terminator_stops_at_its_field()
    {
        (VmiCore core, LinuxKernel k) = Open();
        using (core)
        {
            LinuxProcess bash = k.GetProcesses().Single(p => p.Pid == 1337);
            KernelField comm = k.Types!.GetField("task_struct", "comm");
            byte[] filled = new byte[comm.Size + 64];
            Array.Fill(filled, (byte)'A');
            core.Write(Kernel(core, bash.TaskAddress + comm.Offset), filled);
            LinuxProcess after = k.GetProcesses().Single(p => p.Pid == 1337);
            Assert.Equal(new string('A', (int)comm.Size), after.Name);
        }
    }

    [Fact]
    public void An_absurd_command_line_range_reads_at_most_the_limit()
    {
        (VmiCore core, LinuxKernel k) = Open();
        using (core)
        {
            LinuxProcess bash = k.GetProcesses().Single(p => p.Pid == 1337);
            KernelField argEnd = k.Types!.GetField("mm_struct", "arg_end");
            core.WriteU64(Kernel(core, bash.MmAddress + argEnd.Offset), ulong.MaxValue);
            LinuxProcess after = k.GetProcesses(new LinuxWalkOptions { MaxCommandLine = 100 }).Single(p => p.Pid == 1337);
            Assert.StartsWith("-bash", after.CommandLine, StringComparison.Ordinal);
            Assert.True(after.CommandLine!.Length <= 100);
        }
    }

    [Fact]
    public void A_module_list_that_loops_ends_with_a_warning()
    {
        (VmiCore core, LinuxKernel k) = Open();
        using (core)
        {
            List<LinuxModule> modules = k.GetModules().ToList();
            ulong list = k.Types!.GetField("module", "list").Offset;
            core.WriteU64(Kernel(core, modules[2].ModuleAddress + list), modules[0].ModuleAddress + list);
            var warnings = new List<string>();
            Assert.Equal(3, k.GetModules(warning: warnings.Add).Count());
            Assert.Contains("loops back", Assert.Single(warnings), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void A_guest_with_no_kallsyms_fails_with_a_clear_error()
    {
        using var core = new VmiCore(DemoGuest.Create());
        core.Write(Kernel(core, X.KallsymsVa), new byte[0x2_0000]);
        var e = Assert.Throws<LinuxIntrospectionException>(() => LinuxKernel.Open(new CoreGuestMemory(core)));
        Assert.Contains("kallsyms", e.Message, StringComparison.Ordinal);
    }
}

/// <summary>A kernel whose BTF is missing or damaged still gives its symbols; the lists say why they cannot run.</summary>
public sealed class NoBtfTests
{
    [Fact]
    public void Damaged_btf_leaves_symbols_working_and_lists_failing_with_the_reason()
    {
        using var core = new VmiCore(DemoGuest.Create());
        core.Write(AccessContext.Paging(new Va(X.BtfVa), new Pa(L.KernelCr3)), new byte[] { 0, 0 }); // the magic
        LinuxKernel k = LinuxKernel.Open(new CoreGuestMemory(core));
        Assert.Null(k.Types);
        Assert.Null(k.Info.TypeSource);
        Assert.Equal(X.SysOpenatVa, k.Symbols.GetAddress("__x64_sys_openat"));
        var e = Assert.Throws<LinuxIntrospectionException>(() => k.GetProcesses().ToList());
        Assert.Contains("magic", e.Message, StringComparison.Ordinal);
        Assert.Throws<LinuxIntrospectionException>(() => k.GetModules().ToList());
    }
}
