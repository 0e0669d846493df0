using System.Reflection;
using System.Runtime.Loader;

namespace Vmi.Core.Drivers;

/// <summary>What kinds of target a provider opens.</summary>
[Flags]
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum VmiTargetKinds
{
    None = 0,

    /// <summary>A memory image file, recognised by its content.</summary>
    File = 1,

    /// <summary>A domain of a hypervisor on this host, by name or id.</summary>
    Domain = 2,

    /// <summary>A control socket (QEMU's QMP) by path.</summary>
    Socket = 4,

    /// <summary>A guest built in, by name ("mock").</summary>
    Builtin = 8,
}

/// <summary>What to open: one of a file, a domain (by name or id), a socket, or a built-in guest.</summary>
public sealed record VmiTarget
{
    private VmiTarget(VmiTargetKinds kind) => Kind = kind;

    public VmiTargetKinds Kind { get; }

    /// <summary>The domain's or built-in guest's name.</summary>
    public string? Name { get; private init; }

    /// <summary>The domain's id.</summary>
    public uint? Id { get; private init; }

    /// <summary>The file's or socket's path (already resolved to a file-system path).</summary>
    public string? Path { get; private init; }

    /// <summary>The page-table root to use instead of (or for lack of) the image's own.</summary>
    public ulong? Cr3 { get; init; }

    /// <summary>The guest will be opened read-only: a driver that can, opens it so (and changes nothing meanwhile).</summary>
    public bool ReadOnly { get; init; }

    public static VmiTarget File(string path) => new(VmiTargetKinds.File) { Path = NotEmpty(path, nameof(path)) };

    public static VmiTarget DomainByName(string name) => new(VmiTargetKinds.Domain) { Name = NotEmpty(name, nameof(name)) };

    public static VmiTarget DomainById(uint id) => new(VmiTargetKinds.Domain) { Id = id };

    public static VmiTarget Socket(string path) => new(VmiTargetKinds.Socket) { Path = NotEmpty(path, nameof(path)) };

    public static VmiTarget Builtin(string name) => new(VmiTargetKinds.Builtin) { Name = NotEmpty(name, nameof(name)) };

    public override string ToString() => Kind switch
    {
        VmiTargetKinds.File => $"the image {Path}",
        VmiTargetKinds.Domain => Id is { } id ? $"domain {id}" : $"domain '{Name}'",
        VmiTargetKinds.Socket => $"the socket {Path}",
        _ => $"the built-in guest '{Name}'",
    };

    private static string NotEmpty(string value, string name) =>
        string.IsNullOrWhiteSpace(value) ? throw new ArgumentException("Give a non-empty value.", name) : value;
}

/// <summary>A driver opened for a target: the driver, a short name for the session, and what it is connected to.</summary>
public sealed record VmiOpenedDriver(IVmiDriver Driver, string Name, string Source)
{
    /// <summary>Something the user should know about the target as it was found (a domain left changed by an earlier session).</summary>
    public string? Notice { get; init; }
}

/// <summary>One domain of a hypervisor on this host.</summary>
public sealed record VmiDomainInfo(string Hypervisor, uint Id, string Name, int VcpuCount, ulong MemoryBytes, string State, bool CanIntrospect);

/// <summary>
/// Opens one kind of target. A driver assembly declares its provider with <see cref="VmiDriverProviderAttribute"/>;
/// the registry finds it, so nothing above the engine names a driver type.
/// </summary>
public interface IVmiDriverProvider
{
    /// <summary>The driver's name, e.g. "Xen", "Dump", "Mock" (also the stem of error ids: Vmi.XenUnavailable).</summary>
    string Name { get; }

    VmiTargetKinds Kinds { get; }

    /// <summary>
    /// Opens <paramref name="target"/>, or returns null when it is not this provider's (a file of another format, another
    /// built-in name). Throws <see cref="VmiDriverUnavailableException"/> when this host cannot run the driver, and
    /// <see cref="VmiException"/> (or IO exceptions) for real failures; nothing stays open when it throws.
    /// </summary>
    VmiOpenedDriver? TryOpen(VmiTarget target);

    /// <summary>The domains on this host (providers of <see cref="VmiTargetKinds.Domain"/>; others return none).</summary>
    IReadOnlyList<VmiDomainInfo> ListDomains();
}

/// <summary>Declares a driver provider in a driver assembly: <c>[assembly: VmiDriverProvider(typeof(XenDriverProvider))]</c>.</summary>
[AttributeUsage(AttributeTargets.Assembly, AllowMultiple = true)]
public sealed class VmiDriverProviderAttribute(Type providerType) : Attribute
{
    /// <summary>A public class implementing <see cref="IVmiDriverProvider"/> with a public parameterless constructor.</summary>
    public Type ProviderType { get; } = providerType;

    /// <summary>Lower comes first when more than one provider could open a target (a format-specific image reader before a raw one).</summary>
    public int Order { get; init; }
}

/// <summary>This host cannot run a driver (no hypervisor, not privileged, libraries missing): the message says which.</summary>
public sealed class VmiDriverUnavailableException(string driverName, string message, Exception? innerException = null)
    : VmiException(message, innerException)
{
    public string DriverName { get; } = driverName;
}

/// <summary>
/// The drivers this process can use: every <see cref="VmiDriverProviderAttribute"/> in the Vmi.*.dll assemblies beside
/// Vmi.Core.dll (loaded into Core's load context), plus any registered explicitly. Thread-safe.
/// </summary>
public static class VmiDriverRegistry
{
    private static readonly object Gate = new();
    private static List<(IVmiDriverProvider Provider, int Order)>? s_providers;

