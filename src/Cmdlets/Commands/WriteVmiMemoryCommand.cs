using System.Buffers.Binary;
using System.Globalization;
using System.Management.Automation;
using System.Text;
using Vmi.Core;

namespace Vmi.PowerShell.Commands;

/// <summary>
/// Writes guest memory: bytes, or one value as an integer, pointer or NUL-terminated string. Every page is
/// translated before anything is written, so a fault leaves memory untouched. High impact: confirms by default.
/// </summary>
[Cmdlet(VerbsCommunications.Write, "VmiMemory", DefaultParameterSetName = BytesSet, SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(VmiMemoryRecord))]
public sealed class WriteVmiMemoryCommand : VmiMemoryCmdlet
{
    public const string BytesSet = "Bytes";
    public const string ValueSet = "Value";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("Va", "Pa")]
    [VmiAddressTransformation(Means = AddressMeaning.Either)]
    public VmiAddress Address { get; set; }

    /// <summary>The bytes to write.</summary>
    [Parameter(Mandatory = true, Position = 1, ParameterSetName = BytesSet, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public byte[]? Bytes { get; set; }

    /// <summary>The value to write, as -As says (a number for integers and pointers, text for strings).</summary>
    [Parameter(Mandatory = true, Position = 1, ParameterSetName = ValueSet)]
    [ValidateNotNull]
    public object? Value { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = ValueSet)]
    [ValidateSet("UInt8", "UInt16", "UInt32", "UInt64", "Pointer", "String", "WString")]
    public VmiValueType As { get; set; }

    /// <summary>Write a string without its terminating NUL.</summary>
    [Parameter(ParameterSetName = ValueSet)]
    public SwitchParameter NoTerminator { get; set; }

    /// <summary>Read the written range back and write it as a byte record.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        try
        {
            ulong address = Locate(Address);
            byte[] data = ParameterSetName == BytesSet ? Bytes! : VmiValueEncoding.Encode(Value!, As, NoTerminator, () => session.Guest.PointerWidth);
            string what = string.Format(CultureInfo.InvariantCulture, "{0} byte(s) at {1} 0x{2:x}", data.Length, IsPhysical ? "PA" : "VA", address);
            if (!ShouldProcess(Target(session, what), "Write guest memory"))
            {
                return;
            }

            AccessContext ctx = Context(session, address);
            session.Guest.Write(ctx, data);
            if (PassThru)
            {
                WriteObject(new VmiMemoryRecord(session, address, IsPhysical, ctx.Mechanism.Root?.Value, session.Guest.ReadBytes(ctx, data.Length)));
            }
        }
        catch (Exception e) when (IsItemError(e))
        {
            WriteVmiError(e, AddressTarget(Address.Value));
        }
    }
}
