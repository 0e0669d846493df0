using System.Globalization;
using System.Reflection;
using Vmi.Core.Arch.Amd64;

namespace Vmi.PowerShell;

/// <summary>Register access by name ("Rip", "cr3", "MsrLstar"), case-insensitively, over the engine's <see cref="Registers"/>.</summary>
internal static class RegisterAccess
{
    private static readonly Dictionary<string, PropertyInfo> Properties = typeof(Registers)
        .GetProperties(BindingFlags.Public | BindingFlags.Instance)
        .Where(p => p.CanWrite && p.GetIndexParameters().Length == 0)
        .ToDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);

    /// <summary>Every register name, in declaration order.</summary>
    public static IReadOnlyList<string> Names { get; } = typeof(Registers)
        .GetProperties(BindingFlags.Public | BindingFlags.Instance)
        .Where(p => p.CanWrite && p.GetIndexParameters().Length == 0)
        .Select(p => p.Name)
        .ToArray();

    /// <summary>The registers <see cref="Set"/> accepts (64-bit values).</summary>
    public static IReadOnlyList<string> SettableNames { get; } = Names.Where(n => Properties[n].PropertyType == typeof(ulong)).ToArray();

    public static string Canonical(string name) =>
        Properties.TryGetValue(name, out PropertyInfo? p)
            ? p.Name
            : throw new ArgumentException(string.Format(CultureInfo.CurrentCulture, Messages.RegisterUnknown, name, string.Join(", ", Names)), nameof(name));

    public static object Get(Registers registers, string name) => Properties[Canonical(name)].GetValue(registers)!;

    /// <summary>The changes a table of register names and values asks for, every name and value checked before anything changes.</summary>
    public static IReadOnlyList<(string Name, ulong Value)> Changes(System.Collections.IDictionary values)
    {
        var changes = new List<(string Name, ulong Value)>();
        var probe = new Registers();
        foreach (System.Collections.DictionaryEntry entry in values)
        {
            string key = System.Management.Automation.LanguagePrimitives.ConvertTo<string>(entry.Key);
            if (!VmiAddressTransformationAttribute.TryConvert(entry.Value, out ulong v))
            {
                throw new ArgumentException(string.Format(System.Globalization.CultureInfo.CurrentCulture, Messages.AddressNotUnderstood, entry.Value));
            }

            Set(probe, key, v);
            changes.Add((key, v));
        }

        return changes;
    }

    public static void Set(Registers registers, string name, ulong value)
    {
        PropertyInfo p = Properties[Canonical(name)];
        if (p.PropertyType != typeof(ulong))
        {
            throw new ArgumentException(string.Format(CultureInfo.CurrentCulture, Messages.RegisterUnknown, name, string.Join(", ", SettableNames)), nameof(name));
        }

        p.SetValue(registers, value);
    }
}
