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
        ("Measure-Object", typeof(MeasureObjectCommand), Utility("MeasureObjectCommand")),
        ("Group-Object", typeof(GroupObjectCommand), Utility("GroupObjectCommand")),
        ("Get-Member", typeof(GetMemberCommand), Utility("GetMemberCommand")),
        ("Start-Sleep", typeof(StartSleepCommand), Utility("StartSleepCommand")),
        ("Get-Date", typeof(GetDateCommand), Utility("GetDateCommand")),
        ("Test-Path", typeof(TestPathCommand), Management("TestPathCommand")),
        ("Get-Content", typeof(GetContentCommand), Management("GetContentCommand")),
        ("Set-Content", typeof(SetContentCommand), Management("SetContentCommand")),
        ("Get-Location", typeof(GetLocationCommand), Management("GetLocationCommand")),
        ("Set-Location", typeof(SetLocationCommand), Management("SetLocationCommand")),
        ("Join-Path", typeof(JoinPathCommand), Management("JoinPathCommand")),
        ("Export-Clixml", typeof(ExportClixmlCommand), Utility("ExportClixmlCommand")),
        ("Import-Clixml", typeof(ImportClixmlCommand), Utility("ImportClixmlCommand")),
        ("ConvertTo-Json", typeof(ConvertToJsonCommand), Utility("ConvertToJsonCommand")),
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

        if (added.Contains("Group-Object"))
        {
            state.Types.Add(new SessionStateTypeEntry(DisplayedAs(typeof(GroupInfo), nameof(GroupInfo.Count), nameof(GroupInfo.Name), nameof(GroupInfo.Group)), isRemove: false));
        }

        if (added.Contains("Get-Member"))
        {
            state.Types.Add(new SessionStateTypeEntry(DisplayedAs(typeof(MemberDefinition), nameof(MemberDefinition.Name), nameof(MemberDefinition.MemberType), nameof(MemberDefinition.Definition)), isRemove: false));
        }

        return added;
    }

    /// <summary>The properties shown by default (a table of them), as pwsh's views show these results.</summary>
    private static TypeData DisplayedAs(Type type, params string[] properties) =>
        new(type) { DefaultDisplayPropertySet = new PropertySetData(properties) };

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
