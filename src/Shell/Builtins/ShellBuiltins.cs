using System.Management.Automation;
using System.Management.Automation.Runspaces;

namespace Vmi.Shell.Builtins;

/// <summary>
/// The common commands vmi provides itself, because the engine it hosts (System.Management.Automation from NuGet)
/// only carries Microsoft.PowerShell.Core. Each is added only when the session does not already have a command of
/// that name; if the real cmdlet's assembly can be loaded (a full pwsh-like engine), the real cmdlet is registered instead.
/// </summary>
public static class ShellBuiltins
{
    /// <summary>Command name, vmi's implementation, and the real cmdlet (assembly-qualified) that wins when present.</summary>
    private static readonly (string Name, Type Builtin, string Real)[] s_commands =
    [
        ("Write-Output", typeof(WriteOutputCommand), Utility("WriteOutputCommand")),
        ("Write-Host", typeof(WriteHostCommand), Utility("WriteHostCommand")),
        ("Select-Object", typeof(SelectObjectCommand), Utility("SelectObjectCommand")),
        ("Sort-Object", typeof(SortObjectCommand), Utility("SortObjectCommand")),
        ("Format-Table", typeof(FormatTableCommand), Utility("FormatTableCommand")),
        ("Format-List", typeof(FormatListCommand), Utility("FormatListCommand")),
        ("Out-String", typeof(OutStringCommand), Utility("OutStringCommand")),
    ];

    /// <summary>The names of every command vmi can provide itself.</summary>
    public static IReadOnlyList<string> Names { get; } = s_commands.Select(c => c.Name).ToArray();

    /// <summary>
    /// Adds a cmdlet entry to <paramref name="state"/> for each builtin it lacks; returns the names added with vmi's
    /// own implementation.
    /// </summary>
    public static IReadOnlyList<string> AddMissing(InitialSessionState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        var added = new List<string>();
        foreach ((string name, Type builtin, string real) in s_commands)
        {
            if (state.Commands[name].Count > 0)
            {
                continue; // the engine (or whoever built the state) already has it
            }

            Type? realType = LoadReal(real);
            state.Commands.Add(new SessionStateCmdletEntry(name, realType ?? builtin, helpFileName: null));
            if (realType is null)
            {
                added.Add(name);
            }
        }

        return added;
    }

    private static string Utility(string type) => $"Microsoft.PowerShell.Commands.{type}, Microsoft.PowerShell.Commands.Utility";

    private static string Management(string type) => $"Microsoft.PowerShell.Commands.{type}, Microsoft.PowerShell.Commands.Management";

    private static Type? LoadReal(string assemblyQualifiedName)
    {
        try
        {
            Type? t = Type.GetType(assemblyQualifiedName, throwOnError: false);
            return t is not null && typeof(Cmdlet).IsAssignableFrom(t) ? t : null;
        }
        catch (Exception e) when (e is IOException or BadImageFormatException or TypeLoadException)
        {
            return null; // not shipped with this engine
        }
    }
}
