using System.Diagnostics.CodeAnalysis;

namespace Vmi.Core.Tests;

/// <summary>
/// The streaming read (runs per leaf, copied straight in by the driver where it can) against a reference made without the
/// engine: the SDM reference walker and the driver's own frames, page by page, on random ranges over 4 KiB and
/// 2 MiB pages with unmapped pages and frames with no backing, in every read mode, with and without direct memory.
/// </summary>
public class StreamingReadTests
{
    /// <summary>A sparse guest that also copies runs of frames straight in, stopping at every third frame (read as a page then).</summary>
    private sealed class DirectDriver : SparseDriver, IVmiDirectMemory
    {
        public int DirectCalls { get; private set; }

        public int ReadDirect(ulong pa, Span<byte> destination)
        {
            DirectCalls++;
            int done = 0;
            while (done < destination.Length)
            {
                ulong at = pa + (ulong)done;
                ulong gfn = at >> 12;
                if (gfn % 3 == 0 || !HasFrame(gfn))
                {
                    break; // a run ends here: the caller asks for the page
                }

                int offset = (int)(at & 0xFFF);
                int n = Math.Min(destination.Length - done, PageSize - offset);
                Frame(gfn).AsSpan(offset, n).CopyTo(destination[done..]);
                done += n;
            }

            return done;
        }
    }

    private const ulong Base = 0x0000_7f12_0000_0000;

    /// <summary>A 16 MiB virtual window: 2 MiB pages, 4 KiB pages (some physically contiguous), holes of both kinds.</summary>
    [SuppressMessage("Security", "CA5394", Justification = "test data from a fixed seed")]
    private static (SparseDriver Mem, PageTableBuilder Pt) Guest(bool direct, int seed)
    {
        SparseDriver mem = direct ? new DirectDriver() : new SparseDriver();
        var pt = new PageTableBuilder(mem, PagingMode.Ia32e);
        var rng = new Random(seed);
        for (int region = 0; region < 8; region++)
        {
            ulong va = Base + ((ulong)region << 21);
            ulong pa = 0x4000_0000UL + ((ulong)region << 21);
            switch (region % 4)
            {
                case 0: // a 2 MiB page, with a few frames missing from guest memory
                    pt.Map(va, pa, PageSizeKind.Size2M);
                    for (ulong f = 0; f < 512; f++)
                    {
                        if (rng.Next(40) != 0)
                        {
                            rng.NextBytes(mem.Frame((pa >> 12) + f));
                        }
                    }

                    break;
                case 1: // 4 KiB pages, physically contiguous, a few unmapped
                case 2: // 4 KiB pages in scattered frames
                    for (ulong p = 0; p < 512; p++)
                    {
                        if (rng.Next(25) == 0)
                        {
                            continue;
                        }

                        ulong frame = region % 4 == 1 ? (pa >> 12) + p : 0x9_0000UL + (ulong)rng.Next(1 << 16);
                        pt.Map(va + (p << 12), frame << 12);
                        rng.NextBytes(mem.Frame(frame));
                    }

                    break;
                default: // nothing mapped at all
                    break;
            }
        }

        return (mem, pt);
    }

    /// <summary>What a read of [va, va + length) must give, from the reference walker and the driver's frames.</summary>
    private static (byte[] Data, List<ulong> Unreadable) Expected(SparseDriver mem, PageTableBuilder pt, ulong va, int length)
    {
        var data = new byte[length];
        var bad = new List<ulong>();
        int done = 0;
        while (done < length)
        {
            ulong a = va + (ulong)done;
            int chunk = (int)Math.Min(4096 - (a & 0xFFF), (ulong)(length - done));
            RefResult r = ReferenceWalker.Translate(g => mem.HasFrame(g) ? mem.Frame(g) : null, PagingMode.Ia32e, pt.Root, a, 52);
            if (r.Ok && mem.HasFrame(r.Pa >> 12))
            {
                mem.Frame(r.Pa >> 12).AsSpan((int)(r.Pa & 0xFFF), chunk).CopyTo(data.AsSpan(done));
            }
            else
            {
                bad.Add(a & ~0xFFFUL);
            }

            done += chunk;
        }

        return (data, bad);
    }

