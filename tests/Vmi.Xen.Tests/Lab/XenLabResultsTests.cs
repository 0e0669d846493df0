namespace Vmi.Xen.Tests.Lab;

/// <summary>
/// A step of the Xen lab (tests/xen-lab): runs when VMI_XENLAB_RESULTS names the results file of a lab run (./test.sh
/// runs the lab wherever it can and sets it) and is reported as skipped, with the reason, otherwise: the lab's own
/// (VMI_XENLAB_SKIPPED, from ./test.sh) when this machine cannot run it.
/// </summary>
public sealed class XenLabTheoryAttribute : TheoryAttribute
{
    public const string Variable = "VMI_XENLAB_RESULTS";

    public XenLabTheoryAttribute()
    {
        if (string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(Variable)))
        {
            string? why = Environment.GetEnvironmentVariable("VMI_XENLAB_SKIPPED");
            Skip = string.IsNullOrWhiteSpace(why)
                ? $"The Xen 4.17 lab did not run: ./test.sh runs it unless VMI_XENLAB=0 (root, qemu-system-x86_64, ~6 GB; docs/xen.md), then {Variable} names its results."
                : $"The Xen 4.17 lab cannot run on this machine: {why} (docs/xen.md).";
        }
    }
}

/// <summary>
/// The lab's results, one test per step, so they count in ./test.sh's summary. Each step was checked inside dom0 from
/// outside the driver (the guest's own serial output, xl, xen-hvmctx, xenstore, a second process); the list is fixed
/// here, so a step the lab did not reach fails instead of disappearing.
/// </summary>
public sealed class XenLabResultsTests
{
    private static readonly string[] ExitPaths = ["disconnect", "exception", "sigint", "sigterm", "sighup", "sigkill"];

    public static TheoryData<string> Steps()
    {
        var steps = new TheoryData<string>
        {
            "env-xen", "env-other-processes", "guest-probe-tsd-baseline", "guest-probe-cpuid-baseline",
            "read-guest-mark-physical", "translate-direct-map", "translate-kernel-text", "registers-equal-xen-hvmctx", "pause-guard",
            "read-only-refuses-writes", "read-only-refuses-pause", "write-seen-by-guest", "set-register-seen-by-xen", "set-register-guest-runs", "refusal-singlestep", "refusal-mem-access", "refusal-efer-monitor",
            "monitor-cr3", "monitor-cpuid-steps-past", "monitor-cpuid-set-registers",
            "exit-sigkill-record-left", "exit-sigkill-reclaimed", "exit-disconnect-restored-before-exit",
            "guest-crashed-preserved", "postmortem-read-only", "postmortem-read-write-refused", "postmortem-equals-xl-dump-core",
            "boot-event-Cr0", "boot-event-Cr4", "boot-event-Msr:0xC0000081", "boot-event-Msr:0xC0000082", "boot-event-Cpuid",
            "boot-event-DescriptorAccess", "boot-cpuid-leaves", "guest-boots-under-monitors", "cr4-write-denied-seen-by-guest", "cr4-deny-ends-with-session",
            "pvh-boots", "pvh-read-only", "pvh-monitor-and-restore",
        };
        foreach (string how in ExitPaths)
        {
            steps.Add($"exit-{how}-not-paused");
            steps.Add($"exit-{how}-not-frozen");
            steps.Add($"exit-{how}-no-record");
            steps.Add($"exit-{how}-ring-free");
            steps.Add($"exit-{how}-int3-set");
            steps.Add($"exit-{how}-no-int3");
            if (how != "sigkill")
            {
                steps.Add($"exit-{how}-exit-code");
            }
        }

        return steps;
    }

    private static readonly Lazy<string[]> Lines = new(() =>
    {
        string path = Environment.GetEnvironmentVariable(XenLabTheoryAttribute.Variable)!;
        Assert.True(File.Exists(path), $"The Xen lab ran but left no results at {path}: it did not reach its tests (see artifacts/xen-lab/serial.log).");
        return File.ReadAllLines(path);
    });

    [XenLabTheory]
    [MemberData(nameof(Steps))]
    public void Step_passed_in_the_lab(string step)
    {
        string[] results = Lines.Value.Where(l => l.StartsWith($"R {step} ", StringComparison.Ordinal)).ToArray();
        if (results.Length == 0)
        {
            // Say why the lab did not get there: an environment failure (ENV) or the run ending early.
            string[] why = Lines.Value.Where(l => l.Contains(" ENV ", StringComparison.Ordinal) || l.StartsWith("R lab-complete ", StringComparison.Ordinal)).ToArray();
            Assert.Fail($"The lab has no result for '{step}': it did not get that far (see artifacts/xen-lab/serial.log and logs/)."
                + (why.Length > 0 ? " In this run: " + string.Join(" | ", why) : string.Empty));
        }

        foreach (string line in results)
        {
            string[] f = line.Split(' ', 4);
            string status = f[2];
            string detail = f.Length > 3 ? f[3] : string.Empty;
            Assert.True(status == "PASS", status == "ENV" ? $"The nested environment failed at '{step}' (not the driver): {detail}" : $"'{step}' failed: {detail}");
        }
    }

    [XenLabTheory]
    [MemberData(nameof(Processes))]
    public void No_vmi_process_crashed_or_hung(string label)
    {
        // "<label>-process FAIL": vmi crashed or hung after its script started (the driver); "<label>-process ENV": it never
        // started its script in three tries (the environment). A start that died and was retried successfully is only
        // reported ("<label>-start ENV"), since the retry did the work.
        string[] bad = Lines.Value.Where(l => l.StartsWith($"R {label}-process ", StringComparison.Ordinal)).ToArray();
        Assert.True(bad.Length == 0, string.Join(Environment.NewLine, bad.Select(l => l.Contains(" ENV ", StringComparison.Ordinal) ? "The nested environment (not the driver): " + l : "The driver: " + l)));
    }

    public static TheoryData<string> Processes() =>
        new() { "live", "final", "exit-exception", "exit-sigkill", "exit-sigterm", "exit-sighup", "exit-sigint", "exit-disconnect" };
}
