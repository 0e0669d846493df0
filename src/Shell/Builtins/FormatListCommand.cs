using System.Management.Automation;
using Microsoft.PowerShell.Commands.Internal.Format;

namespace Vmi.Shell.Builtins;

/// <summary>Format-List: the engine's own list formatter, with the real cmdlet's parameters (-Property, -GroupBy, -View...).</summary>
[Cmdlet(VerbsCommon.Format, "List")]
public sealed class FormatListCommand : OuterFormatTableAndListBase
{
    public FormatListCommand() => EngineInternals.UseShape(this, "List");
}
