using System.Collections;
using System.Globalization;
using System.Management.Automation;
using Vmi.Core;

namespace Vmi.PowerShell;

/// <summary>What an address parameter means, which decides what a typed address given to it turns into.</summary>
public enum AddressMeaning
{
    /// <summary>A number (a register value): a <see cref="Va"/> or <see cref="Pa"/> is its number; a <see cref="Gfn"/> is refused.</summary>
    Number,

    /// <summary>A virtual address: a <see cref="Pa"/> or <see cref="Gfn"/> is refused.</summary>
    Virtual,

    /// <summary>A physical address (a page-table root): a <see cref="Va"/> or <see cref="Gfn"/> is refused.</summary>
    Physical,

    /// <summary>A frame number: a <see cref="Gfn"/> is its frame, a <see cref="Pa"/> the frame that holds it; a <see cref="Va"/> is refused.</summary>
    Frame,

    /// <summary>
    /// Virtual or physical, as the command's -Physical says: the parameter is a <see cref="VmiAddress"/>, which keeps
    /// whether a <see cref="Va"/> or a <see cref="Pa"/> was given (a <see cref="Gfn"/> is refused).
    /// </summary>
    Either,
}

/// <summary>
/// Turns what users type into an address: numbers (a negative Int64 from a PowerShell hex literal such as
/// 0xfffff80000001000 is taken bit for bit), 0x-hex strings, <see cref="Va"/>, <see cref="Pa"/>, <see cref="Gfn"/>.
/// Arrays are converted element by element. Typed addresses keep their meaning (<see cref="Means"/>) or are refused.
/// </summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class VmiAddressTransformationAttribute : ArgumentTransformationAttribute
{
    /// <summary>What the parameter's address means (default: <see cref="AddressMeaning.Number"/>).</summary>
    public AddressMeaning Means { get; set; }

    public override object Transform(EngineIntrinsics engineIntrinsics, object inputData)
    {
        object? value = Unwrap(inputData);
        if (value is null)
        {
            return null!; // the binder reports a null for a mandatory address; optional ones (-Cr3) take it as "not given"
        }

        if (value is not string && value is IEnumerable list)
        {
            object?[] items = list.Cast<object?>().Select(Unwrap).ToArray();
            return Means == AddressMeaning.Either ? items.Select(ToAddress).ToArray() : (object)items.Select(ToNumber).ToArray();
        }

        if (!IsAddressLike(value))
        {
            // A record piped in: leave it to the binder, which then binds its Address/Va/Pa/Gfn property by name.
            return inputData;
        }

        return Means == AddressMeaning.Either ? ToAddress(value) : (object)ToNumber(value);
    }

    private VmiAddress ToAddress(object? value)
    {
        Check(value);
        return new VmiAddress(Convert(value), value switch { Va => VmiAddressKind.Virtual, Pa => VmiAddressKind.Physical, _ => VmiAddressKind.Number });
    }

    private ulong ToNumber(object? value)
    {
        Check(value);
        return Means == AddressMeaning.Frame && value is Pa pa ? pa.Value >> 12 : Convert(value);
    }

    /// <summary>Typed addresses keep their meaning: refused where they would silently become another kind of address.</summary>
    private void Check(object? value)
    {
        string? refusal = (Means, value) switch
        {
            (AddressMeaning.Frame, Va va) => string.Format(CultureInfo.CurrentCulture, Messages.VaIsNotAFrame, va),
            (not AddressMeaning.Frame, Gfn gfn) => string.Format(CultureInfo.CurrentCulture, Messages.GfnIsNotAnAddress, gfn, gfn.Value << 12),
            (AddressMeaning.Physical, Va va) => string.Format(CultureInfo.CurrentCulture, Messages.VaIsNotPhysical, va),
            (AddressMeaning.Virtual, Pa pa) => string.Format(CultureInfo.CurrentCulture, Messages.PaIsNotVirtual, pa, pa.Value),
            _ => null,
        };
        if (refusal is not null)
        {
            throw new ArgumentTransformationMetadataException(refusal);
        }
    }

    private static bool IsAddressLike(object value) =>
        value is string or Va or Pa or Gfn or System.Numerics.BigInteger || value.GetType().IsPrimitive || value is decimal;

    internal static object? Unwrap(object? value) => value is PSObject pso ? pso.BaseObject : value;

    internal static bool TryConvert(object? value, out ulong address)
    {
        address = 0;
        switch (Unwrap(value))
        {
            case ulong u: address = u; return true;
            case long l: address = unchecked((ulong)l); return true;
            case uint u: address = u; return true;
            case int i when i >= 0: address = (ulong)i; return true;
            case ushort u: address = u; return true;
            case short s when s >= 0: address = (ulong)s; return true;
            case byte b: address = b; return true;
            case sbyte b when b >= 0: address = (ulong)b; return true;
            case Va va: address = va.Value; return true;
            case Pa pa: address = pa.Value; return true;
            case Gfn gfn: address = gfn.Value; return true;
            case decimal d when d >= 0 && d <= ulong.MaxValue && decimal.Truncate(d) == d: address = (ulong)d; return true;
            case double d when d >= 0 && d < 18446744073709551616.0 && Math.Floor(d) == d: address = (ulong)d; return true;
            case System.Numerics.BigInteger b when b >= 0 && b <= ulong.MaxValue: address = (ulong)b; return true;
            case string s: return AddressParser.TryParse(s, out address);
            default: return false;
        }
    }

    private static ulong Convert(object? value)
    {
        if (TryConvert(value, out ulong address))
        {
            return address;
        }

        if (value is int or short or sbyte)
        {
            // -1 is no address; nor is it silently 0xffffffff. PowerShell reads a hex literal from 0x80000000 to
            // 0xffffffff as a negative Int32, so say how to write one.
            long n = System.Convert.ToInt64(value, CultureInfo.InvariantCulture);
            throw new ArgumentTransformationMetadataException(string.Format(CultureInfo.CurrentCulture, Messages.AddressNegative, n, unchecked((uint)n)));
        }

        throw new ArgumentTransformationMetadataException(
            string.Format(CultureInfo.CurrentCulture, Messages.AddressNotUnderstood, value ?? "$null"));
    }
}

