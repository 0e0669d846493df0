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
    }

    [Fact]
    public void TheModuleReferencesNoDriverAssembly()
    {
        // Vmi.Dump stays: Save-VmiMemory writes images with its ImageWriter (an acquisition format, not a driver).
        string[] referenced = typeof(VmiSession).Assembly.GetReferencedAssemblies().Select(a => a.Name!).ToArray();
        Assert.Contains("Vmi.Core", referenced);
        Assert.DoesNotContain("Vmi.Xen", referenced);
        Assert.DoesNotContain("Vmi.Mock", referenced);
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
        VmiDriverException none = Assert.Throws<VmiDriverException>(() => VmiDriverRegistry.Open(VmiTarget.Socket("/run/demo.sock")));
        Assert.Contains("No driver opens the socket /run/demo.sock", none.Message, StringComparison.Ordinal);

        VmiDriverRegistry.Register(new SocketProvider());
        VmiOpenedDriver opened = VmiDriverRegistry.Open(VmiTarget.Socket("/run/demo.sock"));
        using (opened.Driver)
        {
            Assert.Equal("demo over a socket", opened.Source);
        }
    }

    private sealed class SocketProvider : IVmiDriverProvider
    {
        public string Name => "TestSocket";

        public VmiTargetKinds Kinds => VmiTargetKinds.Socket;

        public VmiOpenedDriver? TryOpen(VmiTarget target) =>
            target.Path == "/run/demo.sock" ? new VmiOpenedDriver(DemoGuest.Create(), "demo", "demo over a socket") : null;

        public IReadOnlyList<VmiDomainInfo> ListDomains() => [];
    }
}
