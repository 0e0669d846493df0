using System.Globalization;
using System.Management.Automation;
using System.Management.Automation.Internal;

namespace Vmi.Shell.Builtins;

/// <summary>
/// Sort-Object: orders its input by properties, script blocks or @{Expression=...; Descending=...} keys (by the
/// objects themselves without -Property), stably; -Unique keeps the first of equal objects.
/// </summary>
[Cmdlet("Sort", "Object")] // the real cmdlet's name, which scripts use; Sort has no Verbs* constant
[OutputType(typeof(PSObject))]
public sealed class SortObjectCommand : PSCmdlet
{
    private readonly List<PSObject> _input = [];

    [Parameter(ValueFromPipeline = true)]
    public PSObject? InputObject { get; set; } = AutomationNull.Value;

    [Parameter(Position = 0)]
    public object[]? Property { get; set; }

    [Parameter]
    public SwitchParameter Descending { get; set; }

    [Parameter]
    public SwitchParameter Unique { get; set; }

    [Parameter]
    public SwitchParameter CaseSensitive { get; set; }

    /// <summary>Accepted for compatibility: this sort is always stable.</summary>
    [Parameter]
    public SwitchParameter Stable { get; set; }

    protected override void ProcessRecord()
    {
        if (InputObject != AutomationNull.Value)
        {
            _input.Add(InputObject ?? new PSObject());
        }
    }

    protected override void EndProcessing()
    {
        PropertySpec[] specs = PropertySpec.Parse(Property, this, allowSortKeys: true);
        bool[] descending = specs.Length == 0 ? [Descending] : specs.Select(s => s.Descending ?? Descending.IsPresent).ToArray();
        var keyed = new List<(PSObject Item, object?[] Key)>(_input.Count);
        foreach (PSObject item in _input)
        {
            keyed.Add((item, Keys(item, specs)));
        }

        var comparer = new KeyComparer(descending, !CaseSensitive);
        object?[]? previous = null;
        foreach ((PSObject item, object?[] key) in keyed.OrderBy(k => k.Key, comparer))
        {
            if (Unique && previous is not null && comparer.Compare(previous, key) == 0)
            {
                continue;
            }

            previous = key;
            WriteObject(item);
        }
    }

    private object?[] Keys(PSObject item, PropertySpec[] specs)
    {
        if (specs.Length == 0)
        {
            return [item];
        }

        var keys = new object?[specs.Length];
        for (int i = 0; i < specs.Length; i++)
        {
            try
            {
                keys[i] = specs[i].Value(item);
            }
            catch (RuntimeException e)
            {
                WriteError(BuiltinErrors.Create(e, BuiltinErrors.ExpressionFailed, ErrorCategory.InvalidResult, item));
            }
        }

        return keys;
    }

    /// <summary>Compares key by key with PowerShell's comparison (numbers as numbers), as text when the values cannot be compared.</summary>
    private sealed class KeyComparer(bool[] descending, bool ignoreCase) : IComparer<object?[]>
    {
        public int Compare(object?[]? x, object?[]? y)
        {
            for (int i = 0; i < descending.Length; i++)
            {
                int c = CompareOne(x![i], y![i]);
                if (c != 0)
                {
                    return descending[i] ? -c : c;
                }
            }

            return 0;
        }

        private int CompareOne(object? a, object? b)
        {
            a = a is PSObject pa ? pa.BaseObject : a;
            b = b is PSObject pb ? pb.BaseObject : b;
            if (a is null || b is null)
            {
                return a is null ? (b is null ? 0 : -1) : 1;
            }

            try
            {
                return LanguagePrimitives.Compare(a, b, ignoreCase, CultureInfo.CurrentCulture);
            }
            catch (Exception e) when (e is ArgumentException or PSInvalidCastException or InvalidCastException)
            {
                return string.Compare(
                    LanguagePrimitives.ConvertTo<string>(a),
                    LanguagePrimitives.ConvertTo<string>(b),
                    CultureInfo.CurrentCulture,
                    ignoreCase ? CompareOptions.IgnoreCase : CompareOptions.None);
            }
        }
    }
}
