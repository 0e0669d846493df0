using System.Globalization;
using System.Management.Automation;
using Vmi.Core;
using Vmi.Core.Search;

namespace Vmi.PowerShell.Commands;

/// <summary>
/// Searches guest memory for bytes (with ?? wildcards), an ASCII/UTF-8 string or a UTF-16 string, streaming each hit
/// as it is found. Pages that cannot be read are skipped (nothing matches across them).
/// </summary>
[Cmdlet(VerbsCommon.Find, "VmiMemory", DefaultParameterSetName = PatternSet)]
[OutputType(typeof(VmiMemoryMatch))]
public sealed class FindVmiMemoryCommand : VmiMemoryCmdlet
{
    public const string PatternSet = "Pattern";
    public const string StringSet = "String";
    public const string WStringSet = "WString";

    /// <summary>Bytes to find: a byte array, or hex text with ?? for any byte ('4d 5a ?? 00').</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = PatternSet), ValidateNotNull]
    public object? Pattern { get; set; }

    /// <summary>An ASCII/UTF-8 string to find (no terminator is searched for).</summary>
    [Parameter(Mandatory = true, ParameterSetName = StringSet), ValidateNotNullOrEmpty]
    public string? String { get; set; }

    /// <summary>A UTF-16LE string to find.</summary>
    [Parameter(Mandatory = true, ParameterSetName = WStringSet), ValidateNotNullOrEmpty]
    public string? WString { get; set; }

    /// <summary>Where the search starts. With -Physical the default is 0.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true), Alias("Va", "Pa"), VmiAddressTransformation(Means = AddressMeaning.Either)]
    public VmiAddress Address { get; set; }

    /// <summary>Bytes to search. With -Physical the default is all of guest memory from -Address.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true), ValidateRange(1, long.MaxValue)]
    public long Length { get; set; }

    /// <summary>Stop after this many hits.</summary>
    [Parameter, ValidateRange(1, int.MaxValue)]
    public int First { get; set; } = int.MaxValue;

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        var progress = new ProgressReporter(this, 2, Messages.ProgressFind);
        try
        {
            BytePattern pattern = PatternInput.From(Pattern, String, WString);
            ulong address = Locate(Address);
            PhysicalSearchRange range = MyInvocation.BoundParameters.ContainsKey(nameof(Length)) ? new(address, (ulong)Length, null)
                : IsPhysical ? session.Guest.PhysicalFrom(address)
                : throw new PSArgumentException(Messages.RangeRequired);
            AccessContext start = Context(session, address);
            if (range.DeclaredEnd is { } declared)
            {
                ulong stored = range.Start + range.Length;
                WriteWarning(string.Format(CultureInfo.CurrentCulture, Messages.SearchSkipsZeroFill, stored, declared, declared - stored));
            }

            foreach (SearchHit hit in session.Guest.Search(start, range.Length, pattern, First, progress, StopToken))
            {
                WriteObject(new VmiMemoryMatch(session, hit.Address, IsPhysical, start.Mechanism.Root?.Value, hit.Bytes, pattern.Text));
            }
        }
        catch (PSArgumentException e)
        {
            ThrowTerminatingError(VmiErrors.InvalidArgument(e.Message, Pattern ?? String ?? WString)); // no pattern or no range: nothing to search
        }
        catch (Exception e) when (IsItemError(e))
        {
            WriteVmiError(e, AddressTarget(Address.Value));
        }
        finally
        {
            progress.Complete();
        }
    }
}
