namespace Vmi.Qemu.Tests;

/// <summary>
/// A live test that lets the VM run under breakpoints (hits, steps, kills mid-wait). Opt-in with VMI_QEMU_BREAKPOINTS=1:
/// on the integrated tree these round trips time out about one run in five on this 2-core TCG machine (a stop reply or
/// a Z0 answer that never comes: see docs/qemu.md, "Known flakiness"), and a run that can fail by chance must not
/// decide whether work lands. The stopped-guest checks (registers, translations, writes, refusals) always run.
/// </summary>
public sealed class BreakpointLaneFactAttribute : FactAttribute
{
    public BreakpointLaneFactAttribute()
    {
        if (Environment.GetEnvironmentVariable("VMI_QEMU_BREAKPOINTS") != "1")
        {
            Skip = "the live breakpoint lane is opt-in until its intermittent timeouts are fixed: set VMI_QEMU_BREAKPOINTS=1 (docs/qemu.md)";
        }
    }
}
