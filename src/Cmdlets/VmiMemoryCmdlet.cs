using System.Management.Automation;
using Vmi.Core;

namespace Vmi.PowerShell;

/// <summary>
/// The base of the cmdlets that address guest memory: an address is physical (<c>-Physical</c>) or virtual,
/// translated under <c>-Cr3</c> or the CR3 of <c>-Vcpu</c> (vCPU 0 by default). All three bind by property name,
/// so records from one memory cmdlet address the same memory in the next.
/// </summary>
public abstract class VmiMemoryCmdlet : VmiCmdlet
{
    /// <summary>The address is a guest physical address.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    public SwitchParameter Physical { get; set; }

    /// <summary>Translate virtual addresses under this page-table root (flag and PCID bits are masked off).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [VmiAddressTransformation]
    public ulong? Cr3 { get; set; }

    /// <summary>Translate virtual addresses under this vCPU's current CR3 (default: vCPU 0).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(VmiVcpuCompleter))]
    public ushort? Vcpu { get; set; }

    /// <summary>The access context for <paramref name="address"/> in this record's address space.</summary>
    private protected AccessContext Context(VmiCore core, VmiSession session, ulong address)
    {
        if (Physical && Cr3 is not null)
        {
            throw new ArgumentException("-Physical and -Cr3 cannot be used together: -Physical reads guest physical memory, -Cr3 translates virtual addresses. Drop one of them.");
        }

        return BuildContext(core, session, address, Physical, Cr3, Vcpu);
    }

    /// <summary>The target object of errors and ShouldProcess: the address, typed (Va prints as hex).</summary>
    private protected object AddressTarget(ulong address) => Physical ? new Pa(address) : new Va(address);
}
