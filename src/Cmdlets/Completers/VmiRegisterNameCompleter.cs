namespace Vmi.PowerShell;

/// <summary>Completes -Name of the register cmdlets with the register names.</summary>
public sealed class VmiRegisterNameCompleter : VmiCompleter
{
    protected override IEnumerable<(string Text, string Tooltip)> Candidates(VmiSession? session) =>
        RegisterAccess.Names.Select(n => (n, "register"));
}
