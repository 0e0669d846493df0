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
    [Parameter(Mandatory = true, ParameterSetName = QmpSet), ValidateNotNullOrEmpty]
    public string? Qmp { get; set; }
    /// <summary>A Xen domain by name (as xl list shows it).</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = NameSet), ValidateNotNullOrEmpty, ArgumentCompleter(typeof(VmiDomainNameCompleter))]
    public string? Name { get; set; }
    /// <summary>A Xen domain by id; binds the Id of a Get-VmiDomain record.</summary>
    [Parameter(Mandatory = true, ParameterSetName = IdSet, ValueFromPipelineByPropertyName = true)]
    public uint Id { get; set; }
    /// <summary>Memory images (raw, ELF core, kdump, LiME, Xen dump-core, recognised by content); wildcards allowed, one session each.</summary>
    [Parameter(Mandatory = true, ParameterSetName = PathSet, ValueFromPipelineByPropertyName = true), ValidateNotNullOrEmpty, SupportsWildcards]
    public string[]? Path { get; set; }
    /// <summary>Memory images by exact path (no wildcards); binds the PSPath of Get-ChildItem's files.</summary>
    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true), ValidateNotNullOrEmpty, Alias("PSPath", "LP")]
    public string[]? LiteralPath { get; set; }
    /// <summary>The page-table root to use instead of the image's own CR3 (or for images that carry none, such as raw and LiME).</summary>
    [Parameter(ParameterSetName = PathSet), Parameter(ParameterSetName = LiteralPathSet), VmiAddressTransformation(Means = AddressMeaning.Physical)]
    public ulong? Cr3 { get; set; }
    /// <summary>Connect to the built-in demo guest (page tables, strings, four vCPUs, scripted events).</summary>
    [Parameter(Mandatory = true, ParameterSetName = MockSet)]
    public SwitchParameter Mock { get; set; }
    /// <summary>Refuse every change to the guest (writes, access changes, views, monitors, pause).</summary>
    [Parameter]
    public SwitchParameter ReadOnly { get; set; }
    /// <summary>The session's name (default: the domain name, the image file name, or "mock").</summary>
    [Parameter, ValidateNotNullOrEmpty]
    public string? SessionName { get; set; }
    /// <summary>Entries in each of the session's caches (GFN pages, V2P translations).</summary>
    [Parameter, ValidateRange(1, 1 << 24)]
    public int CacheSize { get; set; } = VmiCore.DefaultCacheCapacity;

    protected override void ProcessRecord()
    {
        // Images: one session each, and one that cannot be opened is one error. A domain, a socket or the mock: the command's only target.
        bool literal = ParameterSetName == LiteralPathSet, images = literal || ParameterSetName == PathSet;
        IEnumerable<(VmiTarget Target, string Given)> targets = images
            ? ImagePaths.Resolve(this, (literal ? LiteralPath : Path) ?? [], literal).Select(f => (VmiTarget.File(f) with { Cr3 = Cr3 }, f))
            : [(ParameterSetName switch
            {
                NameSet => VmiTarget.DomainByName(Name!),
                IdSet => VmiTarget.DomainById(Id),
                QmpSet => VmiTarget.Socket(Qmp!.Contains('/', StringComparison.Ordinal) ? GetUnresolvedProviderPathFromPSPath(Qmp) : Qmp),
                _ => VmiTarget.Builtin("mock"),
            }, ParameterSetName)];
        foreach ((VmiTarget target, string given) in targets)
        {
            VmiSession? session = VmiSession.Open(target, new VmiGuestOptions { CacheCapacity = CacheSize, ReadOnly = ReadOnly }, SessionName, WriteWarning, out Exception? failure);
            if (failure is null)
            {
                WriteObject(session);
            }
            else
            {
                (images ? WriteError : (Action<ErrorRecord>)ThrowTerminatingError)(VmiErrors.FromException(failure, given));
            }
        }
    }
}
