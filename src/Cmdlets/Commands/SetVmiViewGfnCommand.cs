using System.Globalization;
using System.Management.Automation;
using Vmi.Core;

namespace Vmi.PowerShell.Commands;

/// <summary>
/// In a view, makes accesses to one guest frame reach another (-NewGfn), or undoes that (-Reset).
/// The classic use: a shadow copy of a code page with breakpoints, seen only through the view.
/// </summary>
[Cmdlet(VerbsCommon.Set, "VmiViewGfn", DefaultParameterSetName = RemapSet, SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(void))]
public sealed class SetVmiViewGfnCommand : VmiCmdlet
{
    public const string RemapSet = "Remap";
    public const string ResetSet = "Reset";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(VmiViewCompleter))]
    public ushort View { get; set; }

    /// <summary>The frame whose accesses are redirected.</summary>
    [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
    [VmiAddressTransformation(Means = AddressMeaning.Frame)]
    public ulong Gfn { get; set; }

    /// <summary>The frame the accesses reach instead.</summary>
    [Parameter(Mandatory = true, Position = 2, ParameterSetName = RemapSet)]
    [VmiAddressTransformation(Means = AddressMeaning.Frame)]
    public ulong NewGfn { get; set; }

    /// <summary>Undo the remapping of -Gfn in the view.</summary>
    [Parameter(Mandatory = true, ParameterSetName = ResetSet)]
    public SwitchParameter Reset { get; set; }

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        string what = Reset
            ? string.Format(CultureInfo.InvariantCulture, "view {0}: GFN 0x{1:x} back to itself", View, Gfn)
            : string.Format(CultureInfo.InvariantCulture, "view {0}: GFN 0x{1:x} -> GFN 0x{2:x}", View, Gfn, NewGfn);
        if (!ShouldProcess(Target(session, what), Reset ? "Reset view GFN" : "Remap view GFN"))
        {
            return;
        }

        try
        {
            if (Reset)
            {
                session.Guest.ResetViewGfn(new View(View), new Gfn(Gfn));
            }
            else
            {
                session.Guest.ChangeViewGfn(new View(View), new Gfn(Gfn), new Gfn(NewGfn));
            }
        }
        catch (Exception e) when (IsItemError(e))
        {
            WriteVmiError(e, new Gfn(Gfn));
        }
    }
}
