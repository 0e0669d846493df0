using System.Reflection;
using System.Runtime.InteropServices;
using Vmi.Core;
using Vmi.Xen.Native;

namespace Vmi.Xen.Tests.Native;

/// <summary>The Xen libraries installed here (libxen-dev) load by their versioned sonames and export every bound function.</summary>
public sealed class NativeLoadingTests
{
    [Fact]
    public void Libxenctrl_is_tried_newest_first_then_unversioned_with_the_running_hypervisor_first()
    {
        IReadOnlyList<string> names = XenLibraries.CandidateNames(XenLibraries.XenCtrl);
        Assert.Equal("libxenctrl.so.4.30", names[0]);
        Assert.Equal("libxenctrl.so.4.17", names[^2]);
        Assert.Equal("libxenctrl.so", names[^1]);
        Assert.Contains("libxenctrl.so.4.21", names);

        IReadOnlyList<string> onXen418 = XenLibraries.CandidateNames(XenLibraries.XenCtrl, new Version(4, 18));
        Assert.Equal("libxenctrl.so.4.18", onXen418[0]);
        Assert.Single(onXen418, n => n == "libxenctrl.so.4.18");
        Assert.Equal(["libxenevtchn.so.1", "libxenevtchn.so"], XenLibraries.CandidateNames(XenLibraries.EventChannel));
    }

    [Theory]
    [InlineData(XenLibraries.XenCtrl, "libxenctrl.so.4.")]
    [InlineData(XenLibraries.ForeignMemory, "libxenforeignmemory.so.1")]
    [InlineData(XenLibraries.DeviceModel, "libxendevicemodel.so.1")]
    [InlineData(XenLibraries.EventChannel, "libxenevtchn.so.1")]
    [InlineData(XenLibraries.XenStore, "libxenstore.so.4")]
    public void Each_library_loads_from_its_versioned_soname(string library, string sonamePrefix)
    {
        Assert.NotEqual(0, XenLibraries.Load(library));
        Assert.StartsWith(sonamePrefix, XenLibraries.LoadedName(library), StringComparison.Ordinal);
    }

    [Fact]
    public void Every_bound_function_is_exported_by_its_library()
    {
        var missing = new List<string>();
        int count = 0;
        foreach (MethodInfo m in typeof(XenLibraries).Assembly.GetTypes()
            .Where(t => t.Namespace == typeof(XenLibraries).Namespace)
            .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly)))
        {
            LibraryImportAttribute? import = m.GetCustomAttribute<LibraryImportAttribute>();
            if (import is null)
            {
                continue;
            }

            count++;
            string entry = import.EntryPoint ?? m.Name;
            if (!NativeLibrary.TryGetExport(XenLibraries.Load(import.LibraryName), entry, out _))
            {
                missing.Add($"{import.LibraryName}: {entry}");
            }
        }

        Assert.True(count > 50, $"only {count} bindings found");
        Assert.Empty(missing);
    }

    [Fact]
    public void Functions_that_differ_between_releases_are_looked_up_by_what_the_library_exports()
    {
        Version? lib = XenLibraries.VersionOfSoname(LoadedXenctrl());
        Assert.NotNull(lib);
        bool single = XenLibraries.TryGetExport(XenLibraries.XenCtrl, XenCtrl.Optional.DomainGetinfoSingle) != 0;
        bool old = XenLibraries.TryGetExport(XenLibraries.XenCtrl, XenCtrl.Optional.DomainGetinfo) != 0;
        bool io = XenLibraries.TryGetExport(XenLibraries.XenCtrl, XenCtrl.Optional.MonitorIo) != 0;

        // xc_domain_getinfo was replaced by xc_domain_getinfo_single in 4.18, which also added xc_monitor_io.
        Assert.Equal(lib >= new Version(4, 18), single);
        Assert.Equal(lib < new Version(4, 18), old);
        Assert.Equal(lib >= new Version(4, 18), io);
    }

    [Theory]
    [InlineData("libxenctrl.so.4.17", "4.17")]
    [InlineData("libxenctrl.so.4.21", "4.21")]
    [InlineData("libxenctrl.so", null)]
    [InlineData(null, null)]
    public void The_release_is_read_from_the_soname(string? soname, string? version) =>
        Assert.Equal(version is null ? null : Version.Parse(version), XenLibraries.VersionOfSoname(soname));

    [Fact]
    public void Connect_and_list_on_a_machine_without_xen_fail_with_the_clear_error()
    {
        if (File.Exists("/dev/xen/privcmd"))
        {
            // A Xen host: a domain id no host uses is reported as not found, with the domains that exist.
            var notFound = Assert.Throws<VmiDriverException>(() => XenDriver.Connect(XenDomainSelector.ById(32000), XenConnectOptions.Default));
            Assert.Contains("No Xen domain matches domain id 32000", notFound.Message, StringComparison.Ordinal);
            return;
        }

        var ex = Assert.Throws<VmiDriverException>(() => XenDriver.Connect(XenDomainSelector.ByName("win10"), new XenConnectOptions { ReadOnly = true }));
        Assert.Contains("/dev/xen/privcmd is missing", ex.Message, StringComparison.Ordinal);
        Assert.Contains("not a Xen dom0", ex.Message, StringComparison.Ordinal);
        var list = Assert.Throws<VmiDriverException>(() => XenDriver.ListDomains());
        Assert.Equal(ex.Message, list.Message);
    }

    private static string? LoadedXenctrl()
    {
        XenLibraries.Load(XenLibraries.XenCtrl);
        return XenLibraries.LoadedName(XenLibraries.XenCtrl);
    }
}
