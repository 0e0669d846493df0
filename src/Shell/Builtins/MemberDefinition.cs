using System.Management.Automation;

namespace Vmi.Shell.Builtins;

/// <summary>A member Get-Member found: the type it belongs to, its name, kind and signature.</summary>
public sealed class MemberDefinition(string typeName, string name, PSMemberTypes memberType, string definition)
{
    public string TypeName { get; } = typeName;

    public string Name { get; } = name;

    public PSMemberTypes MemberType { get; } = memberType;

    public string Definition { get; } = definition;

    public override string ToString() => Definition;
}
