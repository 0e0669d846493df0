using System.Globalization;
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
    [VmiAddressTransformation(Means = AddressMeaning.Physical)]
    public ulong? Cr3 { get; set; }

    /// <summary>Translate virtual addresses under this vCPU's current CR3 (default: vCPU 0).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(VmiVcpuCompleter))]
    public ushort? Vcpu { get; set; }

    /// <summary>Whether this record's address is physical: -Physical, or a [Vmi.Core.Pa] given as the address (<see cref="Locate"/>).</summary>
    private protected bool IsPhysical { get; private set; }

    /// <summary>
    /// The number of <paramref name="address"/>, and this record's address space from it: a [Vmi.Core.Pa] is physical
    /// without -Physical, a [Vmi.Core.Va] with -Physical (or a Pa with -Cr3) is refused. Call first, per record.
    /// </summary>
    private protected ulong Locate(VmiAddress address)
    {
        IsPhysical = Physical; // what a refused address's error names it as
        IsPhysical = address.IsPhysical(Physical, Cr3 is not null);
        return address.Value;
    }

    /// <summary>The address space this record names.</summary>
    private protected AddressSpace Space
    {
        get
        {
            if (IsPhysical && Cr3 is not null)
            {
                throw new ArgumentException("-Physical and -Cr3 cannot be used together: -Physical reads guest physical memory, -Cr3 translates virtual addresses. Drop one of them.");
            }

            return IsPhysical ? AddressSpace.Physical : AddressSpace.Virtual(Cr3, Vcpu);
        }
    }

    /// <summary>The access context for <paramref name="address"/> in this record's address space.</summary>
    private protected AccessContext Context(VmiSession session, ulong address) => ContextFor(session, Space, address);

    /// <summary>The access context of <paramref name="address"/> in <paramref name="space"/>; a missing root names the parameters that give one.</summary>
    internal static AccessContext ContextFor(VmiSession session, AddressSpace space, ulong address)
    {
        try
        {
            return session.Guest.ContextFor(space, address);
        }
        catch (NoTranslationRootException e)
        {
            throw new VmiNoTranslationRootException(session, e);
        }
    }

    /// <summary>Streams a chunked read as byte records, with progress; one warning names the pages zero-filled.</summary>
    private protected void WriteChunks(VmiSession session, AccessContext at, ulong length, int chunkSize, bool zeroFill)
    {
        if (at.Address + (length - 1) < at.Address)
        {
            throw new ArgumentOutOfRangeException("Length", string.Format(CultureInfo.CurrentCulture, Messages.RangeOverflow, at.Address, length));
        }

        var progress = new ProgressReporter(this, 1, Messages.ProgressRead);
        var unreadable = new List<ulong>();
        try
        {
            foreach (MemoryChunk chunk in session.Guest.ReadChunks(at, length, chunkSize, zeroFill, progress, StopToken))
            {
                unreadable.AddRange(chunk.ZeroFilledPages);
                WriteObject(new VmiMemoryRecord(session, chunk.Address, IsPhysical, at.Mechanism.Root?.Value, chunk.Data, chunk.ZeroFilledPages));
            }
        }
        finally
        {
            progress.Complete();
            WriteZeroFilledWarning(unreadable);
        }
    }

    /// <summary>The target object of errors and ShouldProcess: the address, typed (Va prints as hex).</summary>
    private protected object AddressTarget(ulong address) => IsPhysical ? new Pa(address) : new Va(address);
}
