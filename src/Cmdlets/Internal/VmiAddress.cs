using System.Globalization;
using Vmi.Core;

namespace Vmi.PowerShell;

/// <summary>How an address was given: a plain number, or typed as virtual (<see cref="Va"/>) or physical (<see cref="Pa"/>).</summary>
public enum VmiAddressKind
{
    /// <summary>A number or text: virtual or physical as the command's -Physical says.</summary>
    Number,

    /// <summary>A <see cref="Va"/>: virtual, whatever else is given; -Physical with it is refused.</summary>
    Virtual,

    /// <summary>A <see cref="Pa"/>: physical without -Physical; -Cr3 with it is refused.</summary>
    Physical,
}

/// <summary>
/// An address as given to a command that reads or writes either kind of memory (Read-VmiMemory -Address): its number
/// and whether it came typed, so a <see cref="Pa"/> stays physical and a <see cref="Va"/> virtual.
/// </summary>
public readonly record struct VmiAddress(ulong Value, VmiAddressKind Kind)
{
    /// <summary>
    /// Whether this address is physical given the command's -Physical and -Cr3; a <see cref="Va"/> with -Physical and a
    /// <see cref="Pa"/> with -Cr3 are refused (<see cref="VmiAddressKindMismatchException"/>).
    /// </summary>
    public bool IsPhysical(bool physicalSwitch, bool cr3Given) => Kind switch
    {
        VmiAddressKind.Virtual when physicalSwitch => throw new VmiAddressKindMismatchException(string.Format(CultureInfo.CurrentCulture, Messages.VaWithPhysical, new Va(Value))),
        VmiAddressKind.Physical when cr3Given => throw new VmiAddressKindMismatchException(string.Format(CultureInfo.CurrentCulture, Messages.PaWithCr3, new Pa(Value))),
        VmiAddressKind.Physical => true,
        VmiAddressKind.Virtual => false,
        _ => physicalSwitch,
    };

    public override string ToString() => "0x" + Value.ToString("x", CultureInfo.InvariantCulture);
}

/// <summary>A typed address given with a switch that says it is the other kind (a [Vmi.Core.Va] with -Physical).</summary>
public sealed class VmiAddressKindMismatchException(string message) : ArgumentException(message);
