namespace Vmi.Shell.Builtins;

/// <summary>What Measure-Object found: the count, and the statistics asked for (null when not asked).</summary>
public sealed class GenericMeasureInfo
{
    public int Count { get; init; }

    public double? Average { get; init; }

    public double? Sum { get; init; }

    public double? Maximum { get; init; }

    public double? Minimum { get; init; }

    /// <summary>The property measured; null when the input objects themselves were.</summary>
    public string? Property { get; init; }
}
