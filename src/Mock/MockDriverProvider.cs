using Vmi.Core;
using Vmi.Core.Drivers;

[assembly: VmiDriverProvider(typeof(Vmi.Mock.MockDriverProvider))]

namespace Vmi.Mock;

/// <summary>Opens the built-in demo guest, by the name "mock".</summary>
public sealed class MockDriverProvider : IVmiDriverProvider
{
    public const string BuiltinName = "mock";

    public string Name => "Mock";

    public VmiTargetKinds Kinds => VmiTargetKinds.Builtin;

    public VmiOpenedDriver? TryOpen(VmiTarget target)
    {
        ArgumentNullException.ThrowIfNull(target);
        return target.Kind == VmiTargetKinds.Builtin && string.Equals(target.Name, BuiltinName, StringComparison.OrdinalIgnoreCase)
            ? new VmiOpenedDriver(DemoGuest.Create(), BuiltinName, "the built-in demo guest")
            : null;
    }

    public IReadOnlyList<VmiDomainInfo> ListDomains() => [];
}
