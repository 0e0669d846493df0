using Vmi.Core;

namespace Vmi.PowerShell;

/// <summary>Creates the drivers Connect-VmiDomain offers. The one place the cmdlets name a driver type.</summary>
internal static class DriverFactory
{
    public static IVmiDriver CreateMock() => Vmi.Mock.DemoGuest.Create();
}
