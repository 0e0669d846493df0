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
    [VmiAddressTransformation]
    public ulong Address { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [VmiAddressTransformation]
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
            object result = session.Use<object>(core =>
            {
                Pa root = ResolveRoot(core, session, Cr3, Vcpu);
                var ctx = new AddressContext(new Va(Address), root);
                if (Detailed)
                {
                    return new VmiPageWalk(session, core.WalkAddress(ctx));
                }

                // A walk (not the V2P cache, which keeps no flags) gives the page size and the effective flags.
                PageWalk walk = core.WalkAddress(ctx);
                if (!walk.Result.Success)
                {
                    throw FaultOf(walk.Va, walk.Root, walk.Mode, walk.Result);
                }

                return new VmiTranslation(session, Address, root.Value, walk.Mode, walk.Result);
            });
            WriteObject(result);
            if (result is VmiPageWalk { Success: false } failed)
            {
                WriteVmiError(FaultOf(new Va(failed.Va), new Pa(failed.Cr3), failed.PagingMode, new TranslationResult(default, default, default, failed.Fault, failed.FaultLevel)), new Va(Address));
            }
        }
        catch (Exception e) when (IsItemError(e))
        {
            WriteVmiError(e, new Va(Address));
        }
    }

    private static VmiException FaultOf(Va va, Pa root, PagingMode mode, TranslationResult r) => r.Fault == WalkFaultKind.NonCanonical
        ? new NonCanonicalAddressException(va, mode)
        : new PageFaultException(va, root, r.FaultLevel, r.Fault);
}
