using System.Diagnostics;
using System.Text.RegularExpressions;
using Vmi.Core;

namespace Vmi.Dump.Tests;

/// <summary>
/// The issue asks that our ELF cores be readable by other tools, not only by our own driver. The crash utility
/// (Debian's `crash`, with the guest kernel's debug symbols from `linux-image-&lt;release&gt;-dbg`) reads QEMU's
/// dump of the real guest and the dump our writer makes of it; it must tell the same story from both: system
/// information, the end of the kernel log, the task list.
/// </summary>
[Collection("RealGuest")]
public sealed partial class CrashInteropTests(RealGuestFixture fixture)
{
    [Theory]
    [InlineData("kaslr")]
    [InlineData("la57")]
    public void Crash_reads_our_elf_core_as_it_reads_qemus(string variant)
    {
        GuestData g = fixture.Get(variant);
        string release;
        using (MemoryImage qemu = MemoryImage.Open(g.Image("guest.elf")))
        {
            release = (qemu.Vmcoreinfo ?? throw new InvalidOperationException("QEMU's dump has no VMCOREINFO"))
                .Split('\n').Select(l => l.Trim()).First(l => l.StartsWith("OSRELEASE=", StringComparison.Ordinal))["OSRELEASE=".Length..];
        }

        string vmlinux = $"/usr/lib/debug/boot/vmlinux-{release}";
        Assert.True(File.Exists("/usr/bin/crash"), "crash is not installed: apt-get install crash (tests/deps.sh installs it)");
        Assert.True(File.Exists(vmlinux), $"{vmlinux} is missing: apt-get install linux-image-{release}-dbg (tests/deps.sh installs it)");

        string ours = Path.Combine(Path.GetTempPath(), $"vmi-crash-{variant}-{Environment.ProcessId}.elf");
        try
        {
            using (MemoryImage source = MemoryImage.Open(g.Image("guest.elf")))
            using (var core = new VmiCore(source))
            using (var f = new FileStream(ours, FileMode.Create))
            {
                ImageWriter.Write(core, f, ImageFormat.ElfCore, null, CancellationToken.None);
            }

            string fromQemu = Crash(vmlinux, g.Image("guest.elf"));
            string fromOurs = Crash(vmlinux, ours);

            // Something real came out: the release, a kernel log line, a task.
            Assert.Contains($"RELEASE: {release}", fromQemu, StringComparison.Ordinal);
            Assert.Matches(@"\[\s*\d+\.\d+\]", fromQemu);
            Assert.Contains("swapper/0", fromQemu, StringComparison.Ordinal);
            Assert.Equal(Normalise(fromQemu, g.Image("guest.elf")), Normalise(fromOurs, ours));
        }
        finally
        {
            File.Delete(ours);
        }
    }

    private static string Normalise(string output, string dumpFile) =>
        Blank().Replace(output.Replace(dumpFile, "<dump>", StringComparison.Ordinal), "\n").Trim();

    [GeneratedRegex(@"\n\s*\n")]
    private static partial Regex Blank();

    private static string Crash(string vmlinux, string dump)
    {
        var psi = new ProcessStartInfo("crash", ["-s", vmlinux, dump])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        psi.Environment["TERM"] = "dumb";
        using Process p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start crash");
        Task<string> output = p.StandardOutput.ReadToEndAsync();
        Task<string> error = p.StandardError.ReadToEndAsync();
        p.StandardInput.Write("sys\nlog | tail -n 5\nps\nquit\n");
        p.StandardInput.Close();
        // A hang guard only: crash reads ~860 MB of debug info, which took over 3 minutes at load 75 on 2 cores.
        if (!p.WaitForExit(TimeSpan.FromMinutes(15)))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"crash did not finish reading {dump} in 15 minutes");
        }

        string text = output.Result + error.Result;
        Assert.True(p.ExitCode == 0, $"crash failed on {dump} (exit {p.ExitCode}):\n{text}");
        return text;
    }
}
