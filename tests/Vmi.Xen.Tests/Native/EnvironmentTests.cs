using Vmi.Core;
using Vmi.Xen.Native;

namespace Vmi.Xen.Tests.Native;

/// <summary>The checks that run before any library loads, on a file-system root the test builds.</summary>
public sealed class EnvironmentTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("vmi-xen-root").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private void Create(string relative, string content = "")
    {
        string path = Path.Combine(_root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
    }

    [Fact]
    public void No_privcmd_says_this_is_not_a_dom0()
    {
        var ex = Assert.Throws<VmiDriverException>(() => XenEnvironment.CheckHost(_root, isRoot: true));
        Assert.Contains("/dev/xen/privcmd is missing", ex.Message, StringComparison.Ordinal);
        Assert.Contains("modprobe xen-privcmd", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Not_root_says_so_and_how_to_fix_it()
    {
        Create(XenEnvironment.PrivcmdPath);
        var ex = Assert.Throws<VmiDriverException>(() => XenEnvironment.CheckHost(_root, isRoot: false));
        Assert.Contains("needs root", ex.Message, StringComparison.Ordinal);
        Assert.Contains("sudo pwsh", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_domU_is_told_to_run_in_dom0()
    {
        Create(XenEnvironment.PrivcmdPath);
        Create(XenEnvironment.CapabilitiesPath, "\n");
        var ex = Assert.Throws<VmiDriverException>(() => XenEnvironment.CheckHost(_root, isRoot: true));
        Assert.Contains("not dom0", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Dom0_as_root_passes()
    {
        Create(XenEnvironment.PrivcmdPath);
        Create(XenEnvironment.CapabilitiesPath, "control_d\n");
        XenEnvironment.CheckHost(_root, isRoot: true);
    }

    [Fact]
    public void Versions_before_4_17_are_unsupported()
    {
        var ex = Assert.Throws<VmiDriverException>(() => XenEnvironment.CheckVersion(new Version(4, 16), "libxenctrl.so.4.16", false));
        Assert.Contains("Xen 4.16 is not supported", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Releases_4_17_to_4_22_are_supported_with_their_own_tools()
    {
        for (int minor = 17; minor <= 22; minor++)
        {
            XenEnvironment.CheckVersion(new Version(4, minor), $"libxenctrl.so.4.{minor}", false);
        }

        XenEnvironment.CheckVersion(new Version(4, 19), "libxenctrl.so", false); // unversioned: cannot tell
    }

    [Fact]
    public void A_newer_release_needs_an_explicit_opt_in()
    {
        var ex = Assert.Throws<VmiDriverException>(() => XenEnvironment.CheckVersion(new Version(4, 23), "libxenctrl.so.4.23", false));
        Assert.Contains("AllowUntestedXenVersion", ex.Message, StringComparison.Ordinal);
        XenEnvironment.CheckVersion(new Version(4, 23), "libxenctrl.so.4.23", true);
    }

    [Fact]
    public void Tools_of_another_release_are_reported()
    {
        var ex = Assert.Throws<VmiDriverException>(() => XenEnvironment.CheckVersion(new Version(4, 18), "libxenctrl.so.4.17", false));
        Assert.Contains("libxenctrl.so.4.17", ex.Message, StringComparison.Ordinal);
        Assert.Contains("libxenctrl.so.4.18", ex.Message, StringComparison.Ordinal);
    }
}