/// <summary>Accepts a session, its Id or its Name (what a session in a serialised record turns into).</summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class VmiSessionTransformationAttribute : ArgumentTransformationAttribute
{
    public override object Transform(EngineIntrinsics engineIntrinsics, object inputData)
    {
        object? value = VmiAddressTransformationAttribute.Unwrap(inputData);
        switch (value)
        {
            case VmiSession s:
                return s;
            case sbyte or byte or short or ushort or int or uint or long or ulong:
                // Any integer is an id to look up: one no session has is "not found", never an overflow.
                long id = value is ulong big ? (big > long.MaxValue ? -1 : (long)big) : System.Convert.ToInt64(value, CultureInfo.InvariantCulture);
                return VmiSessionRegistry.All.FirstOrDefault(s => s.Id == id)
                    ?? throw new ArgumentTransformationMetadataException(string.Format(CultureInfo.CurrentCulture, Messages.SessionNotFound, value));
            case string name:
                // This runspace's sessions first, then any in the process; a name two sessions share is an error, not a guess.
                VmiSession? byName = Unique(VmiSessionRegistry.Current, name) ?? Unique(VmiSessionRegistry.All, name)
                    ?? (int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out int n) ? VmiSessionRegistry.All.FirstOrDefault(s => s.Id == n) : null);
                return byName ?? throw new ArgumentTransformationMetadataException(string.Format(CultureInfo.CurrentCulture, Messages.SessionNotFound, name));
            case null:
                throw new ArgumentTransformationMetadataException(string.Format(CultureInfo.CurrentCulture, Messages.SessionNotUnderstood, "$null"));
            default:
                // A record that names its session (Get-VmiRegister | Disconnect-VmiDomain): that session.
                if (PSObject.AsPSObject(inputData).Properties["Session"]?.Value is { } held && VmiAddressTransformationAttribute.Unwrap(held) is VmiSession owner)
                {
                    return owner;
                }

                // A deserialised session (remoting) carries its Id and Name.
                if (inputData is PSObject pso && pso.Properties["Name"]?.Value is string remoteName)
                {
                    return Transform(engineIntrinsics, remoteName);
                }

                throw new ArgumentTransformationMetadataException(string.Format(CultureInfo.CurrentCulture, Messages.SessionNotUnderstood, value));
        }
    }

    private static VmiSession? Unique(IReadOnlyList<VmiSession> sessions, string name)
    {
        VmiSession[] named = sessions.Where(s => string.Equals(s.Name, name, StringComparison.OrdinalIgnoreCase)).ToArray();
        return named.Length switch
        {
            0 => null,
            1 => named[0],
            _ => throw new ArgumentTransformationMetadataException(string.Format(
                CultureInfo.CurrentCulture, Messages.SessionNameAmbiguous, name, string.Join(", ", named.Select(s => s.Id.ToString(CultureInfo.InvariantCulture))), named[0].Id)),
        };
    }
}
