using Vmi.Core;
using Vmi.Qemu;
using Vmi.Qemu.Tests;

namespace Vmi.Os.Linux.Tests;

/// <summary>
/// On a running guest under QEMU (tests/guest/live-guest.sh, shared with the QEMU driver's live lane through the linked
/// LiveGuest.cs), connected with the QEMU driver: the kernel, every symbol, the processes and the modules equal what the
/// guest printed about itself from its own /proc, with no profile and no image. The guest is paused while it is read,
/// so that a list is one moment's list; it runs on between tests.
/// </summary>
public abstract class LiveGuestTruthTests<TGuest>(TGuest guest)
    where TGuest : LiveGuest
{
    private GuestTruth Truth { get; } = new(guest.SerialText().Split('\n'));

    /// <summary>Connects, pauses the guest, finds its kernel and hands it to <paramref name="check"/>; resumes and disconnects on every path.</summary>
    private void WithKernel(Action<LinuxKernel> check)
    {
        using QemuDriver driver = QemuDriver.Connect(guest.QmpPath);
        using var core = new VmiCore(driver);
        driver.Pause();
        try
        {
            check(LinuxKernel.Open(new CoreGuestMemory(core)));
        }
        finally
        {
            driver.Resume();
        }
    }

    [Fact]
    public void Kernel_and_every_symbol_equal_the_live_guests_own_proc_kallsyms()
    {
        Assert.True(Truth.Kallsyms.Count > 50_000, $"the live guest printed only {Truth.Kallsyms.Count} kallsyms lines");
        WithKernel(kernel =>
        {
            // a live target has no VMCOREINFO: the kernel is found from the vCPU (the system-call entry, else the IDT)
            Assert.Contains(kernel.Info.TextFoundBy, new[] { "IA32_LSTAR", "IDT" });
            Assert.Null(kernel.Info.VmcoreinfoAgrees);
            Assert.Equal(guest.La57 ? Vmi.Core.Arch.Amd64.PagingMode.Ia32eLa57 : Vmi.Core.Arch.Amd64.PagingMode.Ia32e, kernel.Info.PagingMode);
            Assert.Equal(Truth.Kallsyms.First(s => s.Name == "_text").Address, kernel.Info.TextBase);
            string release = guest.SerialText().Split('\n').First(l => l.StartsWith("VMI-GUEST-UP ", StringComparison.Ordinal)).Split(' ')[1];
            Assert.Equal(release, kernel.Info.Release);
            Assert.StartsWith("Linux version " + release + " ", kernel.Info.Banner, StringComparison.Ordinal);
            Assert.NotNull(kernel.Types); // BTF from guest memory

            IReadOnlyList<KernelSymbol> ours = kernel.Symbols.Symbols;
            Assert.Equal(Truth.Kallsyms.Count, ours.Count);
            for (int i = 0; i < ours.Count; i++)
            {
                (ulong address, char type, string name) = Truth.Kallsyms[i];
                if (ours[i].Name != name || ours[i].Address != address || ours[i].Type != type)
                {
                    Assert.Fail($"symbol {i}: the guest says {address:x} {type} {name}, we say {ours[i].Address:x} {ours[i].Type} {ours[i].Name}");
                }
            }
        });
    }

    [Fact]
    public void Processes_equal_the_live_guests_own_list_where_both_are_stable()
    {
        WithKernel(kernel =>
        {
            var warnings = new List<string>();
            List<LinuxProcess> ours = kernel.GetProcesses(warning: warnings.Add).ToList();
            Assert.Empty(warnings);
            Assert.Equal(0, ours[0].Pid); // init_task, the idle task: not in /proc
            var byPid = ours.Skip(1).ToDictionary(p => p.Pid);
            var truth = Truth.Tasks.Where(t => t.Pid != Truth.PrinterPid).ToDictionary(t => t.Pid);
            Assert.True(truth.Count > 20, $"the live guest printed only {truth.Count} tasks");
            Assert.DoesNotContain(Truth.PrinterPid, byPid.Keys); // the printing shell has exited

            // The guest runs on between its list and ours. Idle workqueue workers come and go (the kernel adds and
            // retires them on demand), and init's tick loop forks a "usleep" 50 times a second: caught before its exec,
            // the child is still named "init".
            static bool Transient(string name, int ppid) =>
                (name.StartsWith("kworker/", StringComparison.Ordinal) && ppid == 2) || (name is "usleep" or "init" && ppid == 1);
            Assert.All(ours.Skip(1).Where(p => !truth.ContainsKey(p.Pid)), p => Assert.True(Transient(p.Name, p.Ppid),
                $"PID {p.Pid} '{p.Name}' (parent {p.Ppid}) is not in the guest's list and is not one that comes and goes"));
            Assert.All(truth.Values.Where(t => !byPid.ContainsKey(t.Pid)), t => Assert.True(Transient(t.Comm.Split('-')[0], t.Ppid),
                $"PID {t.Pid} '{t.Comm}' (parent {t.Ppid}) is in the guest's list but not in ours"));

            int compared = 0;
            foreach (TruthTask t in truth.Values.Where(t => byPid.ContainsKey(t.Pid)))
            {
                LinuxProcess p = byPid[t.Pid];
                Assert.Equal(t.Ppid, p.Ppid);
                Assert.True(t.Comm == p.Name || (p.Name.StartsWith("kworker/", StringComparison.Ordinal) && t.Comm.StartsWith(p.Name + "-", StringComparison.Ordinal)),
                    $"PID {t.Pid}: the guest says '{t.Comm}', we say '{p.Name}'");
                Assert.Equal(t.StartTicks, (ulong)(p.StartTime.Ticks / 100_000)); // USER_HZ clock ticks
                Assert.Equal(t.Pid, p.Tgid);
                compared++;
            }

            Assert.True(compared > 20, $"only {compared} tasks were in both lists");
            LinuxProcess init = byPid[1];
            Assert.Equal("init", init.Name);
            Assert.Equal(0, init.Ppid);
            Assert.Equal(0u, init.Uid);
            Assert.NotNull(init.Cr3);
            // read through init's own page tables: the kernel ran the script /init with its #! interpreter
            Assert.Equal("/bin/busybox sh /init", init.CommandLine);
            Assert.Equal(truth[1].ArgEnd - truth[1].ArgStart, (ulong)init.CommandLine!.Length + 1); // the guest's arg_start..arg_end
            Assert.Equal("kthreadd", byPid[2].Name);
        });
    }

    [Fact]
    public void Modules_and_their_symbols_equal_the_live_guests_proc_modules_and_kallsyms()
    {
        Assert.True(Truth.Modules.Count >= 4, $"the live guest printed {Truth.Modules.Count} modules");
        WithKernel(kernel =>
        {
            var warnings = new List<string>();
            List<LinuxModule> ours = kernel.GetModules(warning: warnings.Add).ToList();
            Assert.Empty(warnings);
            Assert.Equal(Truth.Modules.Select(m => (m.Name, m.Base, m.Size)), ours.Select(m => (m.Name, m.Base, m.Size)));
            Assert.All(ours, m => Assert.Equal("Live", m.State));
            RealGuestTruthTests.AssertModuleSymbols(Truth, kernel);
        });
    }

    [Fact]
    public void Every_btf_equals_the_live_guests_own_sys_kernel_btf()
    {
        // the guest printed name, size and SHA-256 of every /sys/kernel/btf file: vmlinux (the kernel's own .BTF, served
        // from __start_BTF) and each module's split BTF (served from its struct btf's data)
        var truth = Truth.Btf.ToDictionary(b => b.Name);
        Assert.True(truth.ContainsKey("vmlinux"), "the live guest printed no /sys/kernel/btf/vmlinux line");
        Assert.Equal(Truth.Modules.Select(m => m.Name).Order(), truth.Keys.Where(k => k != "vmlinux").Order());
        WithKernel(kernel =>
        {
            AssertSameBytes(truth["vmlinux"], kernel.ReadKernelBtf(), "vmlinux");
            var warnings = new List<string>();
            List<LinuxModuleBtf> ours = kernel.GetModuleBtf(warning: warnings.Add).ToList();
            Assert.Empty(warnings);
            Assert.Equal(truth.Keys.Where(k => k != "vmlinux").Order(), ours.Select(m => m.Module).Order());
            foreach (LinuxModuleBtf m in ours)
            {
                AssertSameBytes(truth[m.Module], kernel.ReadModuleBtf(m), m.Module);
            }

            // and as on the images: the module files' .BTF sections, parsed as split BTF with every id resolving
            ModuleBtfChecks.AssertModulesBtf(kernel, Truth.Modules);
        });
    }

    private static void AssertSameBytes((string Name, long Size, string Sha256) truth, byte[] ours, string what)
    {
        Assert.True(truth.Size == ours.Length, $"{what}: the guest's /sys/kernel/btf/{what} has {truth.Size} bytes, ours {ours.Length}");
        Assert.Equal(truth.Sha256, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(ours)));
    }
}

[Collection("live-4level")]
public sealed class LiveFourLevelTruthTests(FourLevelGuest guest) : LiveGuestTruthTests<FourLevelGuest>(guest);

[Collection("live-5level")]
public sealed class LiveFiveLevelTruthTests(FiveLevelGuest guest) : LiveGuestTruthTests<FiveLevelGuest>(guest);
