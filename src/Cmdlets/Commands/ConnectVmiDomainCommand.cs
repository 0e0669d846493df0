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
    public const string LiteralPathSet = "LiteralPath";
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

    /// <summary>Memory images (raw, ELF core, kdump, LiME, Xen dump-core, recognised by content); wildcards allowed, one session each.</summary>
    [Parameter(Mandatory = true, ParameterSetName = PathSet, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public string[]? Path { get; set; }

    /// <summary>Memory images by exact path (no wildcards); binds the PSPath of Get-ChildItem's files.</summary>
    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [Alias("PSPath", "LP")]
    public string[]? LiteralPath { get; set; }

    /// <summary>The page-table root to use instead of the image's own CR3 (or for images that carry none, such as raw and LiME).</summary>
    [Parameter(ParameterSetName = PathSet)]
    [Parameter(ParameterSetName = LiteralPathSet)]
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
        if (ParameterSetName is PathSet or LiteralPathSet)
        {
            // Provider conventions: -Path expands wildcards, -LiteralPath does not; each image is its own session,
            // and a path that fails is a non-terminating error with the path as its target.
            foreach (string image in ImagePaths())
            {
                Connect(() => CreateImage(image), image, terminating: false);
            }

            return;
        }

        Connect(CreateDriver, ParameterSetName, terminating: true);
    }

    /// <summary>The image files -Path or -LiteralPath name; writes an error for each that names no file.</summary>
    private List<string> ImagePaths()
    {
        var files = new List<string>();
        foreach (string given in (ParameterSetName == LiteralPathSet ? LiteralPath : Path) ?? [])
        {
            List<string> resolved;
            try
            {
                if (ParameterSetName == LiteralPathSet || !WildcardPattern.ContainsWildcardCharacters(given))
                {
                    resolved = [GetUnresolvedProviderPathFromPSPath(given)];
                }
                else
                {
                    resolved = [.. GetResolvedProviderPathFromPSPath(given, out ProviderInfo provider)];
                    if (provider.Name != "FileSystem")
                    {
                        WriteError(new ErrorRecord(new ArgumentException($"'{given}' is not a file-system path: a memory image is a file."), VmiErrorIds.InvalidArgument, ErrorCategory.InvalidArgument, given));
                        continue;
                    }
                }
            }
            catch (Exception e) when (e is ItemNotFoundException or System.Management.Automation.DriveNotFoundException or ProviderNotFoundException or NotSupportedException)
            {
                WriteError(new ErrorRecord(new ItemNotFoundException($"No memory image matches '{given}': check the path (Get-ChildItem lists the files).", e), VmiErrorIds.PathNotFound, ErrorCategory.ObjectNotFound, given));
                continue;
            }

            if (resolved.Count == 0)
            {
                WriteError(new ErrorRecord(new ItemNotFoundException($"No memory image matches '{given}': check the path (Get-ChildItem lists the files)."), VmiErrorIds.PathNotFound, ErrorCategory.ObjectNotFound, given));
            }

            foreach (string file in resolved)
            {
                if (Directory.Exists(file))
                {
                    WriteError(new ErrorRecord(new IOException($"'{file}' is a directory: give the memory image file inside it."), VmiErrorIds.PathIsDirectory, ErrorCategory.InvalidArgument, file));
                }
                else if (!File.Exists(file))
                {
                    WriteError(new ErrorRecord(new ItemNotFoundException($"The memory image '{file}' does not exist."), VmiErrorIds.PathNotFound, ErrorCategory.ObjectNotFound, file));
                }
                else
                {
                    files.Add(file);
                }
            }
        }

        return files;
    }

    private void Connect(Func<(IVmiDriver Driver, string Name, string Source)> create, string target, bool terminating)
    {
        IVmiDriver? driver = null;
        VmiCore? core = null;
        VmiSession? session = null;
        string source;
        try
        {
            (driver, string name, source) = create();
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

            if (terminating)
            {
                ThrowTerminatingError(VmiErrors.FromException(e, target));
            }

            WriteError(VmiErrors.FromException(e, target));
            return;
        }

        WriteObject(session);
    }

    private (IVmiDriver Driver, string Name, string Source) CreateImage(string path)
    {
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
        QmpSet => CreateQemu(),
        _ => throw new PSNotSupportedException(ParameterSetName),
    };
}
