using Vmi.Core;

namespace Vmi.Xen.Native;

/// <summary>
/// Checks, before any native library is loaded, that this process can talk to Xen, and says what is
/// missing when it cannot: not Linux, no /dev/xen/privcmd (no hypervisor, or not dom0's kernel), not root, not dom0.
/// </summary>
internal static class XenEnvironment
{
    public const string PrivcmdPath = "dev/xen/privcmd";
    public const string CapabilitiesPath = "proc/xen/capabilities";

    /// <param name="root">The file-system root to look under ("/" normally; tests give a directory of their own).</param>
    /// <param name="isRoot">Whether the process runs as root (normally <see cref="Environment.IsPrivilegedProcess"/>).</param>
    public static void CheckHost(string root = "/", bool? isRoot = null)
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new VmiDriverException(
                "The Xen driver runs in dom0 of a Xen host, which runs Linux; this machine runs " +
                System.Runtime.InteropServices.RuntimeInformation.OSDescription + ". Open a memory image or the mock guest instead.");
        }

        string privcmd = Path.Combine(root, PrivcmdPath);
        if (!File.Exists(privcmd))
        {
            throw new VmiDriverException(
                $"/{PrivcmdPath} is missing: this machine is not a Xen dom0. Either no Xen hypervisor is running (boot the Xen entry of the boot menu), " +
                "or the kernel's Xen privcmd driver is not loaded (modprobe xen-privcmd; mount -t xenfs xenfs /proc/xen).",
                XenErrors.ENoEnt);
        }

        if (!(isRoot ?? Environment.IsPrivilegedProcess))
        {
            throw new VmiDriverException(
                $"Introspecting Xen domains needs root: /{PrivcmdPath} and the hypervisor's control calls are root-only. Run PowerShell as root (sudo pwsh).",
                XenErrors.EPerm);
        }

        string capabilities = Path.Combine(root, CapabilitiesPath);
        if (File.Exists(capabilities))
        {
            string caps;
            try
            {
                caps = File.ReadAllText(capabilities);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                return; // cannot tell; the first hypervisor call will say
            }

            if (!caps.Contains("control_d", StringComparison.Ordinal))
            {
                throw new VmiDriverException(
                    $"This machine is a Xen guest (domU), not dom0 (/{CapabilitiesPath} lacks control_d). Run introspection in dom0, the domain that controls the others.",
                    XenErrors.EPerm);
            }
        }
    }

    /// <summary>Throws when the hypervisor's version is outside what the driver supports, or libxenctrl is of another release.</summary>
    public static void CheckVersion(Version hypervisor, string? libxenctrlName, bool allowUntested)
    {
        if (hypervisor < XenLibraries.MinimumVersion)
        {
            throw new VmiDriverException(
                $"Xen {hypervisor} is not supported: the driver needs Xen {XenLibraries.MinimumVersion} or later (vm_event interface {Native.VmEventAbi.InterfaceVersion}). Upgrade the hypervisor and its tools.");
        }

        if (hypervisor > XenLibraries.NewestKnownVersion && !allowUntested)
        {
            throw new VmiDriverException(
                $"Xen {hypervisor} is newer than the newest release this driver was checked against ({XenLibraries.NewestKnownVersion}). " +
                "Connect with AllowUntestedXenVersion (-AllowUntestedXenVersion) to try it: the vm_event interface version is still checked on every event.");
        }

        Version? lib = XenLibraries.VersionOfSoname(libxenctrlName);
        if (lib is not null && lib != new Version(hypervisor.Major, hypervisor.Minor))
        {
            throw new VmiDriverException(
                $"{libxenctrlName} (Xen {lib} tools) is loaded but the hypervisor is Xen {hypervisor}: the control interface differs between releases. " +
                $"Install the Xen tools of the running hypervisor (libxenctrl.so.{hypervisor.Major}.{hypervisor.Minor}).");
        }
    }
}
