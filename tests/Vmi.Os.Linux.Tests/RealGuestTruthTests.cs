using Vmi.Core;
using Vmi.Dump;

namespace Vmi.Os.Linux.Tests;

/// <summary>
/// On real Debian guests (4-level with KASLR, 5-level, 4-level with page-table isolation), in every image format: our symbols, processes and modules
/// equal what the guest printed about itself from /proc, with no profile given.
/// </summary>
[Collection("RealGuest")]
public sealed class RealGuestTruthTests(RealGuestFixture fixture)
{
    public static TheoryData<string, string> Images => new()
    {
        { "kaslr", "elf" }, { "kaslr", "kdump" }, { "kaslr", "raw" },
        { "la57", "elf" }, { "la57", "kdump" }, { "la57", "raw" },
        { "pti", "elf" }, { "pti", "kdump" }, { "pti", "raw" },
    };

    /// <summary>The guest's image in <paramref name="format"/>, and the kernel found in it (no profile).</summary>
    internal static (VmiCore Core, LinuxKernel Kernel) Open(RealGuest g, string format)
    {
        MemoryImage image = g.Open(format);
        var core = new VmiCore(image);
        return (core, LinuxKernel.Open(new CoreGuestMemory(core, image.Vmcoreinfo)));
    }

    [Theory]
    [MemberData(nameof(Images))]
    public void Symbols_equal_every_proc_kallsyms_entry(string variant, string format)
    {
        RealGuest g = fixture.Get(variant);
        (VmiCore core, LinuxKernel kernel) = Open(g, format);
        using (core)
        {
            IReadOnlyList<KernelSymbol> ours = kernel.Symbols.Symbols;
            Assert.True(g.Kallsyms.Count > 50_000, $"the guest printed only {g.Kallsyms.Count} kallsyms lines");
            Assert.Equal(g.Kallsyms.Count, ours.Count);
            for (int i = 0; i < ours.Count; i++)
            {
                (ulong address, char type, string name) = g.Kallsyms[i];
                if (ours[i].Name != name || ours[i].Address != address || ours[i].Type != type)
                {
                    Assert.Fail($"symbol {i}: guest says {address:x} {type} {name}, we say {ours[i].Address:x} {ours[i].Type} {ours[i].Name}");
                }
            }

            Assert.Equal(g.Mode, kernel.Info.PagingMode);
            // images with VMCOREINFO give KERNELOFFSET; the raw image has only a CR3, so the kernel map is scanned
            Assert.Equal(format == "raw" ? "kernel-map page-table scan" : "VMCOREINFO KERNELOFFSET", kernel.Info.TextFoundBy);
            Assert.Equal(0UL, (kernel.Info.TextBase - LinuxKernel.TextLinkAddress) % (2 << 20)); // KASLR slides in 2 MiB steps
            if (format != "raw")
            {
                Assert.True(kernel.Info.VmcoreinfoAgrees, "VMCOREINFO's SYMBOL(_stext) differs from kallsyms' _stext");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Images))]
    public void Processes_equal_the_guests_own_list(string variant, string format)
    {
        RealGuest g = fixture.Get(variant);
        (VmiCore core, LinuxKernel kernel) = Open(g, format);
        using (core)
        {
            var warnings = new List<string>();
            List<LinuxProcess> ours = kernel.GetProcesses(warning: warnings.Add).ToList();
            Assert.Empty(warnings);
            Assert.Equal(0, ours[0].Pid); // init_task, the idle task: not in /proc
            var byPid = ours.Skip(1).ToDictionary(p => p.Pid);
            var truth = g.Tasks.Where(t => t.Pid != g.PrinterPid).ToList();
            // The guest printed its list, then went on: PIDs are handed out in increasing order in a fresh guest, so
            // every task newer than the printing shell started after the list. Those may only be init's "sleep"
            // (its final wait loop) and workqueue workers the kernel adds on demand.
            var later = ours.Where(p => p.Pid > g.PrinterPid).ToList();
            Assert.All(later, p => Assert.True((p.Name == "sleep" && p.Ppid == 1) || (p.Name.StartsWith("kworker/", StringComparison.Ordinal) && p.Ppid == 2),
                $"PID {p.Pid} '{p.Name}' (parent {p.Ppid}) is not in the guest's list and is not one the guest started after printing it"));
            Assert.Equal(truth.Select(t => t.Pid).Order(), byPid.Keys.Where(pid => pid < g.PrinterPid).Order());
            foreach (TruthTask t in truth)
            {
                LinuxProcess p = byPid[t.Pid];
                Assert.Equal(t.Ppid, p.Ppid);
                // /proc shows a busy workqueue worker as "kworker/0:1-events": comm plus the work's queue
                Assert.True(t.Comm == p.Name || (p.Name.StartsWith("kworker/", StringComparison.Ordinal) && t.Comm.StartsWith(p.Name + "-", StringComparison.Ordinal)),
                    $"PID {t.Pid}: the guest says '{t.Comm}', we say '{p.Name}'");
                Assert.Equal(t.StartTicks, (ulong)(p.StartTime.Ticks / 100_000)); // USER_HZ clock ticks
                Assert.Equal(t.Pid, p.Tgid);
                if (t.ArgStart != 0)
                {
                    Assert.NotNull(p.Cr3);
                    Assert.Equal(0u, p.Uid);
                    Assert.NotNull(p.CommandLine); // arg_start..arg_end as the guest's /proc gave them, read through the process's own page tables
                    Assert.Equal(t.ArgEnd - t.ArgStart, (ulong)p.CommandLine.Length + 1);
                }
            }

            // the busy shells init started: their command lines read through their own page tables
            var busy = ours.Where(p => p.Name == "sh" && p.Ppid == 1).ToList();
            Assert.Equal(2, busy.Count);
            Assert.All(busy, p => Assert.Equal("sh -c while :; do :; done", p.CommandLine));
            Assert.Equal("init", byPid[1].Name);
        }
    }

