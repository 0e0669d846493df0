using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Internal;

namespace Vmi.Shell.Builtins;

/// <summary>
/// Select-Object: picks properties (names, wildcards, calculated @{Name=;Expression=}), expands one, or picks
/// objects by position (-First, -Last, -Skip) and removes duplicates (-Unique). -First stops the commands upstream
/// once it has enough, so `Wait-VmiEvent | Select-Object -First 1` ends.
/// </summary>
[Cmdlet(VerbsCommon.Select, "Object")]
[OutputType(typeof(PSObject))]
public sealed class SelectObjectCommand : PSCmdlet
{
    private readonly Queue<PSObject?> _last = new();
    private readonly List<object?[]> _seen = [];
    private PropertySpec[] _specs = [];
    private WildcardPattern[] _exclude = [];
    private int _skipped;
    private int _firstWritten;
    private bool _ignoreRest;

    [Parameter(ValueFromPipeline = true)]
    public PSObject? InputObject { get; set; } = AutomationNull.Value;

    /// <summary>Property names (wildcards allowed) or calculated properties @{Name=...; Expression=...}.</summary>
    [Parameter(Position = 0)]
    public object[]? Property { get; set; }

    /// <summary>Names (wildcards allowed) of properties to leave out.</summary>
    [Parameter]
    public string[]? ExcludeProperty { get; set; }

    /// <summary>A property whose value (each element of it, for a collection) is written instead of the object.</summary>
    [Parameter]
    public string? ExpandProperty { get; set; }

    /// <summary>Write each distinct result once.</summary>
    [Parameter]
    public SwitchParameter Unique { get; set; }

    [Parameter]
    [ValidateRange(0, int.MaxValue)]
    public int First { get; set; }

    [Parameter]
    [ValidateRange(0, int.MaxValue)]
    public int Last { get; set; }

    [Parameter]
    [ValidateRange(0, int.MaxValue)]
    public int Skip { get; set; }

    private bool HasFirst => MyInvocation.BoundParameters.ContainsKey(nameof(First));

    private bool HasLast => MyInvocation.BoundParameters.ContainsKey(nameof(Last));

    protected override void BeginProcessing()
    {
        _specs = PropertySpec.Parse(Property, this, allowSortKeys: false);
        _exclude = (ExcludeProperty ?? []).Select(n => WildcardPattern.Get(n, WildcardOptions.IgnoreCase)).ToArray();
        if (_specs.Length == 0 && _exclude.Length > 0 && ExpandProperty is null)
        {
            _specs = PropertySpec.Parse(["*"], this, allowSortKeys: false); // -ExcludeProperty alone keeps everything else
        }

        if (HasFirst && First == 0 && !HasLast)
        {
            _ignoreRest = true;
        }
    }

    protected override void ProcessRecord()
    {
        if (_ignoreRest || InputObject == AutomationNull.Value)
        {
            return;
        }

        if (_skipped < Skip)
        {
            _skipped++;
            return;
        }

        foreach (PSObject? result in Transform(InputObject))
        {
            if (Unique && !IsNew(result))
            {
                continue;
            }

            if (HasFirst && _firstWritten < First)
            {
                WriteObject(result);
                _firstWritten++;
                continue;
            }

            if (HasLast)
            {
                _last.Enqueue(result);
                if (_last.Count > Last)
                {
                    _last.Dequeue();
                }

                continue;
            }

            if (!HasFirst)
            {
                WriteObject(result);
            }
        }

        if (HasFirst && !HasLast && _firstWritten >= First)
        {
            _ignoreRest = true;
            EngineInternals.TryStopUpstream(this); // throws to stop upstream when the engine can; else the rest is ignored
        }
    }

    protected override void EndProcessing()
    {
        foreach (PSObject? result in _last)
        {
            WriteObject(result);
        }
    }

    private IEnumerable<PSObject?> Transform(PSObject? input)
    {
        if (input is null)
        {
            yield return null;
            yield break;
        }

        if (ExpandProperty is not null)
        {
            PSPropertyInfo? expanded = input.Properties[ExpandProperty];
            if (expanded is null)
            {
                WriteError(BuiltinErrors.Create(
                    new PSArgumentException($"Property \"{ExpandProperty}\" cannot be found."),
                    BuiltinErrors.PropertyNotFound,
                    ErrorCategory.InvalidArgument,
                    input));
                yield break;
            }

            object? value = expanded.Value;
            IEnumerable? items = value is string ? null : LanguagePrimitives.GetEnumerable(value);
            foreach (object? item in items ?? new[] { value })
            {
                if (item is null)
                {
                    yield return null;
                    continue;
                }

                PSObject element = PSObject.AsPSObject(item);
                if (_specs.Length > 0)
                {
                    // -Property with -ExpandProperty adds the selected values to each expanded element.
                    foreach ((string name, object? v) in Values(input))
                    {
                        if (element.Properties[name] is null)
                        {
                            element.Properties.Add(new PSNoteProperty(name, v));
                        }
                    }
                }

                yield return element;
            }

            yield break;
        }

        if (_specs.Length == 0)
        {
            yield return input;
            yield break;
        }

        var selected = new PSObject();
        foreach ((string name, object? v) in Values(input))
        {
            if (selected.Properties[name] is null)
            {
                selected.Properties.Add(new PSNoteProperty(name, v));
            }
        }

        selected.TypeNames.Insert(0, "Selected." + (input.TypeNames.Count > 0 ? input.TypeNames[0] : input.BaseObject.GetType().FullName));
        yield return selected;
    }

    private IEnumerable<(string Name, object? Value)> Values(PSObject input)
    {
        foreach (PropertySpec spec in _specs)
        {
            IEnumerable<(string, object?)> values;
            try
            {
                values = spec.Evaluate(input).ToList();
            }
            catch (RuntimeException e)
            {
                WriteError(BuiltinErrors.Create(e, BuiltinErrors.ExpressionFailed, ErrorCategory.InvalidResult, input));
                values = [(spec.Name, null)];
            }

            foreach ((string name, object? value) in values)
            {
                if (!_exclude.Any(p => p.IsMatch(name)))
                {
                    yield return (name, value);
                }
            }
        }
    }

    /// <summary>Whether a result differs from every one written so far (property by property for selected objects).</summary>
    private bool IsNew(PSObject? result)
    {
        object?[] key = result is null
            ? new object?[] { null }
            : result.BaseObject is PSCustomObject
                ? result.Properties.Select(p => p.Value).ToArray()
                : [result.BaseObject];
        foreach (object?[] seen in _seen)
        {
            if (seen.Length == key.Length && seen.Zip(key).All(pair => LanguagePrimitives.Equals(pair.First, pair.Second)))
            {
                return false;
            }
        }

        _seen.Add(key);
        return true;
    }
}
