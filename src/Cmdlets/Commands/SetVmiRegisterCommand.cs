using System.Collections;
using System.Globalization;
using System.Management.Automation;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.PowerShell.Commands;

/// <summary>
/// Sets registers of one vCPU: one (-Name/-Value) or several (-Values @{ Rip = ...; Rax = ... }). Only the named
/// registers change; the rest are written back as read. High impact: confirms by default.
/// </summary>
[Cmdlet(VerbsCommon.Set, "VmiRegister", DefaultParameterSetName = OneSet, SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(VmiVcpuRegisters))]
public sealed class SetVmiRegisterCommand : VmiCmdlet
{
    public const string OneSet = "One";
    public const string ManySet = "Many";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(VmiVcpuCompleter))]
    public ushort Vcpu { get; set; }

    [Parameter(Mandatory = true, Position = 1, ParameterSetName = OneSet)]
    [ArgumentCompleter(typeof(VmiRegisterNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string? Name { get; set; }

    [Parameter(Mandatory = true, Position = 2, ParameterSetName = OneSet)]
    [VmiAddressTransformation(Means = AddressMeaning.Number)]
    public ulong Value { get; set; }

    /// <summary>Registers and their new values.</summary>
    [Parameter(Mandatory = true, ParameterSetName = ManySet)]
    [ValidateNotNullOrEmpty]
    public IDictionary? Values { get; set; }

    /// <summary>Write the vCPU's registers after the change.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        IReadOnlyList<KeyValuePair<string, ulong>> changes;
        try
        {
            changes = RegisterAccess.Changes(ParameterSetName == OneSet ? new Hashtable { [Name!] = Value } : Values!);
        }
        catch (ArgumentException e)
        {
            ThrowTerminatingError(VmiErrors.FromException(e, Name ?? (object?)Values));
            return;
        }

        string what = string.Format(CultureInfo.InvariantCulture, "vCPU {0}: {1}", Vcpu,
            string.Join(", ", changes.Select(c => string.Format(CultureInfo.InvariantCulture, "{0}=0x{1:x}", c.Key, c.Value))));
        if (!ShouldProcess(Target(session, what), "Set registers"))
        {
            return;
        }

        try
        {
            session.Guest.UpdateRegisters(new VcpuId(Vcpu), registers => registers.With(changes));
            if (PassThru)
            {
                // Read back: what the hypervisor holds now, not what was asked for.
                WriteObject(new VmiVcpuRegisters(session, Vcpu, session.Guest.GetRegisters(new VcpuId(Vcpu))));
            }
        }
        catch (Exception e) when (IsItemError(e))
        {
            WriteVmiError(e, new VcpuId(Vcpu));
        }
    }
}
