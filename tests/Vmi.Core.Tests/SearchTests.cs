using System.Text;
using Vmi.Core.Search;

namespace Vmi.Core.Tests;

/// <summary>The byte pattern's scan kernel and the chunked memory search, against a naive byte-by-byte scan.</summary>
public class SearchTests
{
    private static bool NaiveMatchAt(ReadOnlySpan<byte> data, int at, byte[] bytes, bool[] fixedMask)
    {
        for (int i = 0; i < bytes.Length; i++)
        {
            if (fixedMask[i] && data[at + i] != bytes[i])
            {
                return false;
            }
        }

        return true;
    }

    private static (BytePattern Pattern, byte[] Bytes, bool[] Fixed) RandomPattern(Random rng, int length, bool wildcards)
    {
        // Small alphabet so that partial matches are frequent; at least one fixed byte.
        var bytes = new byte[length];
        var mask = new bool[length];
        var text = new StringBuilder();
        for (int i = 0; i < length; i++)
        {
            mask[i] = !wildcards || rng.Next(3) != 0;
            bytes[i] = mask[i] ? (byte)rng.Next(4) : (byte)0;
            text.Append(mask[i] ? bytes[i].ToString("x2", System.Globalization.CultureInfo.InvariantCulture) : "??").Append(' ');
        }

        if (!mask.Contains(true))
        {
            mask[length - 1] = true;
            bytes[length - 1] = 2;
            text.Length -= 3;
            text.Append("02 ");
        }

        BytePattern p = wildcards ? BytePattern.Parse(text.ToString()) : BytePattern.FromBytes(bytes);
        return (p, bytes, mask);
    }

    [Theory]
    [InlineData(1, 1, false)]
    [InlineData(2, 3, true)]
    [InlineData(3, 7, true)]
    [InlineData(4, 16, true)]
    [InlineData(5, 40, true)] // longer than a vector
    [InlineData(6, 5, false)]
    public void IndexOf_finds_what_a_naive_scan_finds_from_every_start(int seed, int length, bool wildcards)
    {
        var rng = new Random(seed);
        for (int round = 0; round < 40; round++)
        {
            (BytePattern p, byte[] bytes, bool[] mask) = RandomPattern(rng, length, wildcards);
            var data = new byte[rng.Next(0, 300)];
            for (int i = 0; i < data.Length; i++)
            {
                data[i] = (byte)rng.Next(4);
            }

            for (int start = 0; start <= data.Length + 1; start++)
            {
                int want = -1;
                for (int at = start; at <= data.Length - length; at++)
                {
                    if (NaiveMatchAt(data, at, bytes, mask))
                    {
                        want = at;
                        break;
                    }
                }

                Assert.Equal(want, p.IndexOf(data, start));
            }
        }
    }

    [Fact]
    public void Parse_reads_the_usual_spellings_and_rejects_the_rest_clearly()
    {
        BytePattern a = BytePattern.Parse("4d 5a ?? 00");
        BytePattern b = BytePattern.Parse("4d5a??00");
        BytePattern c = BytePattern.Parse("0x4d,0x5a,??,0x00");
        foreach (BytePattern p in new[] { a, b, c })
        {
            Assert.Equal(4, p.Length);
            Assert.True(p.HasWildcards);
            Assert.Equal(new byte[] { 0x4d, 0x5a, 0, 0 }, p.Bytes.ToArray());
            Assert.False(p.IsFixed(2));
            Assert.Equal(1, p.IndexOf(new byte[] { 9, 0x4d, 0x5a, 0x77, 0x00 }));
        }

        Assert.Contains("'4d5' is not a byte pattern", Assert.Throws<ArgumentException>(() => BytePattern.Parse("4d5")).Message, StringComparison.Ordinal);
        Assert.Contains("zz", Assert.Throws<ArgumentException>(() => BytePattern.Parse("zz")).Message, StringComparison.Ordinal);
        Assert.Contains("not ??", Assert.Throws<ArgumentException>(() => BytePattern.Parse("?? ??")).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => BytePattern.Parse("  "));
        Assert.Throws<ArgumentException>(() => BytePattern.FromBytes([]));
        Assert.Equal(Encoding.Unicode.GetBytes("hi"), BytePattern.FromString("hi", Encoding.Unicode).Bytes.ToArray());
    }

