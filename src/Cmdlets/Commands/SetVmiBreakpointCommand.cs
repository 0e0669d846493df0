using System.Globalization;
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
    [VmiAddressTransformation]
    public ulong[]? Address { get; set; }

    /// <summary>Report only hits in this address space (page-table root).</summary>
    [Parameter]
    [VmiAddressTransformation]
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
        foreach (ulong address in Address!)
        {
            if (!ShouldProcess(Target(session, string.Format(CultureInfo.InvariantCulture, "0x{0:x}", address)), Access == BreakpointAccess.Execute ? "Set breakpoint" : "Set watchpoint"))
            {
                continue;
            }

            var request = new BreakpointRequest(new Va(Physical ? 0 : address), Hardware ? BreakpointKind.Hardware : BreakpointKind.Software, Cr3 is ulong c ? new Pa(c) : null, Vcpu is ushort v ? new VcpuId(v) : null)
            {
                Physical = Physical ? new Pa(address) : null,
                Access = Access,
                Length = Length,
            };
            try
            {
                WriteObject(new VmiBreakpointInfo(session, session.Guest.SetBreakpoint(request)));
            }
            catch (Exception e) when (IsItemError(e))
            {
                WriteVmiError(e, address);
            }
        }
    }
}
