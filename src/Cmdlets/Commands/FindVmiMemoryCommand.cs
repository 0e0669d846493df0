using System.Globalization;
using System.Management.Automation;
using System.Text;
using Vmi.Core;

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
                _ => BytePattern.FromObject(Pattern!),
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
        int pageSize = (int)session.PageSize;
        int keep = pattern.Length - 1;

        // window = the tail of the previous readable page (up to keep bytes) followed by the current page.
        byte[] window = new byte[keep + pageSize];
        int carried = 0;
        ulong carriedFrom = 0;
        int hits = 0;
        ulong done = 0;
        var progress = new ProgressReporter(this, 2, Messages.ProgressFind);
        try
        {
            while (done < length && hits < First)
            {
                StopToken.ThrowIfCancellationRequested();
                ulong address = start + done;
                int offset = (int)(address & (ulong)(pageSize - 1));
                int chunk = (int)Math.Min((ulong)(pageSize - offset), length - done);
                int at0 = carried;
                (bool readable, ulong? cr3) = session.Use(core =>
                {
                    AccessContext ctx = Context(core, session, address);
                    ReadResult r = core.Read(ctx, window.AsSpan(at0, chunk), ReadMode.UntilFault);
                    return (r.BytesRead == chunk, ctx.Mechanism.Root?.Value);
                });

                if (!readable)
                {
                    carried = 0; // nothing matches across an unreadable page
                }
                else
                {
                    int total = carried + chunk;
                    ulong windowStart = carried > 0 ? carriedFrom : address;
                    ReadOnlySpan<byte> data = window.AsSpan(0, total);
                    for (int at = pattern.IndexOf(data, 0); at >= 0 && hits < First; at = at + 1 <= total - pattern.Length ? pattern.IndexOf(data, at + 1) : -1)
                    {
                        WriteObject(new VmiMemoryMatch(session, windowStart + (ulong)at, Physical, cr3, data.Slice(at, pattern.Length).ToArray(), pattern.Text));
                        hits++;
                    }

                    // Keep the last keep bytes: a match may start there and end in the next page.
                    int tail = Math.Min(keep, total);
                    window.AsSpan(total - tail, tail).CopyTo(window);
                    carriedFrom = windowStart + (ulong)(total - tail);
                    carried = tail;
                }

                done += (ulong)chunk;
                progress.Report((done, length));
            }
        }
        finally
        {
            progress.Complete();
        }
    }
}
