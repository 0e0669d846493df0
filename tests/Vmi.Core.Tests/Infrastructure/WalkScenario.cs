using FsCheck;
using FsCheck.Fluent;

namespace Vmi.Core.Tests.Infrastructure;

/// <summary>
/// Random paging structures along the path of one virtual address: every entry's bits random (present
/// usually, PS often, PAT on large pages often, reserved bits sometimes), tables in a small pool of
/// frames so that levels share and overwrite each other, tables sometimes missing. Both walks then
/// read the same memory, so they must agree whatever the tables say. CR4.PSE and IA32_EFER.NXE are random too.
/// </summary>
public sealed record WalkScenario(PagingMode Mode, int MaxPhyAddr, PagingFeatures Features, ulong Root, ulong Va, ulong[] Templates, bool[] Missing, bool[] Tidy)
{
    public bool Pse => (Features & PagingFeatures.Pse) != 0;

    public bool Nxe => (Features & PagingFeatures.Nxe) != 0;

    /// <summary>Builds guest memory for the scenario.</summary>
    public SparseDriver Build()
    {
        var mem = new SparseDriver("Scenario");
        if (Mode == PagingMode.Disabled)
        {
            return mem;
        }

        int size = Mode == PagingMode.Legacy32 ? 4 : 8;
        int top = Mode switch { PagingMode.Legacy32 => 2, PagingMode.Pae => 3, PagingMode.Ia32e => 4, _ => 5 };
        ulong frameMask = Mode == PagingMode.Legacy32 ? 0xFFFF_F000UL : ((1UL << MaxPhyAddr) - 1) & ~0xFFFUL;
        ulong table = Mode switch
        {
            PagingMode.Legacy32 => Root & 0xFFFF_F000UL,
            PagingMode.Pae => Root & 0xFFFF_FFE0UL,
            _ => Root & frameMask,
        };

        for (int i = 0, level = top; level >= 1; i++, level--)
        {
            if (Missing[i])
            {
                return mem; // the table at this level has no backing
            }

            int index = Mode switch
            {
                PagingMode.Legacy32 => (int)((Va >> (level == 2 ? 22 : 12)) & 0x3FF),
                PagingMode.Pae when level == 3 => (int)((Va >> 30) & 3),
                _ => (int)((Va >> (12 + (9 * (level - 1)))) & 0x1FF),
            };
            ulong e = Templates[i];
            if (Tidy[i])
            {
                // Usually clear the bits that are always reserved at this level, so walks get deeper.
                if (Mode == PagingMode.Pae && level == 3)
                {
                    e &= ~(0x1E6UL | (1UL << 63));
                }
                else if (level >= 4)
                {
                    e &= ~Pte.Ps;
                }

                if (!Nxe)
                {
                    e &= ~Pte.Xd; // reserved without NXE
                }
            }

            ulong at = table + ((ulong)index * (ulong)size);
            if (size == 4)
            {
                mem.PokeU32(at, (uint)e);
            }
            else
            {
                mem.PokeU64(at, e);
            }

            bool maps = (e & Pte.Ps) != 0 && level <= 3 && (Mode != PagingMode.Legacy32 || Pse); // without CR4.PSE a 32-bit PDE's bit 7 is ignored
            if ((e & Pte.P) == 0 || maps)
            {
                return mem;
            }

            table = e & frameMask;
        }

        return mem;
    }

    public override string ToString() =>
        $"{Mode} M={MaxPhyAddr} features={Features} root=0x{Root:x} va=0x{Va:x} entries=[{string.Join(", ", Templates.Select(t => "0x" + t.ToString("x16", System.Globalization.CultureInfo.InvariantCulture)))}] missing=[{string.Join(",", Missing)}] tidy=[{string.Join(",", Tidy)}]";
}

public static class Gens
{
    public static Gen<bool> Chance(int percent) => Gen.Choose(0, 99).Select(x => x < percent);

    public static Gen<ulong> U64 =>
        from a in Gen.Choose(0, 0xFFFF)
        from b in Gen.Choose(0, 0xFFFF)
        from c in Gen.Choose(0, 0xFFFF)
        from d in Gen.Choose(0, 0xFFFF)
        select (ulong)(uint)a | ((ulong)(uint)b << 16) | ((ulong)(uint)c << 32) | ((ulong)(uint)d << 48);