    /// <summary>Physical memory with frames missing; the pattern planted across page boundaries, chunk boundaries and holes.</summary>
    [Theory]
    [InlineData(1, "41 42 43 44 45 46", 4096 * 3 + 5)]
    [InlineData(2, "41 ?? 43 ?? ?? 46 47", 4096)]
    [InlineData(3, "47", 1 << 20)]
    [InlineData(4, "41 42 43 44 45 46 47 48 49 4a 4b 4c 4d 4e 4f 50 51 52 53 54 55 56 57 58 59 5a 30 31 32 33 34 35 36 37", 10_000)]
    public void A_search_finds_exactly_the_matches_of_a_naive_scan_of_readable_memory(int seed, string patternText, int chunkSize)
    {
        BytePattern pattern = BytePattern.Parse(patternText);
        byte[] planted = pattern.Bytes.ToArray();
        var rng = new Random(seed);
        var mem = new SparseDriver();
        const int Frames = 96;
        const ulong First = 0x200;
        for (ulong f = 0; f < Frames; f++)
        {
            if (rng.Next(8) != 0)
            {
                byte[] frame = mem.Frame(First + f);
                for (int i = 0; i < frame.Length; i++)
                {
                    frame[i] = (byte)(0x41 + rng.Next(8)); // letters the pattern is made of: many near misses
                }
            }
        }

        // Plant matches: across every page boundary, and at random places.
        ulong start = First << 12, end = (First + Frames) << 12;
        for (ulong pa = start + 4096; pa < end; pa += 4096)
        {
            ulong at = pa - (ulong)rng.Next(1, planted.Length + 1);
            for (int i = 0; i < planted.Length; i++)
            {
                if (pattern.IsFixed(i) && mem.HasFrame((at + (ulong)i) >> 12))
                {
                    mem.Frame((at + (ulong)i) >> 12)[(int)((at + (ulong)i) & 0xFFF)] = planted[i];
                }
            }
        }

        // The naive answer: every position where every byte of the pattern lies in a backed frame and matches.
        var want = new List<ulong>();
        for (ulong at = start + 100; at + (ulong)planted.Length <= end - 77; at++)
        {
            bool ok = true;
            for (int i = 0; i < planted.Length && ok; i++)
            {
                ulong a = at + (ulong)i;
                ok = mem.HasFrame(a >> 12) && (!pattern.IsFixed(i) || mem.Frame(a >> 12)[(int)(a & 0xFFF)] == planted[i]);
            }

            if (ok)
            {
                want.Add(at);
            }
        }

        using var core = new VmiCore(mem) { PagingMode = PagingMode.Ia32e };
        ulong length = end - 77 - (start + 100);
        var search = new MemorySearch(pattern, AccessContext.Direct(new Pa(start + 100)), length, chunkSize);
        var hits = new List<SearchHit>();
        while (search.Next(core, hits))
        {
        }

        Assert.Equal(want, hits.Select(h => h.Address));
        Assert.True(want.Count > Frames / 2, $"only {want.Count} matches planted");
        foreach (SearchHit h in hits)
        {
            Assert.Equal(planted.Length, h.Bytes.Length);
            Assert.Equal(mem.Peek(h.Address, planted.Length), h.Bytes);
        }

        // The streaming form: the same hits, at most maxHits, progress to the end.
        var reports = new List<SearchProgress>();
        var progress = new SyncProgress(reports);
        Assert.Equal(want, MemorySearcher.Search(core, pattern, AccessContext.Direct(new Pa(start + 100)), length, progress: progress).Select(h => h.Address));
        Assert.Equal(length, reports[^1].BytesDone);
        Assert.Equal(want.Take(3), MemorySearcher.Search(core, pattern, AccessContext.Direct(new Pa(start + 100)), length, maxHits: 3).Select(h => h.Address));
    }

    [Fact]
    public void A_virtual_search_matches_across_pages_in_scattered_frames_and_not_across_unmapped_ones()
    {
        var mem = new SparseDriver();
        var pt = new PageTableBuilder(mem, PagingMode.Ia32e);
        const ulong Va = 0x7f00_1000_0000;
        byte[] needle = Encoding.ASCII.GetBytes("NEEDLE-IN-GUEST");
        ulong[] frames = [0x9000, 0x1234, 0x5555, 0x0777, 0x4321];
        for (int i = 0; i < frames.Length; i++)
        {
            if (i != 3)
            {
                pt.Map(Va + ((ulong)i << 12), frames[i] << 12);
                mem.Frame(frames[i]);
            }
        }

        void Plant(ulong va)
        {
            for (int i = 0; i < needle.Length; i++)
            {
                ulong a = va + (ulong)i;
                int page = (int)((a - Va) >> 12);
                if (page != 3)
                {
                    mem.Frame(frames[page])[(int)(a & 0xFFF)] = needle[i];
                }
            }
        }

        Plant(Va + 0x1000 - 5);      // across pages 0 and 1
        Plant(Va + 0x2800);          // inside page 2
        Plant(Va + 0x3000 - 4);      // runs into unmapped page 3: not a match
        Plant(Va + 0x4000 - 3 + 3);  // at the start of page 4, after the hole
        using var core = new VmiCore(mem) { PagingMode = PagingMode.Ia32e };
        var hits = MemorySearcher.Search(core, BytePattern.FromBytes(needle), AccessContext.Paging(new Va(Va), pt.RootPa), 5 * 4096).ToList();
        Assert.Equal([Va + 0x1000 - 5, Va + 0x2800, Va + 0x4000], hits.Select(h => h.Address));
    }

    private sealed class SyncProgress(List<SearchProgress> reports) : IProgress<SearchProgress>
    {
        public void Report(SearchProgress value) => reports.Add(value);
    }
}
