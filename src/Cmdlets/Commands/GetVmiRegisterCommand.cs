using System.Management.Automation;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.PowerShell.Commands;

/// <summary>Reads the registers of vCPUs: all of them as one record per vCPU, or the named ones (-Name) as one record each.</summary>
[Cmdlet(VerbsCommon.Get, "VmiRegister")]
[OutputType(typeof(VmiVcpuRegisters), typeof(VmiRegisterValue))]
public sealed class GetVmiRegisterCommand : VmiCmdlet
{
    /// <summary>The vCPUs (default: every vCPU).</summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(VmiVcpuCompleter))]
    public ushort[]? Vcpu { get; set; }

    /// <summary>Only these registers (Rip, Cr3, MsrLstar, ...), one record each.</summary>
    [Parameter(Position = 1)]
    [ArgumentCompleter(typeof(VmiRegisterNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string[]? Name { get; set; }

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        string[]? names;
        try
        {
            names = Name?.Select(RegisterAccess.Canonical).ToArray();
        }
        catch (ArgumentException e)
        {
            ThrowTerminatingError(VmiErrors.FromException(e, Name));
            return;
        }

        IEnumerable<ushort> vcpus = Vcpu ?? Enumerable.Range(0, session.VcpuCount).Select(i => (ushort)i);
        foreach (ushort vcpu in vcpus)
        {
            try
            {
                Registers registers = session.Guest.GetRegisters(new VcpuId(vcpu));
                if (names is null)
                {
                    WriteObject(new VmiVcpuRegisters(session, vcpu, registers));
                    continue;
                }

                foreach (string name in names)
                {
                    WriteObject(new VmiRegisterValue(session, vcpu, name, registers[name]));
                }
            }
            catch (Exception e) when (IsItemError(e))
            {
                WriteVmiError(e, new VcpuId(vcpu));
            }
        }
    }
}
