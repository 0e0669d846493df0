using Vmi.Core;
using Vmi.Core.Drivers;
using Vmi.Mock;

namespace Vmi.PowerShell.Tests;

/// <summary>Drivers are found by the engine: each driver assembly declares its provider; the module names none.</summary>
public sealed class DriverRegistryTests
{
    [Fact]
    public void EveryDriverBesideTheEngineIsFoundByItsAssemblyAttribute()
    {
        IReadOnlyList<IVmiDriverProvider> providers = VmiDriverRegistry.Providers;
        Assert.Contains(providers, p => p.Name == "Mock" && p.Kinds == VmiTargetKinds.Builtin);
        Assert.Contains(providers, p => p.Name == "Dump" && p.Kinds == VmiTargetKinds.File);
        Assert.Contains(providers, p => p.Name == "Xen" && p.Kinds == VmiTargetKinds.Domain);
        Assert.Contains(providers, p => p.Name == "Qemu" && p.Kinds == VmiTargetKinds.Socket);
    }

    [Fact]
    public void TheModuleReferencesNoDriverAssembly()
    {
        // Vmi.Dump stays: Save-VmiMemory writes images with its ImageWriter (an acquisition format, not a driver).
        string[] referenced = typeof(VmiSession).Assembly.GetReferencedAssemblies().Select(a => a.Name!).ToArray();
        Assert.Contains("Vmi.Core", referenced);
        Assert.DoesNotContain("Vmi.Xen", referenced);
        Assert.DoesNotContain("Vmi.Mock", referenced);
        Assert.DoesNotContain("Vmi.Qemu", referenced);
    }

    [Fact]
    public void TheBuiltInGuestOpensByNameAndAnUnknownTargetSaysWhatWasTried()
    {
        VmiOpenedDriver opened = VmiDriverRegistry.Open(VmiTarget.Builtin("mock"));
        using (opened.Driver)
        {
            Assert.IsType<MockGuest>(opened.Driver);
            Assert.Equal("mock", opened.Name);
        }

        VmiDriverException unknown = Assert.Throws<VmiDriverException>(() => VmiDriverRegistry.Open(VmiTarget.Builtin("nothing")));
        Assert.Contains("'nothing'", unknown.Message, StringComparison.Ordinal);
        Assert.Contains("Mock", unknown.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ANewKindOfTargetNeedsOnlyAProvider()
    {
        VmiDriverException none = Assert.Throws<VmiDriverException>(() => VmiDriverRegistry.Open(VmiTarget.Builtin("demo-test")));
        Assert.Contains("No driver recognised the built-in guest 'demo-test'", none.Message, StringComparison.Ordinal);

        VmiDriverRegistry.Register(new TestProvider());
        VmiOpenedDriver opened = VmiDriverRegistry.Open(VmiTarget.Builtin("demo-test"));
        using (opened.Driver)
        {
            Assert.Equal("a test provider's demo", opened.Source);
        }
    }

    private sealed class TestProvider : IVmiDriverProvider
    {
        public string Name => "Test";

        public VmiTargetKinds Kinds => VmiTargetKinds.Builtin;

        public VmiOpenedDriver? TryOpen(VmiTarget target) =>
            target.Name == "demo-test" ? new VmiOpenedDriver(DemoGuest.Create(), "demo", "a test provider's demo") : null;

        public IReadOnlyList<VmiDomainInfo> ListDomains() => [];
    }
}
