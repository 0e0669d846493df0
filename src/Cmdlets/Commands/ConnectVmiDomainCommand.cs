using System.Management.Automation;
using Vmi.Core;

namespace Vmi.PowerShell.Commands;

/// <summary>
/// Connects to a guest and returns a session, which becomes the default for the other cmdlets.
/// Parameter sets: Name and Id (a Xen domain on this host), Mock (the built-in demo guest) and Path (a memory image,
/// its format picked from its content), each creating its driver in <see cref="CreateDriver"/>.
/// </summary>
[Cmdlet(VerbsCommunications.Connect, "VmiDomain", DefaultParameterSetName = MockSet)]
[OutputType(typeof(VmiSession))]
public sealed class ConnectVmiDomainCommand : PSCmdlet
{
    public const string MockSet = "Mock";
    public const string PathSet = "Path";
    public const string NameSet = "Name";
    public const string IdSet = "Id";
    public const string QmpSet = "Qmp";

    /// <summary>A QEMU/KVM VM by its QMP socket: a unix socket path (-qmp unix:PATH,server=on,wait=off) or HOST:PORT.</summary>
    [Parameter(Mandatory = true, ParameterSetName = QmpSet)]
    [ValidateNotNullOrEmpty]
    public string? Qmp { get; set; }

    /// <summary>A Xen domain by name (as xl list shows it).</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = NameSet)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(VmiDomainNameCompleter))]
    public string? Name { get; set; }

    /// <summary>A Xen domain by id; binds the Id of a Get-VmiDomain record.</summary>
    [Parameter(Mandatory = true, ParameterSetName = IdSet, ValueFromPipelineByPropertyName = true)]
    public uint Id { get; set; }

    /// <summary>A memory image: raw, ELF core (QEMU, /proc/vmcore), kdump, LiME or Xen dump-core, recognised by content.</summary>
    [Parameter(Mandatory = true, ParameterSetName = PathSet)]
    [ValidateNotNullOrEmpty]
    public string? Path { get; set; }

    /// <summary>The page-table root to use instead of the image's own CR3 (or for images that carry none, such as raw and LiME).</summary>
    [Parameter(ParameterSetName = PathSet)]
    [VmiAddressTransformation]
    public ulong? Cr3 { get; set; }

    /// <summary>Connect to the built-in demo guest (page tables, strings, four vCPUs, scripted events).</summary>
    [Parameter(Mandatory = true, ParameterSetName = MockSet)]
    public SwitchParameter Mock { get; set; }

    /// <summary>Refuse every change to the guest (writes, access changes, views, monitors, pause).</summary>
    [Parameter]
    public SwitchParameter ReadOnly { get; set; }

    /// <summary>The session's name (default: the domain name, the image file name, or "mock").</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? SessionName { get; set; }

    /// <summary>Entries in each of the session's caches (GFN pages, V2P translations).</summary>
    [Parameter]
    [ValidateRange(1, 1 << 24)]
    public int CacheSize { get; set; } = VmiCore.DefaultCacheCapacity;

    protected override void ProcessRecord()
    {
        IVmiDriver? driver = null;
        VmiCore? core = null;
        VmiSession? session = null;
        string source = ParameterSetName;
        try
        {
            (driver, string name, source) = CreateDriver();
            core = new VmiCore(driver, CacheSize);
            session = new VmiSession(core, SessionName ?? name, source, ReadOnly, VmiSessionRegistry.CurrentRunspaceId);
            VmiSessionRegistry.Add(session);
        }
        catch (Exception e) when (e is VmiException or ArgumentException or IOException or UnauthorizedAccessException or DllNotFoundException or InvalidOperationException)
        {
            // Clean up on partial failure: whatever was opened is released before the error is reported.
            if (core is not null)
            {
                core.Dispose();
            }
            else
            {
                driver?.Dispose();
            }

            ThrowTerminatingError(VmiErrors.FromException(e, source));
        }

        WriteObject(session);
    }

    private (IVmiDriver Driver, string Name, string Source) CreateImage()
    {
        string path = GetUnresolvedProviderPathFromPSPath(Path!);
        Vmi.Dump.MemoryImage image = DriverFactory.OpenImage(path, Cr3);
        return (image, System.IO.Path.GetFileName(path), $"{image.Name} {path}");
    }

    private (IVmiDriver Driver, string Name, string Source) CreateXen(Vmi.Xen.XenDomainSelector selector)
    {
        Vmi.Xen.XenDriver xen = DriverFactory.ConnectXen(selector, ReadOnly);
        Vmi.Xen.XenDomainInfo d = xen.Domain;
        if (xen.Notice is { } notice)
        {
            WriteWarning(notice); // a domain left changed by a killed vmi: what was undone, or what a read-write connect would undo
        }

        return (xen, d.Name, string.Format(System.Globalization.CultureInfo.InvariantCulture, "Xen domain {0} '{1}'", d.Id, d.Name));
    }

    private (IVmiDriver Driver, string Name, string Source) CreateQemu()
    {
        Vmi.Qemu.QemuDriver qemu = DriverFactory.ConnectQemu(Qmp!.Contains('/', StringComparison.Ordinal) ? GetUnresolvedProviderPathFromPSPath(Qmp) : Qmp, ReadOnly);
        return (qemu, System.IO.Path.GetFileName(System.IO.Path.GetDirectoryName(Qmp)) ?? "qemu", qemu.Description);
    }

    private (IVmiDriver Driver, string Name, string Source) CreateDriver() => ParameterSetName switch
    {
        NameSet => CreateXen(Vmi.Xen.XenDomainSelector.ByName(Name!)),
        IdSet => CreateXen(Vmi.Xen.XenDomainSelector.ById(Id)),
        MockSet => (DriverFactory.CreateMock(), "mock", Messages.MockSource),
        PathSet => CreateImage(),
        QmpSet => CreateQemu(),
        _ => throw new PSNotSupportedException(ParameterSetName),
    };
}
