using System.Management.Automation;
using Vmi.Core;

namespace Vmi.PowerShell.Commands;

/// <summary>Sets a breakpoint or watchpoint owned by the hypervisor side (QEMU: the gdbstub, invisible to the guest). Hits arrive through Wait-VmiEvent.</summary>
[Cmdlet(VerbsCommon.Set, "VmiBreakpoint", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(VmiBreakpointInfo))]
public sealed class SetVmiBreakpointCommand : VmiCmdlet
{
    /// <summary>The instruction's virtual address (a physical one with -Physical).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [VmiAddressTransformation(Means = AddressMeaning.Either)]
    public VmiAddress[]? Address { get; set; }

    /// <summary>Report only hits in this address space (page-table root).</summary>
    [Parameter]
    [VmiAddressTransformation(Means = AddressMeaning.Physical)]
    public ulong? Cr3 { get; set; }

    /// <summary>Report only hits on this vCPU.</summary>
    [Parameter]
    public ushort? Vcpu { get; set; }

    /// <summary>The address is guest-physical (Xen, the mock; QEMU refuses).</summary>
    [Parameter]
    public SwitchParameter Physical { get; set; }

    /// <summary>A hardware breakpoint (debug register; 4 under KVM) instead of a software one.</summary>
    [Parameter]
    public SwitchParameter Hardware { get; set; }

    /// <summary>Execute (a breakpoint, the default), or a watchpoint on Write, Read or ReadWrite data accesses.</summary>
    [Parameter]
    public BreakpointAccess Access { get; set; } = BreakpointAccess.Execute;

    /// <summary>Bytes a watchpoint covers: 1, 2, 4 or 8 (the address a multiple of it).</summary>
    [Parameter]
    public int Length { get; set; } = 1;

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        foreach (VmiAddress address in Address!)
        {
            if (!ShouldProcess(Target(session, address.ToString()), Access == BreakpointAccess.Execute ? "Set breakpoint" : "Set watchpoint"))
            {
                continue;
            }

            try
            {
                bool physical = address.IsPhysical(Physical, cr3Given: false); // -Cr3 only filters hits: a physical breakpoint may have one
                var request = new BreakpointRequest(new Va(physical ? 0 : address.Value), Hardware ? BreakpointKind.Hardware : BreakpointKind.Software, Cr3 is ulong c ? new Pa(c) : null, Vcpu is ushort v ? new VcpuId(v) : null)
                {
                    Physical = physical ? new Pa(address.Value) : null,
                    Access = Access,
                    Length = Length,
                };
                WriteObject(new VmiBreakpointInfo(session, session.Guest.SetBreakpoint(request)));
            }
            catch (Exception e) when (IsItemError(e))
            {
                WriteVmiError(e, address.Value);
            }
        }
    }
}
