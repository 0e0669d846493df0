using System.Globalization;
using System.Management.Automation;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.PowerShell.Commands;

/// <summary>
/// Reads guest memory: bytes (streamed as records of up to 64 KiB, shown as a hex dump), integers, pointers or strings.
/// Physical with -Physical; otherwise virtual, translated under -Cr3 or the CR3 of -Vcpu (vCPU 0 by default).
/// </summary>
[Cmdlet(VerbsCommunications.Read, "VmiMemory")]
[OutputType(typeof(VmiMemoryRecord), typeof(byte), typeof(ushort), typeof(uint), typeof(ulong), typeof(VmiPointer), typeof(string))]
public sealed class ReadVmiMemoryCommand : VmiMemoryCmdlet
{
    /// <summary>Bytes per record of a byte read.</summary>
    public const int ChunkSize = 64 * 1024;

    /// <summary>Bytes read when -Length is not given and -As is Bytes.</summary>
    public const int DefaultLength = 256;

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("Va", "Pa")]
    [VmiAddressTransformation]
    public ulong Address { get; set; }

    /// <summary>Bytes to read (Bytes; default 256), or the byte limit of a string (String, WString). Never taken from piped records.</summary>
    [Parameter(Position = 1)]
    [ValidateRange(1, long.MaxValue)]
    public long Length { get; set; }

    [Parameter]
    public VmiValueType As { get; set; } = VmiValueType.Bytes;

    /// <summary>Number of consecutive integers or pointers to read.</summary>
    [Parameter]
    [ValidateRange(1, int.MaxValue)]
    public int Count { get; set; } = 1;

    /// <summary>Read through unreadable pages: they come back as zeros and a warning names them.</summary>
    [Parameter]
    public SwitchParameter ZeroFill { get; set; }

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        bool lengthGiven = MyInvocation.BoundParameters.ContainsKey(nameof(Length));
        try
        {
            switch (As)
            {
                case VmiValueType.Bytes:
                    ReadBytes(session, lengthGiven ? Length : DefaultLength);
                    break;
                case VmiValueType.String:
                case VmiValueType.WString:
                    ReadString(session, lengthGiven ? Length : null);
                    break;
                default:
                    ReadIntegers(session);
                    break;
            }
        }
        catch (Exception e) when (IsItemError(e))
        {
            WriteVmiError(e, AddressTarget(Address));
        }
    }

    private void ReadBytes(VmiSession session, long length)
    {
        if (Address + (ulong)(length - 1) < Address)
        {
            throw new ArgumentOutOfRangeException(nameof(Length), string.Format(CultureInfo.CurrentCulture, Messages.RangeOverflow, Address, length));
        }

        var progress = new ProgressReporter(this, 1, Messages.ProgressRead);
        var unreadable = new List<ulong>();
        try
        {
            AccessContext start = Context(session, Address);
            foreach (MemoryChunk chunk in session.Guest.ReadChunks(start, (ulong)length, ChunkSize, ZeroFill, progress, StopToken))
            {
                unreadable.AddRange(chunk.ZeroFilledPages);
                WriteObject(new VmiMemoryRecord(session, chunk.Address, Physical, start.Mechanism.Root?.Value, chunk.Data, chunk.ZeroFilledPages));
            }
        }
        finally
        {
            progress.Complete();
            WriteZeroFilledWarning(unreadable);
        }
    }

    private void ReadString(VmiSession session, long? limit)
    {
        if (limit > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(Length), string.Format(CultureInfo.CurrentCulture, Messages.LengthTooLarge, As, limit, int.MaxValue));
        }

        StringRead read = session.Guest.ReadString(Context(session, Address), (int?)limit, wide: As == VmiValueType.WString);
        if (read.Truncated)
        {
            WriteWarning(string.Format(CultureInfo.CurrentCulture,
                "The string at 0x{0:x} has no terminator within {1} bytes; it was cut there. Give a larger -Length to read further.", Address, read.Limit));
        }

        WriteObject(read.Text);
    }

    private void ReadIntegers(VmiSession session)
    {
        int size = As switch { VmiValueType.UInt8 => 1, VmiValueType.UInt16 => 2, VmiValueType.UInt32 => 4, VmiValueType.UInt64 => 8, _ => session.Guest.PointerWidth };
        for (int i = 0; i < Count; i++)
        {
            StopToken.ThrowIfCancellationRequested();
            AccessContext ctx = Context(session, Address + (ulong)(i * size));
            ulong value = session.Guest.ReadUInt(ctx, size);
            WriteObject(As switch
            {
                VmiValueType.UInt8 => (object)(byte)value,
                VmiValueType.UInt16 => (ushort)value,
                VmiValueType.UInt32 => (uint)value,
                VmiValueType.UInt64 => value,
                _ => new VmiPointer(session, ctx.Address, value, size, Physical, ctx.Mechanism.Root?.Value),
            });
        }
    }
}
