using System.Globalization;
using System.Management.Automation;
using Vmi.Core;

namespace Vmi.PowerShell.Commands;

/// <summary>
/// Sets the access permissions of guest frames in a view: one frame, a range (-Count), or frames from the pipeline.
/// An access the permissions forbid raises a MemoryAccess event (see Wait-VmiEvent). Disconnect restores them.
/// </summary>
[Cmdlet(VerbsCommon.Set, "VmiMemoryAccess", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(VmiPageAccess))]
public sealed class SetVmiMemoryAccessCommand : VmiCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [VmiAddressTransformation(Means = AddressMeaning.Frame)]
    public ulong[]? Gfn { get; set; }

    /// <summary>The permissions: None, R, W, X, RW, RX, WX, RWX.</summary>
    [Parameter(Mandatory = true, Position = 1)]
    public MemoryAccess Access { get; set; }

    /// <summary>Frames from each -Gfn (a range, set in one driver call where the driver can).</summary>
    [Parameter]
    [ValidateRange(1UL, ulong.MaxValue)]
    public ulong Count { get; set; } = 1;

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(VmiViewCompleter))]
    public ushort View { get; set; }

    /// <summary>Do not report accesses made by the processor's own page walks (A/D bit updates).</summary>
    [Parameter]
    public SwitchParameter IgnorePageWalkUpdates { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        MemoryAccessOptions options = IgnorePageWalkUpdates ? MemoryAccessOptions.IgnorePageWalkUpdates : MemoryAccessOptions.None;
        foreach (ulong gfn in Gfn!)
        {
            string what = Count == 1
                ? string.Format(CultureInfo.InvariantCulture, "GFN 0x{0:x} in view {1} -> {2}", gfn, View, Access)
                : string.Format(CultureInfo.InvariantCulture, "GFNs 0x{0:x}..0x{1:x} ({2} frames) in view {3} -> {4}", gfn, gfn + Count - 1, Count, View, Access);
            if (!ShouldProcess(Target(session, what), "Set memory access"))
            {
                continue;
            }

            try
            {
                session.Guest.SetMemoryAccess(new Gfn(gfn), Count, new View(View), Access, options);
                if (PassThru)
                {
                    for (ulong i = 0; i < Count; i++)
                    {
                        WriteObject(new VmiPageAccess(session, gfn + i, View, session.Guest.GetMemoryAccess(new Gfn(gfn + i), new View(View))));
                    }
                }
            }
            catch (Exception e) when (IsItemError(e))
            {
                WriteVmiError(e, new Gfn(gfn));
            }
        }
    }
}
