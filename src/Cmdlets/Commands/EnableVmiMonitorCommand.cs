using System.Globalization;
using System.Management.Automation;
using Vmi.Core;

namespace Vmi.PowerShell.Commands;

/// <summary>Enables event sources (control-register and MSR writes, breakpoints, singlestep, CPUID, I/O...). Wait-VmiEvent receives their events.</summary>
[Cmdlet(VerbsLifecycle.Enable, "VmiMonitor", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(VmiMonitorInfo))]
public sealed class EnableVmiMonitorCommand : VmiCmdlet
{
    /// <summary>Cr0, Cr3, Cr4, Xcr0, Msr:0xC0000082, Breakpoint, DebugException, Singlestep, Cpuid, Io, Hypercall, GuestRequest, DescriptorAccess.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(VmiMonitorCompleter))]
    [ValidateNotNullOrEmpty]
    public string[]? Monitor { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        foreach (string text in Monitor!)
        {
            if (!EventMonitor.TryParse(text, out EventMonitor monitor))
            {
                WriteError(VmiErrors.InvalidArgument(string.Format(CultureInfo.CurrentCulture, Messages.MonitorNotUnderstood, text, string.Join(", ", EventMonitor.Names)), text));
                continue;
            }

            if (!ShouldProcess(Target(session, "monitor " + monitor), "Enable monitor"))
            {
                continue;
            }

            try
            {
                session.Guest.EnableMonitor(monitor);
                if (PassThru)
                {
                    WriteObject(new VmiMonitorInfo(session, monitor, true));
                }
            }
            catch (Exception e) when (IsItemError(e))
            {
                WriteVmiError(e, text);
            }
        }
    }
}
