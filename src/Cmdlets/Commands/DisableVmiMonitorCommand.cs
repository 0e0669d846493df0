using System.Globalization;
using System.Management.Automation;
using Vmi.Core;

namespace Vmi.PowerShell.Commands;

/// <summary>Disables event sources: the named ones, or every one this session enabled (-All).</summary>
[Cmdlet(VerbsLifecycle.Disable, "VmiMonitor", DefaultParameterSetName = MonitorSet, SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(VmiMonitorInfo))]
public sealed class DisableVmiMonitorCommand : VmiCmdlet
{
    public const string MonitorSet = "Monitor";
    public const string AllSet = "All";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = MonitorSet)]
    [ArgumentCompleter(typeof(VmiMonitorCompleter))]
    [ValidateNotNullOrEmpty]
    public string[]? Monitor { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = AllSet)]
    public SwitchParameter All { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        var monitors = new List<(EventMonitor Monitor, object Target)>();
        if (All)
        {
            try
            {
                monitors.AddRange(session.Guest.EnabledMonitors.Select(m => (m, (object)m.ToString())));
            }
            catch (Exception e) when (IsItemError(e))
            {
                WriteVmiError(e, session);
                return;
            }
        }
        else
        {
            foreach (string text in Monitor!)
            {
                if (EventMonitor.TryParse(text, out EventMonitor m))
                {
                    monitors.Add((m, text));
                }
                else
                {
                    WriteError(VmiErrors.InvalidArgument(string.Format(CultureInfo.CurrentCulture, Messages.MonitorNotUnderstood, text, string.Join(", ", EventMonitor.Names)), text));
                }
            }
        }

        foreach ((EventMonitor monitor, object target) in monitors)
        {
            if (!ShouldProcess(Target(session, "monitor " + monitor), "Disable monitor"))
            {
                continue;
            }

            try
            {
                session.Guest.DisableMonitor(monitor);
                if (PassThru)
                {
                    WriteObject(new VmiMonitorInfo(session, monitor, false));
                }
            }
            catch (Exception e) when (IsItemError(e))
            {
                WriteVmiError(e, target);
            }
        }
    }
}
