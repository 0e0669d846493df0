using System.Management.Automation;
using Vmi.Core.Search;

namespace Vmi.PowerShell;

/// <summary>Binds what -Pattern accepts: a byte array, a list of numbers, or hex text with ?? wildcards.</summary>
internal static class PatternArgument
{
    public static BytePattern ToPattern(object? value) => value switch
    {
        PSObject { BaseObject: byte[] b } => BytePattern.FromBytes(b),
        byte[] bytes => BytePattern.FromBytes(bytes),
        object[] { Length: > 0 } items => BytePattern.FromBytes(items.Select(i => LanguagePrimitives.ConvertTo<byte>(i)).ToArray()),
        _ => BytePattern.Parse(LanguagePrimitives.ConvertTo<string>(value)),
    };
}
