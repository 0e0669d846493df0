using System.Management.Automation;
using Vmi.Core;

namespace Vmi.PowerShell.Commands;

/// <summary>
/// Connects to a guest and returns a session, which becomes the default for the other cmdlets.
/// Parameter sets: Mock (the built-in demo guest) today; Xen (-Name / -Id) and image (-Path) slot in as more sets,
/// each creating its driver in <see cref="CreateDriver"/>.
/// </summary>
[Cmdlet(VerbsCommunications.Connect, "VmiDomain", DefaultParameterSetName = MockSet)]
[OutputType(typeof(VmiSession))]
public sealed class ConnectVmiDomainCommand : PSCmdlet
{
    public const string MockSet = "Mock";

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
        catch (Exception e) when (e is VmiException or ArgumentException or IOException or UnauthorizedAccessException or DllNotFoundException)
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

    private (IVmiDriver Driver, string Name, string Source) CreateDriver() => ParameterSetName switch
    {
        MockSet => (DriverFactory.CreateMock(), "mock", Messages.MockSource),
        _ => throw new PSNotSupportedException(ParameterSetName),
    };
}
