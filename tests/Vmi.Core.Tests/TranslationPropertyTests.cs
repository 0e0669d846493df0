using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace Vmi.Core.Tests;

/// <summary>Translation against the independent reference walk, over random paging structures in every mode.</summary>
public class TranslationPropertyTests
{
    public static class Arbitraries
    {
        public static Arbitrary<WalkScenario> Scenarios() => Gens.Scenarios();

        public static Arbitrary<MappingScenario> Mappings() => MappingScenario.Gen.ToArbitrary();
    }

    private readonly struct DriverReader(SparseDriver mem) : IPageTableReader
    {
        public bool TryReadU64(ulong pa, out ulong value)
        {
            value = 0;
            if (!mem.HasFrame(pa >> 12))
            {
                return false;
            }

            value = BitConverter.ToUInt64(mem.Frame(pa >> 12), (int)(pa & 0xFFF));
            return true;
        }

        public bool TryReadU32(ulong pa, out uint value)
        {
            value = 0;
            if (!mem.HasFrame(pa >> 12))
            {
                return false;
            }

            value = BitConverter.ToUInt32(mem.Frame(pa >> 12), (int)(pa & 0xFFF));
            return true;
        }
    }

    internal static RefResult Reference(SparseDriver mem, PagingMode mode, ulong root, ulong va, int m, PagingFeatures features = PagingFeatures.All) =>
        ReferenceWalker.Translate(g => mem.HasFrame(g) ? mem.Frame(g) : null, mode, root, va, m, cr4Pse: (features & PagingFeatures.Pse) != 0, eferNxe: (features & PagingFeatures.Nxe) != 0);

    private static RefResult Reference(SparseDriver mem, WalkScenario s, ulong va) => Reference(mem, s.Mode, s.Root, va, s.MaxPhyAddr, s.Features);

    internal static void AssertSame(RefResult expected, TranslationResult actual, string what)
    {
        string ctx = $"{what}: expected {(expected.Ok ? $"0x{expected.Pa:x} {expected.Size} {expected.Flags}" : $"{expected.Fault} at {expected.Level}")}, got {actual}";
        Assert.True(expected.Ok == actual.Success, ctx);
        if (expected.Ok)
        {
            Assert.True(expected.Pa == actual.Pa.Value, ctx);
            Assert.True(expected.Size == actual.PageSize, ctx);
            Assert.True(expected.Flags == actual.Flags, ctx);
        }
        else
        {
            Assert.True(expected.Fault == actual.Fault, ctx);
            if (expected.Fault != WalkFaultKind.NonCanonical)
            {
                Assert.True(expected.Level == actual.FaultLevel, ctx);
            }
        }
    }

    [Property(MaxTest = 4000, Arbitrary = [typeof(Arbitraries)])]
    public void Amd64_translate_agrees_with_the_reference_walk(WalkScenario s)
    {
        SparseDriver mem = s.Build();
        RefResult expected = Reference(mem, s, s.Va);

        var reader = new DriverReader(mem);
        TranslationResult actual = Amd64.Translate(ref reader, s.Mode, new Pa(s.Root), new Va(s.Va), s.MaxPhyAddr, features: s.Features);
        AssertSame(expected, actual, s.ToString());

        // The detailed walk visits the same entries.
        PageWalk walk = Amd64.Walk(ref reader, s.Mode, new Pa(s.Root), new Va(s.Va), s.MaxPhyAddr, s.Features);
        AssertSame(expected, walk.Result, "walk " + s);
        Assert.Equal(
            expected.Entries.Select(e => (e.Level, e.TableAddress, e.Index, e.EntryAddress, e.Value)),
            walk.Entries.Select(e => (e.Level, e.TableAddress.Value, e.Index, e.EntryAddress.Value, e.Value)));
    }

    [Property(MaxTest = 1500, Arbitrary = [typeof(Arbitraries)])]
    public void VmiCore_translation_agrees_with_the_reference_on_a_miss_and_on_a_hit(WalkScenario s)
    {
        SparseDriver mem = s.Build();
        RefResult expected = Reference(mem, s, s.Va);
        using var core = new VmiCore(mem) { PhysicalAddressWidth = s.MaxPhyAddr, PagingMode = s.Mode, PagingFeatures = s.Features };
        var ctx = new AddressContext(new Va(s.Va), new Pa(s.Root));
        AssertSame(expected, core.TryTranslateAddress(ctx), "miss " + s);
        AssertSame(expected, core.TryTranslateAddress(ctx), "hit " + s);
    }

