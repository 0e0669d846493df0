using System.Management.Automation;
using System.Management.Automation.Internal;

namespace Vmi.Shell.Builtins;

/// <summary>
/// Get-Member: the properties and methods of the input objects, once per type (by the first of their PowerShell
/// type names), sorted by kind and name.
/// </summary>
[Cmdlet(VerbsCommon.Get, "Member")]
[OutputType(typeof(MemberDefinition))]
public sealed class GetMemberCommand : PSCmdlet
{
    private readonly HashSet<string> _typesSeen = new(StringComparer.OrdinalIgnoreCase);
    private WildcardPattern[] _names = [];

    [Parameter(ValueFromPipeline = true)]
    public PSObject? InputObject { get; set; } = AutomationNull.Value;

    /// <summary>Member names (wildcards allowed).</summary>
    [Parameter(Position = 0)]
    [ValidateNotNullOrEmpty]
    public string[]? Name { get; set; }

    [Parameter]
    [Alias("Type")]
    public PSMemberTypes MemberType { get; set; } = PSMemberTypes.All;

    /// <summary>Include the intrinsic members (psobject, psbase, psadapted, psextended, pstypenames).</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void BeginProcessing() =>
        _names = (Name ?? ["*"]).Select(n => WildcardPattern.Get(n, WildcardOptions.IgnoreCase)).ToArray();

    protected override void ProcessRecord()
    {
        if (InputObject is null || InputObject == AutomationNull.Value)
        {
            return;
        }

        string typeName = InputObject.TypeNames.Count > 0 ? InputObject.TypeNames[0] : InputObject.BaseObject.GetType().FullName!;
        if (!_typesSeen.Add(typeName))
        {
            return;
        }

        var found = new List<MemberDefinition>();
        foreach (PSMemberInfo m in InputObject.Members)
        {
            if ((m.MemberType & MemberType) == 0 || !_names.Any(p => p.IsMatch(m.Name)) || (!Force && (IsIntrinsic(m) || IsAccessor(m, InputObject))))
            {
                continue;
            }

            found.Add(new MemberDefinition(typeName, m.Name, m.MemberType, Definition(m)));
        }

        foreach (MemberDefinition d in found.OrderBy(d => d.MemberType.ToString(), StringComparer.Ordinal).ThenBy(d => d.Name, StringComparer.OrdinalIgnoreCase))
        {
            WriteObject(d);
        }
    }

    private static bool IsIntrinsic(PSMemberInfo member) =>
        member.MemberType == PSMemberTypes.MemberSet
        || string.Equals(member.Name, "pstypenames", StringComparison.OrdinalIgnoreCase);

    /// <summary>get_X, set_X, add_X, remove_X: the methods behind a property or event, listed under it.</summary>
    private static bool IsAccessor(PSMemberInfo member, PSObject owner)
    {
        if (member.MemberType != PSMemberTypes.Method)
        {
            return false;
        }

        int underscore = member.Name.IndexOf('_', StringComparison.Ordinal);
        return underscore > 0
            && member.Name[..underscore] is "get" or "set" or "add" or "remove"
            && owner.Members[member.Name[(underscore + 1)..]] is { MemberType: not PSMemberTypes.Method };
    }

    private static string Definition(PSMemberInfo member)
    {
        try
        {
            return member.ToString() ?? member.Name;
        }
        catch (Exception e) when (e is GetValueException or ExtendedTypeSystemException)
        {
            return member.TypeNameOfValue;
        }
    }
}