    /// <summary>Every provider, in the order they are tried.</summary>
    public static IReadOnlyList<IVmiDriverProvider> Providers
    {
        get
        {
            lock (Gate)
            {
                return Discover().Select(p => p.Provider).ToArray();
            }
        }
    }

    /// <summary>Adds a provider (a test's, or one from an assembly elsewhere); it is tried after those of lower order.</summary>
    public static void Register(IVmiDriverProvider provider, int order = 0)
    {
        ArgumentNullException.ThrowIfNull(provider);
        lock (Gate)
        {
            List<(IVmiDriverProvider Provider, int Order)> all = Discover();
            if (all.Any(p => p.Provider.GetType() == provider.GetType()))
            {
                return;
            }

            all.Add((provider, order));
            all.Sort((a, b) => a.Order.CompareTo(b.Order));
        }
    }

    /// <summary>Opens <paramref name="target"/> with the first provider that takes it.</summary>
    public static VmiOpenedDriver Open(VmiTarget target)
    {
        ArgumentNullException.ThrowIfNull(target);
        IVmiDriverProvider[] candidates = Providers.Where(p => (p.Kinds & target.Kind) != 0).ToArray();
        VmiDriverUnavailableException? unavailable = null;
        foreach (IVmiDriverProvider provider in candidates)
        {
            try
            {
                if (provider.TryOpen(target) is { } opened)
                {
                    return opened;
                }
            }
            catch (VmiDriverUnavailableException e) when (candidates.Length > 1)
            {
                unavailable ??= e; // another provider of this kind may work here
            }
        }

        if (unavailable is not null)
        {
            throw unavailable;
        }

        string known = string.Join(", ", Providers.Select(p => $"{p.Name} ({p.Kinds})"));
        throw new VmiDriverException(candidates.Length == 0
            ? $"No driver opens {target}: the drivers found are {(known.Length == 0 ? "none" : known)}."
            : $"No driver recognised {target} (tried {string.Join(", ", candidates.Select(p => p.Name))}).");
    }

    /// <summary>
    /// The domains of every hypervisor on this host. Throws the first provider's <see cref="VmiDriverUnavailableException"/>
    /// when no hypervisor driver can run here.
    /// </summary>
    public static IReadOnlyList<VmiDomainInfo> ListDomains()
    {
        var all = new List<VmiDomainInfo>();
        VmiDriverUnavailableException? unavailable = null;
        bool any = false;
        foreach (IVmiDriverProvider provider in Providers.Where(p => (p.Kinds & VmiTargetKinds.Domain) != 0))
        {
            try
            {
                all.AddRange(provider.ListDomains());
                any = true;
            }
            catch (VmiDriverUnavailableException e)
            {
                unavailable ??= e;
            }
        }

        if (!any && unavailable is not null)
        {
            throw unavailable;
        }

        return all;
    }

    private static List<(IVmiDriverProvider Provider, int Order)> Discover()
    {
        if (s_providers is not null)
        {
            return s_providers;
        }

        var found = new List<(IVmiDriverProvider, int)>();
        Assembly core = typeof(VmiDriverRegistry).Assembly;
        AssemblyLoadContext context = AssemblyLoadContext.GetLoadContext(core) ?? AssemblyLoadContext.Default;
        string? directory = Path.GetDirectoryName(core.Location);
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        IEnumerable<Assembly> candidates = context.Assemblies.Where(a => a.GetName().Name?.StartsWith("Vmi.", StringComparison.Ordinal) == true);
        foreach (Assembly a in candidates.ToArray())
        {
            seen.Add(a.GetName().Name!);
            Collect(a, found);
        }

        if (!string.IsNullOrEmpty(directory) && Directory.Exists(directory))
        {
            foreach (string file in Directory.EnumerateFiles(directory, "Vmi.*.dll").Order(StringComparer.Ordinal))
            {
                string name = Path.GetFileNameWithoutExtension(file);
                if (!seen.Add(name))
                {
                    continue;
                }

                Assembly assembly;
                try
                {
                    assembly = context.LoadFromAssemblyPath(file);
                }
                catch (Exception e) when (e is BadImageFormatException or FileLoadException or FileNotFoundException)
                {
                    continue; // not a .NET assembly, or one this runtime cannot load: it declares no driver
                }

                Collect(assembly, found);
            }
        }

        found.Sort((a, b) => a.Item2.CompareTo(b.Item2));
        s_providers = found;
        return found;
    }

    private static void Collect(Assembly assembly, List<(IVmiDriverProvider, int)> into)
    {
        foreach (VmiDriverProviderAttribute attribute in assembly.GetCustomAttributes<VmiDriverProviderAttribute>())
        {
            if (!typeof(IVmiDriverProvider).IsAssignableFrom(attribute.ProviderType))
            {
                throw new InvalidOperationException($"{assembly.GetName().Name} declares {attribute.ProviderType} as a driver provider, but it does not implement {nameof(IVmiDriverProvider)}.");
            }

            if (into.Any(p => p.Item1.GetType() == attribute.ProviderType))
            {
                continue;
            }

            into.Add(((IVmiDriverProvider)Activator.CreateInstance(attribute.ProviderType)!, attribute.Order));
        }
    }
}