    /// <summary>A random value below 2^bits.</summary>
    public static Gen<ulong> Below(int bits) => U64.Select(v => bits >= 64 ? v : v & ((1UL << bits) - 1));

    public static Gen<PagingMode> Mode => Gen.Elements(PagingMode.Disabled, PagingMode.Legacy32, PagingMode.Pae, PagingMode.Ia32e, PagingMode.Ia32e, PagingMode.Ia32eLa57, PagingMode.Ia32eLa57);

    /// <summary>Mostly both on, as real guests have them; each off often enough to matter.</summary>
    public static Gen<PagingFeatures> Features => Gen.Frequency(
        (4, Gen.Constant(PagingFeatures.All)),
        (2, Gen.Elements(PagingFeatures.Pse, PagingFeatures.Nxe)),
        (1, Gen.Constant(PagingFeatures.None)));

    public static Gen<int> MaxPhyAddr => Gen.Frequency((3, Gen.Elements(36, 39, 40, 46, 52)), (1, Gen.Choose(32, 52)));

    /// <summary>A table frame from a small pool, so levels collide and share tables.</summary>
    public static Gen<ulong> PoolFrame => Gen.Choose(0x10, 0x18).Select(x => (ulong)x);

    public static Gen<ulong> Va(PagingMode mode)
    {
        int width = mode switch { PagingMode.Ia32e => 48, PagingMode.Ia32eLa57 => 57, _ => 32 };
        Gen<ulong> canonical = Below(width).Select(v => width == 32 ? v : (ulong)(((long)v << (64 - width)) >> (64 - width)));
        Gen<ulong> flipped = from v in canonical from b in Gen.Choose(width - 1, 63) select v ^ (1UL << b);
        return Gen.Frequency((8, canonical), (1, flipped), (1, U64));
    }

    /// <summary>An entry with random bits: the address is a pool frame (a table that exists) or any frame below 2^M.</summary>
    public static Gen<ulong> Entry(int m, bool legacy) =>
        from present in Chance(92)
        from low in Gen.Choose(0, 0xFFF) // R/W U/S PWT PCD A D PS G and the ignored bits 11:9
        from ps in Chance(35)
        from xd in Chance(30)
        from pat in Chance(40)
        from usePool in Chance(75)
        from pool in PoolFrame
        from random in Below(m - 12)
        from noise in Chance(12)
        from noiseBit in Gen.Frequency((2, Gen.Choose(52, 62)), (2, Gen.Choose(Math.Min(m, 51), 51)), (2, Gen.Choose(13, 29)), (1, Gen.Choose(1, 12)))
        select Compose(present, low, ps, xd, pat, usePool ? pool : random, noise ? noiseBit : -1, m, legacy);

    private static ulong Compose(bool present, int low, bool ps, bool xd, bool pat, ulong frame, int noiseBit, int m, bool legacy)
    {
        ulong e = (ulong)(uint)low & ~(Pte.P | Pte.Ps);
        e |= present ? Pte.P : 0;
        e |= ps ? Pte.Ps : 0;
        e |= frame << 12;
        e |= pat ? Pte.LargePat : 0;
        e |= xd ? Pte.Xd : 0;
        if (noiseBit >= 0)
        {
            e |= 1UL << noiseBit;
        }

        return legacy ? e & 0xFFFF_FFFF : e;
    }

    public static Gen<WalkScenario> Scenario =>
        from mode in Mode
        from m in MaxPhyAddr
        from features in Features
        from rootFrame in PoolFrame
        from rootLow in Gen.Choose(0, 0xFFF)
        from va in Va(mode)
        from templates in Gen.ArrayOf(Entry(m, mode == PagingMode.Legacy32), 5)
        from missing in Gen.ArrayOf(Chance(4), 5)
        from tidy in Gen.ArrayOf(Chance(85), 5)
        select new WalkScenario(mode, m, features, (rootFrame << 12) | (ulong)(uint)rootLow, va, templates, missing, tidy);

    public static Arbitrary<WalkScenario> Scenarios() => Scenario.ToArbitrary();
}
