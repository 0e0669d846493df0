using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Internal;

namespace Vmi.Shell.Builtins;

/// <summary>
/// Group-Object: groups its input by the values of properties, script blocks or calculated properties (by the objects
/// themselves without -Property); groups come out in the order their first member came in. -AsHashTable gives a
/// hashtable from key to the objects.
/// </summary>
[Cmdlet(VerbsData.Group, "Object", DefaultParameterSetName = GroupsSet)]
[OutputType(typeof(GroupInfo), ParameterSetName = [GroupsSet])]
[OutputType(typeof(Hashtable), ParameterSetName = [HashtableSet])]
public sealed class GroupObjectCommand : PSCmdlet
{
    private const string GroupsSet = "Groups";
    private const string HashtableSet = "HashTable";

    private readonly List<GroupInfo> _groups = [];
    private Dictionary<string, GroupInfo>? _byName;
    private PropertySpec[] _specs = [];

    [Parameter(ValueFromPipeline = true)]
    public PSObject? InputObject { get; set; } = AutomationNull.Value;

    [Parameter(Position = 0)]
    public object[]? Property { get; set; }

    /// <summary>Leave the objects out of the groups (only Count, Name and Values).</summary>
    [Parameter(ParameterSetName = GroupsSet)]
    public SwitchParameter NoElement { get; set; }

    [Parameter(ParameterSetName = HashtableSet, Mandatory = true)]
    [Alias("AHT")]
    public SwitchParameter AsHashTable { get; set; }

    /// <summary>With -AsHashTable: keys are the group names (text) rather than the values.</summary>
    [Parameter(ParameterSetName = HashtableSet)]
    public SwitchParameter AsString { get; set; }

    [Parameter]
    public SwitchParameter CaseSensitive { get; set; }

    protected override void BeginProcessing()
    {
        _specs = PropertySpec.Parse(Property, this, allowSortKeys: false);
        _byName = new Dictionary<string, GroupInfo>(CaseSensitive ? StringComparer.Ordinal : StringComparer.OrdinalIgnoreCase);
    }

    protected override void ProcessRecord()
    {
        if (InputObject == AutomationNull.Value)
        {
            return;
        }

        PSObject item = InputObject ?? new PSObject();
        var values = new ArrayList();
        if (_specs.Length == 0)
        {
            values.Add(InputObject?.BaseObject);
        }
        else
        {
            foreach (PropertySpec spec in _specs)
            {
                try
                {
                    object? v = spec.Value(item);
                    values.Add(v is PSObject p ? p.BaseObject : v);
                }
                catch (RuntimeException e)
                {
                    WriteError(BuiltinErrors.Create(e, BuiltinErrors.ExpressionFailed, ErrorCategory.InvalidResult, item));
                    values.Add(null);
                }
            }
        }

        string name = string.Join(", ", values.Cast<object?>().Select(v => v is null ? string.Empty : LanguagePrimitives.ConvertTo<string>(v)));
        if (!_byName!.TryGetValue(name, out GroupInfo? group))
        {
            group = new GroupInfo(name, values);
            _byName.Add(name, group);
            _groups.Add(group);
        }

        group.Group.Add(item);
    }

    protected override void EndProcessing()
    {
        if (AsHashTable)
        {
            var table = new Hashtable(CaseSensitive ? StringComparer.Ordinal : StringComparer.CurrentCultureIgnoreCase);
            foreach (GroupInfo g in _groups)
            {
                object key = AsString || g.Values.Count != 1 || g.Values[0] is null ? g.Name : g.Values[0]!;
                table[key] = g.Group;
            }

            WriteObject(table);
            return;
        }

        foreach (GroupInfo g in _groups)
        {
            if (NoElement)
            {
                var summary = new PSObject();
                summary.Properties.Add(new PSNoteProperty(nameof(GroupInfo.Count), g.Count));
                summary.Properties.Add(new PSNoteProperty(nameof(GroupInfo.Name), g.Name));
                summary.Properties.Add(new PSNoteProperty(nameof(GroupInfo.Values), g.Values));
                WriteObject(summary);
            }
            else
            {
                WriteObject(g);
            }
        }
    }
}
