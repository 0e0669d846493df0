using System.Globalization;
using System.Management.Automation;

namespace Vmi.PowerShell.Commands;

/// <summary>
/// Disconnects sessions and restores their guests: monitors off, memory access restored, views destroyed,
/// vCPUs resumed; then the driver is released.
/// </summary>
[Cmdlet(VerbsCommunications.Disconnect, "VmiDomain", DefaultParameterSetName = SessionSet, SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(void))]
public sealed class DisconnectVmiDomainCommand : PSCmdlet
{
    public const string SessionSet = "Session";
    public const string AllSet = "All";

    /// <summary>The sessions to disconnect (default: the default session).</summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = SessionSet)]
    [VmiSessionTransformation]
    [ArgumentCompleter(typeof(VmiSessionCompleter))]
    public VmiSession? Session { get; set; }

    /// <summary>Disconnect every open session of this runspace (the ones Get-VmiSession lists).</summary>
    [Parameter(Mandatory = true, ParameterSetName = AllSet)]
    public SwitchParameter All { get; set; }

    protected override void ProcessRecord()
    {
        IEnumerable<VmiSession> targets;
        if (All)
        {
            targets = VmiSessionRegistry.Current;
        }
        else
        {
            VmiSession? s = Session ?? VmiSessionRegistry.Default;
            if (s is null)
            {
                WriteError(VmiErrors.FromException(new VmiNoSessionException(), null));
                return;
            }

            targets = [s];
        }

        foreach (VmiSession session in targets)
        {
            if (session.State == VmiSessionState.Closed)
            {
                continue; // disconnecting twice is not an error
            }

            if (!ShouldProcess(string.Format(CultureInfo.InvariantCulture, "{0} (session {1})", session.Name, session.Id), "Disconnect and restore the guest"))
            {
                continue;
            }

            var failures = new List<string>(); // written after the close, not from inside it
            bool restored = session.Disconnect(failures.Add);
            foreach (string failure in failures)
            {
                WriteError(new ErrorRecord(new InvalidOperationException(failure), VmiErrorIds.RestoreFailed, ErrorCategory.CloseError, session));
            }

            if (restored)
            {
                WriteVerbose(string.Format(CultureInfo.CurrentCulture, Messages.DisconnectRestored, session.Name));
            }
        }
    }
}