    [Theory]
    [MemberData(nameof(Images))]
    public void Modules_and_their_symbols_equal_proc_modules_and_kallsyms(string variant, string format)
    {
        RealGuest g = fixture.Get(variant);
        (VmiCore core, LinuxKernel kernel) = Open(g, format);
        using (core)
        {
            var warnings = new List<string>();
            List<LinuxModule> ours = kernel.GetModules(warning: warnings.Add).ToList();
            Assert.Empty(warnings);
            Assert.True(g.Modules.Count >= 5, $"the guest printed {g.Modules.Count} modules");
            Assert.Equal(g.Modules.Select(m => (m.Name, m.Base, m.Size)), ours.Select(m => (m.Name, m.Base, m.Size)));
            Assert.All(ours, m => Assert.Equal("Live", m.State));
            AssertModuleSymbols(g.Truth, kernel);
        }
    }

    /// <summary>Every "[module]" line of the guest's /proc/kallsyms equals our module symbols, in order.</summary>
    internal static void AssertModuleSymbols(GuestTruth truth, LinuxKernel kernel)
    {
        var warnings = new List<string>();
        List<LinuxModuleSymbol> ours = kernel.GetModuleSymbols(warning: warnings.Add).ToList();
        Assert.Empty(warnings);
        var modules = truth.Modules.Select(m => m.Name).ToHashSet();
        var expected = truth.ModuleKallsyms.Where(s => modules.Contains(s.Module)).ToList();
        Assert.True(expected.Count > 20, $"the guest printed only {expected.Count} module symbols");
        Assert.Equal(expected.Count, ours.Count);
        for (int i = 0; i < ours.Count; i++)
        {
            (ulong address, char type, string name, string module) = expected[i];
            if (ours[i] != new LinuxModuleSymbol(module, name, address, type))
            {
                Assert.Fail($"module symbol {i}: the guest says {address:x} {type} {name} [{module}], we say {ours[i].Address:x} {ours[i].Type} {ours[i].Name} [{ours[i].Module}]");
            }
        }
    }
}
