using System.Collections;
using System.Globalization;
using System.Management.Automation;
using Vmi.Core.Arch.Amd64;

namespace Vmi.PowerShell;

/// <summary>
/// Register names and values as scripts give them, over the engine's by-name table (<see cref="Registers.Names"/>,
/// <see cref="Registers.With(string, ulong)"/>): names case-insensitively, values as numbers or hex strings.
/// </summary>
internal static class RegisterAccess
{
    /// <summary>Every register name, in declaration order.</summary>
    public static IReadOnlyList<string> Names => Registers.Names;

    /// <summary>The name as <see cref="Registers.Names"/> spells it; an <see cref="ArgumentException"/> naming them all otherwise.</summary>
    public static string Canonical(string name) =>
        Registers.TryGetName(name, out string? canonical)
            ? canonical
            : throw new ArgumentException(string.Format(CultureInfo.CurrentCulture, Messages.RegisterUnknown, name, string.Join(", ", Names)), nameof(name));

    /// <summary>The changes a table of register names and values asks for, every name and value checked before anything changes.</summary>
    public static IReadOnlyList<KeyValuePair<string, ulong>> Changes(IDictionary values)
    {
        var changes = new List<KeyValuePair<string, ulong>>();
        foreach (DictionaryEntry entry in values)
        {
            string name = Canonical(LanguagePrimitives.ConvertTo<string>(entry.Key));
            if (!Registers.ValueNames.Contains(name))
            {
                throw new ArgumentException(string.Format(CultureInfo.CurrentCulture, Messages.RegisterNotSettable, name, string.Join(", ", Registers.ValueNames)), nameof(values));
            }

            if (!VmiAddressTransformationAttribute.TryConvert(entry.Value, out ulong v))
            {
                throw new ArgumentException(string.Format(CultureInfo.CurrentCulture, Messages.AddressNotUnderstood, entry.Value));
            }

            changes.Add(new(name, v));
        }

        return changes;
    }
}
