using System.Management.Automation;
using Microsoft.PowerShell.Commands.Internal.Format;

namespace Vmi.Shell.Builtins;

/// <summary>
/// Format-Table: the engine's own table formatter (views from the module's Vmi.Format.ps1xml included), with the
/// real cmdlet's parameters (-Property, -AutoSize, -Wrap, -HideTableHeaders, -GroupBy, -View...).
/// </summary>
[Cmdlet(VerbsCommon.Format, "Table")]
public sealed class FormatTableCommand : OuterFormatTableBase
{
    public FormatTableCommand() => EngineInternals.UseShape(this, "Table");
}
