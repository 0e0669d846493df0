using System.Management.Automation;
using Vmi.Core;

namespace Vmi.PowerShell.Commands;

/// <summary>Reads the access permissions (R, W, X) of guest frames in a view.</summary>
[Cmdlet(VerbsCommon.Get, "VmiMemoryAccess")]
[OutputType(typeof(VmiPageAccess))]
public sealed class GetVmiMemoryAccessCommand : VmiCmdlet
{
    /// <summary>Guest frame numbers (physical address >> 12).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [VmiAddressTransformation(Means = AddressMeaning.Frame)]
    public ulong[]? Gfn { get; set; }

    /// <summary>Frames from each -Gfn (a range).</summary>
    [Parameter]
    [ValidateRange(1UL, ulong.MaxValue)]
    public ulong Count { get; set; } = 1;

    /// <summary>The view (default: the default view, 0).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(VmiViewCompleter))]
    public ushort View { get; set; }

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        foreach (ulong first in Gfn!)
        {
            // The whole range first (as Set-VmiMemoryAccess does): one clear error, never one per frame or a wrap to frame 0.
            ulong max = session.MaxGfn;
            if (first > max || Count - 1 > max - first)
            {
                WriteError(VmiErrors.InvalidArgument(string.Format(System.Globalization.CultureInfo.CurrentCulture, Messages.GfnRangeOutOfBounds, first, Count, max), new Gfn(first)));
                continue;
            }

            for (ulong i = 0; i < Count; i++)
            {
                StopToken.ThrowIfCancellationRequested();
                ulong gfn = first + i;
                try
                {
                    MemoryAccess access = session.Guest.GetMemoryAccess(new Gfn(gfn), new View(View));
                    WriteObject(new VmiPageAccess(session, gfn, View, access));
                }
                catch (Exception e) when (IsItemError(e))
                {
                    WriteVmiError(e, new Gfn(gfn));
                    if (e is CapabilityNotSupportedException or ViewNotFoundException)
                    {
                        return; // the same for every frame: say it once
                    }
                }
            }
        }
    }
}
