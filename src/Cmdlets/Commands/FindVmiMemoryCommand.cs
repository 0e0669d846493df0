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
                _ => Pattern is PSObject { BaseObject: byte[] b } ? BytePattern.FromBytes(b)
                    : Pattern is byte[] bytes ? BytePattern.FromBytes(bytes)
                    : Pattern is object[] items && items.Length > 0 ? BytePattern.FromBytes(items.Select(i => LanguagePrimitives.ConvertTo<byte>(i)).ToArray())
                    : BytePattern.Parse(LanguagePrimitives.ConvertTo<string>(Pattern)),
            };
        }
        catch (Exception e) when (e is ArgumentException or PSInvalidCastException)
        {
            ThrowTerminatingError(VmiErrors.InvalidArgument(e.Message, Pattern ?? String ?? WString));
            return;
        }

        ulong start = Address;
        ulong length;
        if (MyInvocation.BoundParameters.ContainsKey(nameof(Length)))
        {
            length = (ulong)Length;
        }
        else if (Physical)
        {
            ulong end = (session.MaxGfn + 1) * session.PageSize;
            ulong stored = session.Use(core => core.Driver is Vmi.Dump.MemoryImage image ? image.StoredEnd.Value : end);
            if (stored < end && start < end)
            {
                // An image may declare zero-filled memory far beyond what it stores (ELF p_memsz >> p_filesz): searching
                // petabytes of zeros would take days, so the default range ends with the stored memory.
                WriteWarning(string.Format(CultureInfo.CurrentCulture, Messages.SearchSkipsZeroFill, stored, end, end - stored));
                end = stored;
            }

            length = end > start ? end - start : 0;
        }
        else
        {
            ThrowTerminatingError(VmiErrors.InvalidArgument(Messages.RangeRequired, null));
            return;
        }

        if (length > 0 && start + (length - 1) < start)
        {
            ThrowTerminatingError(VmiErrors.InvalidArgument(string.Format(CultureInfo.CurrentCulture, Messages.RangeOverflow, start, length), new Va(start)));
        }

        try
        {
            Search(session, pattern, start, length);
        }
        catch (Exception e) when (IsItemError(e))
        {
            WriteVmiError(e, AddressTarget(start));
        }
    }

    private void Search(VmiSession session, BytePattern pattern, ulong start, ulong length)
    {
        // The engine searches chunk by chunk (a streaming read and a vectorised scan each); the session's lock is
        // taken once per chunk and hits are written as each chunk yields them.
        (AccessContext ctx, ulong? cr3) = session.Use(core =>
        {
            AccessContext c = Context(core, session, start);
            return (c, c.Mechanism.Root?.Value);
        });
        var search = new MemorySearch(pattern, ctx, length) { MaxHits = First };
        var hits = new List<SearchHit>();
        var progress = new ProgressReporter(this, 2, Messages.ProgressFind);
        try
        {
            while (!search.Completed)
            {
                StopToken.ThrowIfCancellationRequested();
                hits.Clear();
                session.Use(core => search.Next(core, hits));
                foreach (SearchHit hit in hits)
                {
                    WriteObject(new VmiMemoryMatch(session, hit.Address, Physical, cr3, hit.Bytes, pattern.Text));
                }

                progress.Report((search.Done, length));
            }
        }
        finally
        {
            progress.Complete();
        }
    }
}
