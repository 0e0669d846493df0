using Vmi.Core;

namespace Vmi.PowerShell;

/// <summary>Creates the drivers Connect-VmiDomain offers. The one place the cmdlets name a driver type.</summary>
internal static class DriverFactory
{
    public static IVmiDriver CreateMock() => Vmi.Mock.DemoGuest.Create();

    /// <summary>A memory image by content; <paramref name="cr3"/> overrides (or supplies) the image's CR3.</summary>
    public static Vmi.Dump.MemoryImage OpenImage(string path, ulong? cr3) =>
        Vmi.Dump.MemoryImage.Open(path, new Vmi.Dump.MemoryImageOptions { Cr3 = cr3 });
}
