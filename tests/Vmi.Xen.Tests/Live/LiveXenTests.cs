using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Xen.Tests.Live;

/// <summary>
/// A test that needs a real Xen host: it runs when VMI_XEN_DOMAIN names a running HVM guest (id or name) and is
/// reported as skipped, with the reason, otherwise. Once the variable is set, an unusable host or domain fails the
/// test. See docs/xen.md.
/// </summary>
public sealed class LiveXenFactAttribute : FactAttribute
{
    public const string Variable = "VMI_XEN_DOMAIN";

    public LiveXenFactAttribute()
    {
        if (string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(Variable)))
        {
            Skip = $"Needs a Xen host: run as root in dom0 with {Variable}=<domain id or name> (docs/xen.md).";
        }
    }
}

/// <summary>Live tests on the guest named by VMI_XEN_DOMAIN. Each leaves the guest as it found it.</summary>
public sealed class LiveXenTests
{
    private static XenDomainSelector Target => XenDomainSelector.Parse(Environment.GetEnvironmentVariable(LiveXenFactAttribute.Variable)!);

    private static bool WithAltp2m => Environment.GetEnvironmentVariable("VMI_XEN_ALTP2M") == "1";

    [LiveXenFact]
    public void The_domain_is_listed()
    {
        IReadOnlyList<XenDomainInfo> all = XenDriver.ListDomains();
        Assert.Contains(all, d => d.Id == 0);
        XenDomainSelector t = Target;
        XenDomainInfo guest = Assert.Single(all, d => t.Id is { } id ? d.Id == id : d.Name == t.Name);
        Assert.True(guest.VcpuCount > 0);
        Assert.True(guest.MemoryBytes > 0);
    }

    [LiveXenFact]
    public void A_read_only_session_reads_registers_and_the_page_tables()
    {
        using XenDriver d = XenDriver.Connect(Target, new XenConnectOptions { ReadOnly = true });
        Registers r = d.GetRegisters(0);
        Assert.NotEqual(0ul, r.Cr0);
        if (r.PagingMode != PagingMode.Disabled)
        {
            Gfn root = new(r.TranslationRoot.Value >> 12);
            Assert.True(d.TryMapPage(root, out MappedPage? page), $"the page-table root {r.TranslationRoot} did not map");
            using (page)
            {
                Assert.Equal(4096, page.Span.Length);
            }
        }

        using var core = new VmiCore(d);
        Assert.True(core.Info.VcpuCount >= 1);
        Assert.Throws<VmiDriverException>(() => d.EnableMonitor(EventMonitor.Cpuid));
    }

    [LiveXenFact]
    public void Access_and_monitors_are_set_seen_and_restored()
    {
        using XenDriver d = XenDriver.Connect(Target, XenConnectOptions.Default);
        Registers r = d.GetRegisters(0);
        Gfn root = new(r.TranslationRoot.Value >> 12);
        MemoryAccess before = d.GetMemoryAccess(root, View.Default);

        d.EnableMonitor(EventMonitor.ControlRegisterWrite(ControlRegister.Cr3));
        int events = 0;
        long deadline = Environment.TickCount64 + 10_000;
        while (events == 0 && Environment.TickCount64 < deadline)
        {
            events += d.WaitForEvents(TimeSpan.FromSeconds(1), e =>
            {
                Assert.IsType<ControlRegisterWriteReason>(e.Reason);
                return VmiEventResponse.Continue;
            });
        }

        Assert.True(events > 0, "no CR3 write was seen in 10 s: is the guest running?");

        d.SetMemoryAccess(root, View.Default, MemoryAccess.RW);
        Assert.Equal(MemoryAccess.RW, d.GetMemoryAccess(root, View.Default));
        d.Pause();
        d.Resume();
        d.ResetState();
        Assert.Equal(before, d.GetMemoryAccess(root, View.Default));
        Assert.Empty(d.EnabledMonitors);
    }

    [LiveXenFact]
    public void Views_are_created_switched_and_destroyed_when_altp2m_is_configured()
    {
        using XenDriver d = XenDriver.Connect(Target, XenConnectOptions.Default);
        if (!WithAltp2m)
        {
            // Without altp2m in the domain's config the driver must say what to configure.
            var ex = Assert.Throws<VmiDriverException>(() => d.CreateView(MemoryAccess.RWX));
            Assert.Contains("altp2m = \"external\"", ex.Message, StringComparison.Ordinal);
            return;
        }

        View v = d.CreateView(MemoryAccess.RWX);
        d.SwitchToView(v);
        d.SwitchToView(View.Default);
        d.DestroyView(v);
        Assert.Empty(d.Views);
    }
}
