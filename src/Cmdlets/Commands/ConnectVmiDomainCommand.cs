using System.Management.Automation;
using Vmi.Core;
using Vmi.Core.Drivers;

namespace Vmi.PowerShell.Commands;

/// <summary>
/// Connects to a guest and returns a session, which becomes the default for the other cmdlets.
/// Parameter sets: Name and Id (a domain of the hypervisor on this host), Mock (the built-in demo guest), Path (a memory
/// image, its format picked from its content) and Qmp (a QEMU VM); each becomes a target the engine's driver registry opens.
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
            // One session per image; a path that names no image is a non-terminating error with the path as its target.
            bool literal = ParameterSetName == LiteralPathSet;
            foreach (string image in ImagePaths.Resolve(this, (literal ? LiteralPath : Path) ?? [], literal))
            {
                Connect(VmiTarget.File(image) with { Cr3 = Cr3 }, image, terminating: false);
            }

            return;
        }

        Connect(Target(), ParameterSetName, terminating: true);
    }

    private void Connect(VmiTarget target, string errorTarget, bool terminating)
    {
        VmiGuest? guest = null;
        VmiSession? session = null;
        try
        {
            VmiOpenedDriver opened = VmiDriverRegistry.Open(target with { ReadOnly = ReadOnly });
            guest = new VmiGuest(opened.Driver, new VmiGuestOptions { CacheCapacity = CacheSize, ReadOnly = ReadOnly });
            session = new VmiSession(guest, SessionName ?? opened.Name, opened.Source, VmiSessionRegistry.CurrentRunspaceId);
            if (opened.Notice is { } notice)
            {
                WriteWarning(notice); // e.g. a domain left changed by a killed vmi: what was undone, or what a read-write connect would undo
            }

            VmiSessionRegistry.Add(session);
        }
        catch (Exception e) when (e is VmiException or ArgumentException or IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            guest?.Dispose(); // clean up on partial failure (the guest disposes its driver when it cannot be built)
            ErrorRecord error = VmiErrors.FromException(e, errorTarget);
            if (terminating)
            {
                ThrowTerminatingError(error);
            }

            WriteError(error);
            return;
        }

        WriteObject(session);
    }

    private VmiTarget Target() => ParameterSetName switch
    {
        NameSet => VmiTarget.DomainByName(Name!),
        IdSet => VmiTarget.DomainById(Id),
        MockSet => VmiTarget.Builtin("mock"),
        QmpSet => VmiTarget.Socket(Qmp!.Contains('/', StringComparison.Ordinal) ? GetUnresolvedProviderPathFromPSPath(Qmp) : Qmp),
        _ => throw new PSNotSupportedException(ParameterSetName),
    };
}
