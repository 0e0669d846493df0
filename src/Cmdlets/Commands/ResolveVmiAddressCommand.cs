using System.Management.Automation;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.PowerShell.Commands;

/// <summary>
/// Translates virtual addresses to physical ones under -Cr3 or the CR3 of -Vcpu (vCPU 0 by default).
/// -Detailed writes the whole page walk: every level's table, entry and flags, or where the walk faulted.
/// </summary>
[Cmdlet(VerbsDiagnostic.Resolve, "VmiAddress", DefaultParameterSetName = TranslateSet)]
[OutputType(typeof(VmiTranslation), ParameterSetName = [TranslateSet])]
[OutputType(typeof(VmiPageWalk), ParameterSetName = [DetailedSet])]
public sealed class ResolveVmiAddressCommand : VmiCmdlet
{
    public const string TranslateSet = "Translate";
    public const string DetailedSet = "Detailed";

    /// <summary>The virtual address.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("Va")]
    [VmiAddressTransformation(Means = AddressMeaning.Virtual)]
    public ulong Address { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [VmiAddressTransformation(Means = AddressMeaning.Physical)]
    public ulong? Cr3 { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(VmiVcpuCompleter))]
    public ushort? Vcpu { get; set; }

    /// <summary>Write the full page walk.</summary>
    [Parameter(Mandatory = true, ParameterSetName = DetailedSet)]
    public SwitchParameter Detailed { get; set; }

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        try
        {
            Pa root = VmiMemoryCmdlet.ContextFor(session, AddressSpace.Virtual(Cr3, Vcpu), Address).Mechanism.Root!.Value;

            // A walk (not the V2P cache, which keeps no flags) gives the page size and the effective flags.
            PageWalk walk = session.Guest.WalkAddress(new AddressContext(new Va(Address), root));
            object result = Detailed ? new VmiPageWalk(session, walk)
                : walk.Result.Success ? new VmiTranslation(session, Address, root.Value, walk.Mode, walk.Result)
                : throw TranslationFault.ToException(walk.Va, walk.Root, walk.Mode, walk.Result);
            WriteObject(result);
            if (Detailed && !walk.Result.Success)
            {
                WriteVmiError(TranslationFault.ToException(walk.Va, walk.Root, walk.Mode, walk.Result), new Va(Address));
            }
        }
        catch (Exception e) when (IsItemError(e))
        {
            WriteVmiError(e, new Va(Address));
        }
    }
}
