using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace Vmi.Core.Tests;

/// <summary>String reads against a plain model: random bytes at random offsets, random limits, a hole after the mapped pages.</summary>
public class StringPropertyTests
{
    public sealed record Case(byte[] Bytes, int Offset, int? Limit, bool Wide, int MappedPages)
    {
        public override string ToString() => $"offset={Offset} limit={Limit} wide={Wide} pages={MappedPages} bytes={Bytes.Length} [{Convert.ToHexString(Bytes.AsSpan(0, Math.Min(Bytes.Length, 32)))}]";
    }

    public static class Arbitraries
    {
        public static Arbitrary<Case> Cases() =>
            (from len in Gen.Frequency((3, Gen.Choose(0, 40)), (1, Gen.Choose(0, 9000)))
             from zeroEvery in Gen.Choose(3, 60000)
             from seed in Gen.Choose(0, int.MaxValue)
             from offset in Gen.Frequency((2, Gen.Choose(4080, 4095)), (1, Gen.Choose(0, 4095)))
             from limit in Gen.Frequency((1, Gen.Constant<int?>(null)), (3, Gen.Choose(0, 10000).Select(x => (int?)x)))
             from wide in Gens.Chance(50)
             from pages in Gen.Choose(1, 4)
             select new Case(Bytes(len, zeroEvery, seed), offset, limit, wide, pages)).ToArbitrary();

        private static byte[] Bytes(int len, int zeroEvery, int seed)
        {
            var r = new Random(seed);
            var b = new byte[len];
            for (int i = 0; i < len; i++)
            {
                b[i] = r.Next(zeroEvery) == 0 ? (byte)0 : (byte)r.Next(1, 256);
            }

            return b;
        }
    }

    [Property(MaxTest = 400, Arbitrary = [typeof(Arbitraries)])]
    public void Strings_match_the_model(Case c)
    {
        const ulong Base = 0x10_0000;
        var mem = new SparseDriver();
        var pt = new PageTableBuilder(mem, PagingMode.Ia32e).MapRange(Base, (ulong)c.MappedPages * 4096, 0x2000);
        using var core = new VmiCore(mem) { PagingMode = PagingMode.Ia32e, StringLimit = 3000 };
        int mapped = (c.MappedPages * 4096) - c.Offset; // readable bytes from the string's start
        byte[] memory = new byte[mapped];
        c.Bytes.AsSpan(0, Math.Min(c.Bytes.Length, mapped)).CopyTo(memory);
        for (int i = 0; i < memory.Length; i += 4096)
        {
            core.Write(AccessContext.Paging(new Va(Base + (ulong)c.Offset + (ulong)i), pt.RootPa), memory.AsSpan(i, Math.Min(4096, memory.Length - i)));
        }

        // The model: scan units from the start, at most `limit` bytes; a hole before the end is a fault.
        int limit = c.Limit ?? 3000;
        int unit = c.Wide ? 2 : 1;
        int end = -1;
        for (int i = 0; i + unit <= limit; i += unit)
        {
            if (i + unit > mapped)
            {
                end = -2; // runs into the hole
                break;
            }

            if (memory[i] == 0 && (unit == 1 || memory[i + 1] == 0))
            {
                end = i;
                break;
            }
        }

        if (end == -1 && limit > mapped)
        {
            end = -2; // no terminator within the mapped bytes, and the limit reaches the hole (the odd byte counts too)
        }

        var ctx = AccessContext.Paging(new Va(Base + (ulong)c.Offset), pt.RootPa);
        string Read(out bool t) => c.Wide ? core.ReadWString(ctx, c.Limit, out t) : core.ReadString(ctx, c.Limit, out t);
        if (end == -2)
        {
            Assert.Throws<PageFaultException>(() => Read(out _));
            return;
        }

        string actual = Read(out bool truncated);
        int length = end >= 0 ? end : limit & ~(unit - 1);
        string expected = c.Wide ? System.Text.Encoding.Unicode.GetString(memory, 0, length) : System.Text.Encoding.UTF8.GetString(memory, 0, length);
        Assert.Equal(expected, actual);
        Assert.Equal(end < 0, truncated);
    }
}
