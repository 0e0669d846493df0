using System.Management.Automation;
using System.Management.Automation.Internal;

namespace Vmi.Shell.Builtins;

/// <summary>
/// Measure-Object: counts its input and, on request, the sum, average, minimum and maximum of numeric property
/// values (of the objects themselves without -Property). One result per property.
/// </summary>
[Cmdlet(VerbsDiagnostic.Measure, "Object")]
[OutputType(typeof(GenericMeasureInfo))]
public sealed class MeasureObjectCommand : PSCmdlet
{
    private readonly List<Statistics> _stats = [];
    private Statistics? _self;

    [Parameter(ValueFromPipeline = true)]
    public PSObject? InputObject { get; set; } = AutomationNull.Value;

    /// <summary>Names (wildcards allowed) of the properties to measure.</summary>
    [Parameter(Position = 0)]
    [ValidateNotNullOrEmpty]
    public string[]? Property { get; set; }

    [Parameter]
    public SwitchParameter Sum { get; set; }

    [Parameter]
    public SwitchParameter Average { get; set; }

    [Parameter]
    public SwitchParameter Maximum { get; set; }

    [Parameter]
    public SwitchParameter Minimum { get; set; }

    private bool NeedsNumbers => Sum || Average || Maximum || Minimum;

    protected override void ProcessRecord()
    {
        if (InputObject == AutomationNull.Value)
        {
            return;
        }

        if (Property is null)
        {
            _self ??= new Statistics(null);
            Add(_self, InputObject, InputObject);
            return;
        }

        foreach (string name in Property)
        {
            bool found = false;
            if (InputObject is not null)
            {
                var pattern = WildcardPattern.Get(name, WildcardOptions.IgnoreCase);
                foreach (PSPropertyInfo p in InputObject.Properties)
                {
                    if (pattern.IsMatch(p.Name))
                    {
                        found = true;
                        Add(For(p.Name), p.Value, InputObject);
                    }
                }
            }

            if (!found && !WildcardPattern.ContainsWildcardCharacters(name))
            {
                For(name).Missing = true;
            }
        }
    }

    protected override void EndProcessing()
    {
        if (Property is null)
        {
            Write(_self ?? new Statistics(null));
            return;
        }

        foreach (Statistics s in _stats)
        {
            if (s.Count == 0 && s.Missing)
            {
                WriteError(BuiltinErrors.Create(
                    new PSArgumentException($"The property \"{s.Property}\" cannot be found in the input for any objects."),
                    BuiltinErrors.MeasurePropertyNotFound,
                    ErrorCategory.InvalidArgument,
                    s.Property));
                continue;
            }

            Write(s);
        }
    }

    private Statistics For(string property)
    {
        Statistics? s = _stats.Find(x => string.Equals(x.Property, property, StringComparison.OrdinalIgnoreCase));
        if (s is null)
        {
            s = new Statistics(property);
            _stats.Add(s);
        }

        return s;
    }

    private void Add(Statistics s, object? value, PSObject? source)
    {
        if (value is null && s.Property is not null)
        {
            return; // a property without a value is not counted, as in PowerShell
        }

        if (NeedsNumbers)
        {
            if (!LanguagePrimitives.TryConvertTo(value, System.Globalization.CultureInfo.InvariantCulture, out double number))
            {
                WriteError(BuiltinErrors.Create(
                    new PSInvalidCastException($"Input object \"{value}\" is not numeric."),
                    BuiltinErrors.NotNumeric,
                    ErrorCategory.InvalidType,
                    source));
                return;
            }

            s.Sum += number;
            s.Min = Math.Min(s.Min, number);
            s.Max = Math.Max(s.Max, number);
        }

        s.Count++;
    }

    private void Write(Statistics s)
    {
        bool any = s.Count > 0;
        WriteObject(new GenericMeasureInfo
        {
            Property = s.Property,
            Count = s.Count,
            Sum = Sum ? s.Sum : null,
            Average = Average && any ? s.Sum / s.Count : null,
            Maximum = Maximum && any ? s.Max : null,
            Minimum = Minimum && any ? s.Min : null,
        });
    }

    private sealed class Statistics(string? property)
    {
        public string? Property { get; } = property;

        public int Count { get; set; }

        public double Sum { get; set; }

        public double Min { get; set; } = double.PositiveInfinity;

        public double Max { get; set; } = double.NegativeInfinity;

        public bool Missing { get; set; }
    }
}
