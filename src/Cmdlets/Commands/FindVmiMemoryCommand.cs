using System.Globalization;
using System.Management.Automation;
using System.Text;
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
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = PatternSet)]
    [ValidateNotNull]
    public object? Pattern { get; set; }

    /// <summary>An ASCII/UTF-8 string to find (no terminator is searched for).</summary>
    [Parameter(Mandatory = true, ParameterSetName = StringSet)]
    [ValidateNotNullOrEmpty]
    public string? String { get; set; }

    /// <summary>A UTF-16LE string to find.</summary>
    [Parameter(Mandatory = true, ParameterSetName = WStringSet)]
    [ValidateNotNullOrEmpty]
    public string? WString { get; set; }

    /// <summary>Where the search starts. With -Physical the default is 0.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [Alias("Va", "Pa")]
    [VmiAddressTransformation]
    public ulong Address { get; set; }

    /// <summary>Bytes to search. With -Physical the default is all of guest memory from -Address.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateRange(1, long.MaxValue)]
    public long Length { get; set; }

    /// <summary>Stop after this many hits.</summary>
    [Parameter]
    [ValidateRange(1, int.MaxValue)]
    public int First { get; set; } = int.MaxValue;

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        BytePattern pattern;
        try
        {
            pattern = ParameterSetName switch
            {
                StringSet => BytePattern.FromString(String!, new UTF8Encoding(false)),
                WStringSet => BytePattern.FromString(WString!, new UnicodeEncoding(false, false)),
                _ => PatternInput.FromObject(Pattern!),
            };
        }
        catch (Exception e) when (e is ArgumentException or PSInvalidCastException)
        {
            ThrowTerminatingError(VmiErrors.InvalidArgument(e.Message, Pattern ?? String ?? WString));
            return;
        }

        ulong length;
        if (MyInvocation.BoundParameters.ContainsKey(nameof(Length)))
        {
            length = (ulong)Length;
        }
        else if (Physical)
        {
            ulong end = (session.MaxGfn + 1) * session.PageSize;
            if (session.Guest.StoredEnd is { } stored && stored < end && Address < end)
            {
                // An image may declare zero-filled memory far beyond what it stores (ELF p_memsz >> p_filesz): searching
                // petabytes of zeros would take days, so the default range ends with the stored memory.
                WriteWarning(string.Format(CultureInfo.CurrentCulture, Messages.SearchSkipsZeroFill, stored, end, end - stored));
                end = stored;
            }

            length = end > Address ? end - Address : 0;
        }
        else
        {
            ThrowTerminatingError(VmiErrors.InvalidArgument(Messages.RangeRequired, null));
            return;
        }

        var progress = new ProgressReporter(this, 2, Messages.ProgressFind);
        try
        {
            AccessContext start = Context(session, Address);
            foreach (SearchHit hit in session.Guest.Search(start, length, pattern, First, progress, StopToken))
            {
                WriteObject(new VmiMemoryMatch(session, hit.Address, Physical, start.Mechanism.Root?.Value, hit.Bytes, pattern.Text));
            }
        }
        catch (Exception e) when (IsItemError(e))
        {
            WriteVmiError(e, AddressTarget(Address));
        }
        finally
        {
            progress.Complete();
        }
    }
}
