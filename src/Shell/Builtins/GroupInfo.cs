using System.Collections;
using System.Collections.ObjectModel;
using System.Management.Automation;

namespace Vmi.Shell.Builtins;

/// <summary>A group from Group-Object: its key values (Values, joined into Name), and the objects in it.</summary>
public sealed class GroupInfo
{
    internal GroupInfo(string name, ArrayList values)
    {
        Name = name;
        Values = values;
    }

    public int Count => Group.Count;

    public string Name { get; }

    public ArrayList Values { get; }

    public Collection<PSObject> Group { get; } = [];

    public override string ToString() => Name;
}
