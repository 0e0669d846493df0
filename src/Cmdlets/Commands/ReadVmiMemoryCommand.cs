using System.Globalization;
using System.Management.Automation;
using Vmi.Core;

namespace Vmi.PowerShell.Commands;

/// <summary>
/// Reads guest memory: bytes (streamed as records of up to 64 KiB, shown as a hex dump), integers, pointers or strings.
/// Physical with -Physical or a [Vmi.Core.Pa] address; otherwise virtual, translated under -Cr3 or the CR3 of -Vcpu (vCPU 0 by default).
/// </summary>
[Cmdlet(VerbsCommunications.Read, "VmiMemory")]
[OutputType(typeof(VmiMemoryRecord), typeof(byte), typeof(ushort), typeof(uint), typeof(ulong), typeof(VmiPointer), typeof(string))]
public sealed class ReadVmiMemoryCommand : VmiMemoryCmdlet
{
    /// <summary>Bytes per record of a byte read.</summary>
    public const int ChunkSize = 64 * 1024;

    /// <summary>Bytes read when -Length is not given and -As is Bytes.</summary>
    public const int DefaultLength = 256;

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true), Alias("Va", "Pa"), VmiAddressTransformation(Means = AddressMeaning.Either)]
    public VmiAddress Address { get; set; }

    /// <summary>Bytes to read (Bytes; default 256), or the byte limit of a string (String, WString). Never taken from piped records.</summary>
    [Parameter(Position = 1), ValidateRange(1, long.MaxValue)]
    public long Length { get; set; }

    [Parameter]
    public VmiValueType As { get; set; } = VmiValueType.Bytes;

    /// <summary>Number of consecutive integers or pointers to read.</summary>
    [Parameter, ValidateRange(1, int.MaxValue)]
    public int Count { get; set; } = 1;

    /// <summary>Read through unreadable pages: they come back as zeros and a warning names them.</summary>
    [Parameter]
    public SwitchParameter ZeroFill { get; set; }

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        long? length = MyInvocation.BoundParameters.ContainsKey(nameof(Length)) ? Length : null;
        try
        {
            AccessContext at = Context(session, Locate(Address));
            if (As == VmiValueType.Bytes)
            {
                WriteChunks(session, at, (ulong)(length ?? DefaultLength), ChunkSize, ZeroFill);
            }
            else if (As is VmiValueType.String or VmiValueType.WString)
            {
                StringRead read = session.Guest.ReadString(at, length > int.MaxValue
                    ? throw new ArgumentOutOfRangeException(nameof(Length), string.Format(CultureInfo.CurrentCulture, Messages.LengthTooLarge, As, length, int.MaxValue))
                    : (int?)length, wide: As == VmiValueType.WString);
                if (read.Truncated)
                {
                    WriteWarning(string.Format(CultureInfo.CurrentCulture, Messages.StringTruncated, at.Address, read.Limit));
                }

                WriteObject(read.Text);
            }
            else
            {
                int size = As.Size(() => session.Guest.PointerWidth);
                foreach ((AccessContext ctx, ulong value) in session.Guest.ReadUInts(at, size, Count, StopToken))
                {
                    WriteObject(As == VmiValueType.Pointer ? new VmiPointer(session, ctx.Address, value, size, IsPhysical, at.Mechanism.Root?.Value) : As.Box(value));
                }
            }
        }
        catch (Exception e) when (IsItemError(e))
        {
            WriteVmiError(e, AddressTarget(Address.Value));
        }
    }
}
