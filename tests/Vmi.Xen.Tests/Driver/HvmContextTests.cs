using Vmi.Core;

namespace Vmi.Xen.Tests.Driver;

/// <summary>The HVM context records the driver reads and writes back (src/Xen/HvmContext.cs).</summary>
public sealed class HvmContextTests
{
    private static List<(ushort Code, ushort Instance)> Descriptors(byte[] context) =>
        [.. SimulatedXenHost.Records(context).Select(r => (r.Code, r.Instance))];

    [Fact]
    public void The_records_written_back_are_the_header_every_vcpus_own_and_the_end()
    {
        byte[] full = SimulatedXenHost.BuildContext(2);
        Assert.Contains((SimulatedXenHost.CodeLapicRegs, (ushort)0), Descriptors(full));

        byte[] kept = HvmContext.VcpuRecords(full);

        Assert.Equal(
            [(1, 0), (2, 0), (2, 1), (14, 0), (16, 0), (14, 1), (16, 1), (0, 0)],
            Descriptors(kept).Select(d => ((int)d.Code, (int)d.Instance)));
        Assert.Equal(HvmContext.GetRegisters(full, 1, 2), HvmContext.GetRegisters(kept, 1, 2));
    }

    [Fact]
    public void A_context_without_its_end_or_with_a_record_longer_than_it_is_refused_by_name()
    {
        byte[] full = SimulatedXenHost.BuildContext(1);
        var noEnd = Assert.Throws<VmiFormatException>(() => HvmContext.VcpuRecords(full.AsSpan(0, full.Length - 8)));
        Assert.Contains("END", noEnd.Message, StringComparison.Ordinal);

        byte[] overlong = (byte[])full.Clone();
        BitConverter.TryWriteBytes(overlong.AsSpan(4), 0x7fff_0000u); // the HEADER claims more than the context holds
        var claims = Assert.Throws<VmiFormatException>(() => HvmContext.VcpuRecords(overlong));
        Assert.Contains("more than the context holds", claims.Message, StringComparison.Ordinal);
    }
}