    [Property(MaxTest = 1500, Arbitrary = [typeof(Arbitraries)])]
    public void A_walk_after_a_neighbour_in_the_same_2MiB_agrees_with_the_reference(WalkScenario s, int neighbourPage)
    {
        // The first translation leaves the upper levels of its walk cached for the 2 MiB region; the second uses them.
        SparseDriver mem = s.Build();
        ulong neighbour = (s.Va & ~0x1F_F000UL) | (((ulong)(uint)neighbourPage & 0x1FF) << 12);
        using var core = new VmiCore(mem) { PhysicalAddressWidth = s.MaxPhyAddr, PagingMode = s.Mode, PagingFeatures = s.Features };
        AssertSame(Reference(mem, s, neighbour), core.TryTranslateAddress(new AddressContext(new Va(neighbour), new Pa(s.Root))), "neighbour " + s);
        AssertSame(Reference(mem, s, s.Va), core.TryTranslateAddress(new AddressContext(new Va(s.Va), new Pa(s.Root))), "after neighbour " + s);

        // And after the tables change through VmiCore, nothing of the old walk is used.
        if (mem.Frames.Any())
        {
            ulong frame = mem.Frames.First();
            core.WriteU64(AccessContext.Direct(new Pa((frame << 12) + (((ulong)(uint)neighbourPage & 0x1FF) * 8))), (ulong)(uint)neighbourPage * 0x1001);
            AssertSame(Reference(mem, s, s.Va), core.TryTranslateAddress(new AddressContext(new Va(s.Va), new Pa(s.Root))), "after a table write " + s);
        }
    }

    [Property(MaxTest = 1000, Arbitrary = [typeof(Arbitraries)])]
    public void Changing_the_features_drops_translations_made_under_the_old_ones(WalkScenario s, int neighbourPage)
    {
        // Translations (and walk shortcuts) cached with both features on must not answer for other features.
        SparseDriver mem = s.Build();
        ulong neighbour = (s.Va & ~0x1F_F000UL) | (((ulong)(uint)neighbourPage & 0x1FF) << 12);
        var ctx = new AddressContext(new Va(s.Va), new Pa(s.Root));
        using var core = new VmiCore(mem) { PhysicalAddressWidth = s.MaxPhyAddr, PagingMode = s.Mode, PagingFeatures = PagingFeatures.All };
        AssertSame(Reference(mem, s.Mode, s.Root, s.Va, s.MaxPhyAddr), core.TryTranslateAddress(ctx), "all features " + s);

        core.PagingFeatures = s.Features;
        Assert.Equal(s.Features, core.PagingFeatures);
        AssertSame(Reference(mem, s, neighbour), core.TryTranslateAddress(new AddressContext(new Va(neighbour), new Pa(s.Root))), "neighbour after the change " + s);
        AssertSame(Reference(mem, s, s.Va), core.TryTranslateAddress(ctx), "after the change " + s);
        var reader = new DriverReader(mem);
        Assert.Equal(Amd64.Walk(ref reader, s.Mode, new Pa(s.Root), new Va(s.Va), s.MaxPhyAddr, s.Features).Result, core.TryTranslateAddress(ctx));
        Assert.Equal(core.WalkAddress(ctx).Result, core.TryTranslateAddress(ctx));
    }

    [Property(MaxTest = 300, Arbitrary = [typeof(Arbitraries)])]
    public void Mapped_pages_translate_to_where_they_were_mapped(MappingScenario s)
    {
        var mem = new SparseDriver();
        var pt = new PageTableBuilder(mem, s.Mode);
        foreach (MappingScenario.Mapping map in s.Maps)
        {
            pt.Map(map.Va, map.Pa, map.Size, map.LeafBits);
        }

        using var core = new VmiCore(mem) { PagingMode = s.Mode, PhysicalAddressWidth = s.MaxPhyAddr };

        // Later mappings win where they overlap: check each against the last one covering its VA.
        for (int i = 0; i < s.Maps.Length; i++)
        {
            MappingScenario.Mapping map = s.Maps[i];
            ulong va = map.Va + map.Probe;
            if (s.Maps.Skip(i + 1).Any(later => later.Covers(va) || later.SharesTableWith(map)))
            {
                continue;
            }

            TranslationResult r = core.TryTranslateAddress(new AddressContext(new Va(va), pt.RootPa));
            Assert.True(r.Success, $"{map} probe 0x{map.Probe:x}: {r}");
            Assert.Equal(map.Pa + map.Probe, r.Pa.Value);
            Assert.Equal(map.Size, r.PageSize);
            Assert.Equal((map.LeafBits & Pte.W) != 0, r.Writable);
            Assert.Equal((map.LeafBits & Pte.U) != 0, r.User);
            Assert.Equal((map.LeafBits & Pte.Xd) != 0, r.NoExecute);
            Assert.Equal((map.LeafBits & Pte.D) != 0, (r.Flags & PageEntryFlags.Dirty) != 0);
            Assert.Equal((map.LeafBits & Pte.A) != 0, (r.Flags & PageEntryFlags.Accessed) != 0);
            AssertSame(Reference(mem, s.Mode, pt.Root, va, s.MaxPhyAddr), r, map.ToString());
        }
    }
}

