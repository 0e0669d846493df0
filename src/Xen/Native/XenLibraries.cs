using System.Collections.Concurrent;
using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using Vmi.Core;

namespace Vmi.Xen.Native;

/// <summary>
/// Finds the Xen libraries by their versioned sonames when a binding is first called, never before:
/// importing the module on a machine without Xen loads nothing. libxenctrl is versioned with Xen itself
/// (libxenctrl.so.4.17, .so.4.18, ...); the running hypervisor's version (from /sys/hypervisor) is tried first,
/// then the newest release downwards, then the unversioned development name.
/// </summary>
internal static class XenLibraries
{
    public const string XenCtrl = "xenctrl";
    public const string ForeignMemory = "xenforeignmemory";
    public const string DeviceModel = "xendevicemodel";
    public const string EventChannel = "xenevtchn";
    public const string XenStore = "xenstore";
    public const string Libc = "c";

    /// <summary>The oldest Xen release the driver supports.</summary>
    public static readonly Version MinimumVersion = new(4, 17);

    /// <summary>The newest Xen release whose interfaces the driver was checked against.</summary>
    public static readonly Version NewestKnownVersion = new(4, 22);

    private const int NewestMinorTried = 30;
    private static readonly ConcurrentDictionary<string, string> s_loaded = new(StringComparer.Ordinal);
    private static readonly ConcurrentDictionary<string, nint> s_handles = new(StringComparer.Ordinal);
    private static int s_registered;

    /// <summary>Installs the resolver for this assembly (once). Loads nothing.</summary>
    public static void EnsureResolver()
    {
        if (Interlocked.Exchange(ref s_registered, 1) == 0)
        {
            NativeLibrary.SetDllImportResolver(typeof(XenLibraries).Assembly, Resolve);
        }
    }

    /// <summary>The file names tried for a library, in order.</summary>
    public static IReadOnlyList<string> CandidateNames(string library, Version? hypervisor = null)
    {
        var names = new List<string>();
        switch (library)
        {
            case XenCtrl:
                if (hypervisor is { Major: 4 } h && h >= MinimumVersion)
                {
                    names.Add(string.Create(CultureInfo.InvariantCulture, $"libxenctrl.so.{h.Major}.{h.Minor}"));
                }

                for (int minor = NewestMinorTried; minor >= MinimumVersion.Minor; minor--)
                {
                    string n = string.Create(CultureInfo.InvariantCulture, $"libxenctrl.so.4.{minor}");
                    if (!names.Contains(n))
                    {
                        names.Add(n);
                    }
                }

                names.Add("libxenctrl.so");
                break;
            case ForeignMemory:
            case DeviceModel:
            case EventChannel:
                names.Add($"lib{library}.so.1");
                names.Add($"lib{library}.so");
                break;
            case XenStore:
                names.Add("libxenstore.so.4");
                names.Add("libxenstore.so");
                break;
            case Libc:
                names.Add("libc.so.6");
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(library), library, "Not a Xen library this driver binds.");
        }

        return names;
    }

    /// <summary>The file a library was loaded from (e.g. "libxenctrl.so.4.17"), or null if it has not been loaded.</summary>
    public static string? LoadedName(string library) => s_loaded.TryGetValue(library, out string? n) ? n : null;

    /// <summary>
    /// Loads <paramref name="library"/> (or returns it loaded). Throws <see cref="VmiDriverException"/> naming the
    /// files tried and the package to install when none loads.
    /// </summary>
    public static nint Load(string library)
    {
        if (s_handles.TryGetValue(library, out nint h))
        {
            return h;
        }

        IReadOnlyList<string> names = CandidateNames(library, HypervisorVersionFromSysfs());
        foreach (string name in names)
        {
            if (NativeLibrary.TryLoad(name, out h))
            {
                s_loaded[library] = name;
                return s_handles.GetOrAdd(library, h);
            }
        }

        throw new VmiDriverException(
            $"The Xen library lib{library} could not be loaded (tried {string.Join(", ", names)}). " +
            "Install the Xen tools of the running hypervisor (Debian/Ubuntu: apt-get install libxen-dev, or the xen-utils package).");
    }

    /// <summary>An optional export (present in some Xen releases only), or 0.</summary>
    public static nint TryGetExport(string library, string name) =>
        NativeLibrary.TryGetExport(Load(library), name, out nint address) ? address : 0;

    /// <summary>The hypervisor version from /sys/hypervisor/version (dom0 kernels with the Xen sysfs driver), or null.</summary>
    public static Version? HypervisorVersionFromSysfs()
    {
        try
        {
            string major = File.ReadAllText("/sys/hypervisor/version/major").Trim();
            string minor = File.ReadAllText("/sys/hypervisor/version/minor").Trim();
            return new Version(int.Parse(major, CultureInfo.InvariantCulture), int.Parse(minor, CultureInfo.InvariantCulture));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or OverflowException)
        {
            return null;
        }
    }

    /// <summary>The version in a libxenctrl file name ("libxenctrl.so.4.17" gives 4.17), or null for the unversioned name.</summary>
    public static Version? VersionOfSoname(string? soname)
    {
        const string prefix = "libxenctrl.so.";
        if (soname is null || !soname.StartsWith(prefix, StringComparison.Ordinal))
        {
            return null;
        }

        return Version.TryParse(soname[prefix.Length..], out Version? v) ? new Version(v.Major, v.Minor) : null;
    }

    private static nint Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath) => libraryName switch
    {
        XenCtrl or ForeignMemory or DeviceModel or EventChannel or XenStore or Libc => Load(libraryName),
        _ => 0,
    };
}