    [Theory]
    [InlineData(false, 1)]
    [InlineData(false, 2)]
    [InlineData(true, 3)]
    [InlineData(true, 4)]
    public void Random_ranges_read_exactly_as_the_reference_in_every_mode(bool direct, int seed)
    {
        var (mem, pt) = Guest(direct, seed);
        using var core = new VmiCore(mem) { PagingMode = PagingMode.Ia32e };
        var rng = new Random(seed * 7);
        for (int i = 0; i < 120; i++)
        {
            int length = rng.Next(4) switch { 0 => rng.Next(1, 64), 1 => rng.Next(4096, 3 * 4096), 2 => rng.Next(1, 600_000), _ => (1 << 21) + rng.Next(4096) };
            ulong va = Base + (ulong)rng.NextInt64(0, (16L << 20) - length);
            var ctx = AccessContext.Paging(new Va(va), pt.RootPa);
            (byte[] want, List<ulong> bad) = Expected(mem, pt, va, length);

            var buffer = new byte[length];
            ReadResult z = core.ReadStreaming(ctx, buffer, ReadMode.ZeroFill);
            Assert.Equal(want, buffer);
            Assert.Equal(bad, z.UnreadablePages);
            Assert.Equal(length, z.BytesRead);

            Array.Fill(buffer, (byte)0xEE);
            ReadResult u = core.ReadStreaming(ctx, buffer, ReadMode.UntilFault);
            int firstBad = bad.Count == 0 ? length : (int)(Math.Max(bad[0], va) - va);
            Assert.Equal(firstBad, u.BytesRead);
            Assert.Equal(bad.Count == 0 ? null : Math.Max(bad[0], va), u.FaultAddress);
            Assert.Equal(want.AsSpan(0, firstBad).ToArray(), buffer.AsSpan(0, firstBad).ToArray());

            if (bad.Count == 0)
            {
                Array.Clear(buffer);
                core.ReadStreaming(ctx, buffer);
                Assert.Equal(want, buffer);
                Assert.Equal(want, core.ReadBytes(ctx, length)); // the page-by-page read agrees
            }
            else
            {
                VmiException e = Assert.ThrowsAny<VmiException>(() => core.ReadStreaming(ctx, buffer));
                ulong at = Math.Max(bad[0], va); // the first unreadable byte: the exception names it, as Read's do
                if (e is PageFaultException p)
                {
                    Assert.Equal(at, p.Va.Value);
                }
                else
                {
                    RefResult ra = ReferenceWalker.Translate(g => mem.HasFrame(g) ? mem.Frame(g) : null, PagingMode.Ia32e, pt.Root, at, 52);
                    Assert.Equal(ra.Pa >> 12, Assert.IsType<GfnNotPresentException>(e).Gfn.Value);
                }
            }

            // Physical reads of the same length from the range's first frame behave the same way.
            RefResult r0 = ReferenceWalker.Translate(g => mem.HasFrame(g) ? mem.Frame(g) : null, PagingMode.Ia32e, pt.Root, va, 52);
            if (r0.Ok)
            {
                var phys = new byte[Math.Min(length, 3 * 4096)];
                ReadResult pr = core.ReadStreaming(AccessContext.Direct(new Pa(r0.Pa)), phys, ReadMode.ZeroFill);
                for (int k = 0; k < phys.Length;)
                {
                    ulong pa = r0.Pa + (ulong)k;
                    int chunk = (int)Math.Min(4096 - (pa & 0xFFF), (ulong)(phys.Length - k));
                    byte[] expect = mem.HasFrame(pa >> 12) ? mem.Frame(pa >> 12).AsSpan((int)(pa & 0xFFF), chunk).ToArray() : new byte[chunk];
                    Assert.Equal(expect, phys.AsSpan(k, chunk).ToArray());
                    Assert.Equal(!mem.HasFrame(pa >> 12), pr.UnreadablePages.Contains(pa & ~0xFFFUL));
                    k += chunk;
                }
            }
        }

        if (mem is DirectDriver d)
        {
            Assert.True(d.DirectCalls > 0, "the direct reads were never asked for");
        }
    }

    [Fact]
    public void A_long_read_does_not_fill_the_translation_cache()
    {
        var (mem, pt) = Guest(direct: true, seed: 5);
        using var core = new VmiCore(mem) { PagingMode = PagingMode.Ia32e };
        var warm = new AddressContext(new Va(Base + (1UL << 21) + 0x10), pt.RootPa);
        core.TranslateAddress(warm);
        core.ReadStreaming(AccessContext.Paging(new Va(Base), pt.RootPa), new byte[8 << 20], ReadMode.ZeroFill);
        Assert.Equal(1, core.V2PCacheStatistics.Count); // only the translation made before
        core.ResetCacheStatistics();
        core.TranslateAddress(warm);
        Assert.Equal(1, core.V2PCacheStatistics.Hits);
    }

    [Fact]
    public void A_read_without_a_root_or_past_the_address_space_fails_clearly()
    {
        var (mem, _) = Guest(direct: false, seed: 6);
        using var core = new VmiCore(mem) { PagingMode = PagingMode.Ia32e };
        Assert.Throws<RootNotPresentException>(() => core.ReadStreaming(new AccessContext(Base, TranslationMechanism.Paging()), new byte[8192]));
        Assert.Throws<ArgumentOutOfRangeException>(() => core.ReadStreaming(AccessContext.Direct(new Pa(ulong.MaxValue - 100)), new byte[8192]));
    }
}