/// <summary>Consistent page tables made with <see cref="PageTableBuilder"/>: random pages of every size the mode has.</summary>
public sealed record MappingScenario(PagingMode Mode, int MaxPhyAddr, MappingScenario.Mapping[] Maps)
{
    public sealed record Mapping(ulong Va, ulong Pa, PageSizeKind Size, ulong LeafBits, ulong Probe)
    {
        public ulong Bytes => Amd64.BytesOf(Size);

        public bool Covers(ulong va) => va >= Va && va - Va < Bytes;

        /// <summary>A later large page can replace the table this mapping's leaf sits in; skip those pairs.</summary>
        public bool SharesTableWith(Mapping earlier)
        {
            ulong span = Math.Max(Bytes, earlier.Bytes);
            return (Va & ~(span - 1)) == (earlier.Va & ~(span - 1)) && Size != earlier.Size;
        }

        public override string ToString() => $"0x{Va:x} -> 0x{Pa:x} {Size} bits 0x{LeafBits:x}";
    }

    public static Gen<MappingScenario> Gen =>
        from mode in FsCheck.Fluent.Gen.Elements(PagingMode.Legacy32, PagingMode.Pae, PagingMode.Ia32e, PagingMode.Ia32eLa57)
        from m in FsCheck.Fluent.Gen.Elements(36, 40, 46, 52)
        from maps in FsCheck.Fluent.Gen.ArrayOf(MappingGen(mode, mode == PagingMode.Legacy32 ? Math.Min(m, 40) : m), 6)
        select new MappingScenario(mode, m, maps);

    private static Gen<Mapping> MappingGen(PagingMode mode, int m)
    {
        PageSizeKind[] sizes = mode switch
        {
            PagingMode.Legacy32 => [PageSizeKind.Size4K, PageSizeKind.Size4M],
            PagingMode.Pae => [PageSizeKind.Size4K, PageSizeKind.Size2M],
            _ => [PageSizeKind.Size4K, PageSizeKind.Size2M, PageSizeKind.Size1G],
        };
        int vaBits = mode switch { PagingMode.Ia32e => 48, PagingMode.Ia32eLa57 => 57, _ => 32 };
        bool legacy = mode == PagingMode.Legacy32;
        return
            from size in FsCheck.Fluent.Gen.Elements(sizes)
            from vaRaw in Gens.Below(vaBits)
            from paRaw in Gens.Below(legacy && size == PageSizeKind.Size4K ? 32 : m)
            from w in Gens.Chance(50)
            from u in Gens.Chance(50)
            from xd in Gens.Chance(legacy ? 0 : 40)
            from a in Gens.Chance(50)
            from d in Gens.Chance(50)
            from pat in Gens.Chance(size == PageSizeKind.Size4K ? 0 : 60) // PAT bit 12 set on large pages
            from probeRaw in Gens.U64
            let bytes = Amd64.BytesOf(size)
            let va = vaBits == 32 ? vaRaw & ~(bytes - 1) : (ulong)(((long)(vaRaw & ~(bytes - 1)) << (64 - vaBits)) >> (64 - vaBits))
            let pa = paRaw & ~(bytes - 1) & ~0xFFFUL
            let bits = (w ? Pte.W : 0) | (u ? Pte.U : 0) | (xd ? Pte.Xd : 0) | (a ? Pte.A : 0) | (d ? Pte.D : 0) | (pat ? Pte.LargePat : 0)
            select new Mapping(va, pa, size, bits, probeRaw % bytes);
    }

    public override string ToString() => $"{Mode} M={MaxPhyAddr} [{string.Join("; ", Maps.Select(x => x.ToString()))}]";
}
