namespace Vmi.Os.Linux;

/// <summary>A resolved field: its byte offset from the start of the outer struct and its size in bytes.</summary>
public readonly record struct KernelField(string Path, ulong Offset, ulong Size);

/// <summary>
/// Where the Linux layer gets struct layouts: the kernel's own BTF (<see cref="BtfTypes"/>) or, for a kernel without
/// it, a Volatility 3 ISF profile (<see cref="IsfProfile"/>). Paths are dotted member names ("core_layout.base",
/// "uid.val"), looked up through typedefs and anonymous structs and unions as C does.
/// </summary>
public interface IKernelTypes
{
    /// <summary>What the layouts are, for messages: "the kernel's BTF", "the profile 'x.json'".</summary>
    string Description { get; }

    /// <summary>How many types the source holds.</summary>
    int Count { get; }

    bool TryGetField(string structName, string path, out KernelField field);

    /// <summary>For a field that is an array of structs: the element struct's name and size, and the count.</summary>
    bool TryGetStructArray(string structName, string path, out KernelField field, out string elementStruct, out ulong elementSize, out uint count);
}

internal static class KernelTypesExtensions
{
    public static KernelField GetField(this IKernelTypes types, string structName, string path) => types.TryGetField(structName, path, out KernelField f)
        ? f
        : throw new LinuxIntrospectionException($"{Capital(types.Description)} has no field {structName}.{path}.");

    private static string Capital(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..];
}
