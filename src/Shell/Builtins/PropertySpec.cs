using System.Collections;
using System.Collections.ObjectModel;
using System.Management.Automation;

namespace Vmi.Shell.Builtins;

/// <summary>
/// One entry of a -Property argument: a property name (wildcards allowed), a script block, or a calculated property
/// @{Name=...; Expression=...} (keys Name/N/Label/L, Expression/E, and for sorting Ascending/Descending).
/// </summary>
internal sealed class PropertySpec
{
    private readonly string? _property;
    private readonly ScriptBlock? _script;
    private readonly WildcardPattern? _pattern;

    private PropertySpec(string name, string? property, ScriptBlock? script, bool? descending)
    {
        Name = name;
        _property = property;
        _script = script;
        Descending = descending;
        if (property is not null && WildcardPattern.ContainsWildcardCharacters(property))
        {
            _pattern = WildcardPattern.Get(property, WildcardOptions.IgnoreCase);
        }
    }

    /// <summary>The name the value gets in an output object.</summary>
    public string Name { get; }

    /// <summary>A per-key sort order (@{Expression=...; Descending=$true}); null when not given.</summary>
    public bool? Descending { get; }

    public bool IsWildcard => _pattern is not null;

    /// <summary>Parses each entry; throws a terminating error for a malformed hashtable.</summary>
    public static PropertySpec[] Parse(object[]? entries, PSCmdlet cmdlet, bool allowSortKeys)
    {
        if (entries is null)
        {
            return [];
        }

        var specs = new PropertySpec[entries.Length];
        for (int i = 0; i < entries.Length; i++)
        {
            specs[i] = ParseOne(entries[i], cmdlet, allowSortKeys);
        }

        return specs;
    }

    private static PropertySpec ParseOne(object? entry, PSCmdlet cmdlet, bool allowSortKeys)
    {
        object? value = entry is PSObject ps ? ps.BaseObject : entry;
        switch (value)
        {
            case ScriptBlock script:
                return new PropertySpec(script.ToString(), property: null, script, descending: null);
            case IDictionary table:
                string? name = null;
                object? expression = null;
                bool? descending = null;
                foreach (DictionaryEntry e in table)
                {
                    string key = e.Key?.ToString() ?? string.Empty;
                    object? v = e.Value is PSObject p ? p.BaseObject : e.Value;
                    if (IsKey(key, "Name") || IsKey(key, "Label"))
                    {
                        name = v?.ToString();
                    }
                    else if (IsKey(key, "Expression"))
                    {
                        expression = v;
                    }
                    else if (allowSortKeys && IsKey(key, "Ascending"))
                    {
                        descending = !LanguagePrimitives.IsTrue(v);
                    }
                    else if (allowSortKeys && IsKey(key, "Descending"))
                    {
                        descending = LanguagePrimitives.IsTrue(v);
                    }
                    else
                    {
                        cmdlet.ThrowTerminatingError(BuiltinErrors.Argument(
                            $"The key '{key}' is not valid in a calculated property; use Name (or Label) and Expression{(allowSortKeys ? ", Ascending, Descending" : string.Empty)}.",
                            BuiltinErrors.BadPropertyKey,
                            table));
                    }
                }

                return expression switch
                {
                    ScriptBlock s => new PropertySpec(name ?? s.ToString(), property: null, s, descending),
                    string s => new PropertySpec(name ?? s, s, script: null, descending),
                    null => ThrowNoExpression(cmdlet, table),
                    _ => new PropertySpec(name ?? expression.ToString() ?? string.Empty, expression.ToString(), script: null, descending),
                };
            default:
                string text = value?.ToString() ?? string.Empty;
                return new PropertySpec(text, text, script: null, descending: null);
        }
    }

    private static PropertySpec ThrowNoExpression(PSCmdlet cmdlet, IDictionary table)
    {
        cmdlet.ThrowTerminatingError(BuiltinErrors.Argument(
            "A calculated property needs an Expression: @{Name='...'; Expression={ $_.... }}.", BuiltinErrors.NoExpression, table));
        return null!; // not reached: ThrowTerminatingError throws
    }

    /// <summary>A key matches a name when it is a non-empty prefix of it, as in PowerShell (n, na, name).</summary>
    private static bool IsKey(string key, string name) =>
        key.Length > 0 && name.StartsWith(key, StringComparison.OrdinalIgnoreCase);

    /// <summary>The (name, value) pairs this entry gives for <paramref name="input"/>: several for a wildcard, none when a wildcard matches nothing.</summary>
    public IEnumerable<(string Name, object? Value)> Evaluate(PSObject input)
    {
        if (_pattern is not null)
        {
            foreach (PSPropertyInfo p in input.Properties)
            {
                if (_pattern.IsMatch(p.Name))
                {
                    yield return (p.Name, SafeValue(p));
                }
            }

            yield break;
        }

        yield return (Name, Value(input));
    }

    /// <summary>The single value of this entry for <paramref name="input"/> (a missing property is null).</summary>
    public object? Value(PSObject input)
    {
        if (_script is not null)
        {
            return Invoke(_script, input);
        }

        PSPropertyInfo? p = input.Properties[_property!];
        return p is null ? null : SafeValue(p);
    }

    public bool HasProperty(PSObject input) => _script is not null || input.Properties[_property!] is not null;

    /// <summary>Runs a script block with $_ set to <paramref name="input"/>; one result is itself, several an array.</summary>
    public static object? Invoke(ScriptBlock script, PSObject input)
    {
        Collection<PSObject> results = script.InvokeWithContext(functionsToDefine: null, [new PSVariable("_", input)]);
        return results.Count switch
        {
            0 => null,
            1 => results[0],
            _ => results.ToArray(),
        };
    }

    private static object? SafeValue(PSPropertyInfo property)
    {
        try
        {
            return property.Value;
        }
        catch (GetValueException)
        {
            return null; // a getter that throws shows as empty, as in PowerShell's formatter
        }
    }
}
