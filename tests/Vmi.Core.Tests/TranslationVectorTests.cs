using System.Globalization;

namespace Vmi.Core.Tests;

/// <summary>Hand-written translation vectors (Vectors/translation.txt) checked against VmiCore and the reference walk.</summary>
public class TranslationVectorTests
{
    public static TheoryData<string, string> Vectors()
    {
        var data = new TheoryData<string, string>();
        string path = Path.Combine(AppContext.BaseDirectory, "Vectors", "translation.txt");
        foreach (string raw in File.ReadLines(path))
        {
            string line = raw.Trim();
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            data.Add(line.Split(';')[0].Trim(), line);
        }

        return data;
    }

    private static ulong Hex(string s) => ulong.Parse(s.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? s[2..] : s, NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    private static PageEntryFlags ParseFlags(string list)
    {
        PageEntryFlags f = PageEntryFlags.None;
        foreach (string n in list.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            f |= n switch
            {
                "P" => PageEntryFlags.Present,
                "W" => PageEntryFlags.Writable,
                "U" => PageEntryFlags.User,
                "PWT" => PageEntryFlags.WriteThrough,
                "PCD" => PageEntryFlags.CacheDisable,
                "A" => PageEntryFlags.Accessed,
                "D" => PageEntryFlags.Dirty,
                "PS" => PageEntryFlags.LargePage,
                "G" => PageEntryFlags.Global,
                "NX" => PageEntryFlags.NoExecute,
                _ => throw new FormatException($"unknown flag {n}"),
            };
        }

        return f;
    }

    [Theory]
    [MemberData(nameof(Vectors))]
    public void Vector(string name, string line)
    {
        string[] f = line.Split(';').Select(x => x.Trim()).ToArray();
        Assert.InRange(f.Length, 7, 8);
        var mode = Enum.Parse<PagingMode>(f[1]);
        int m = int.Parse(f[2], CultureInfo.InvariantCulture);
        ulong root = Hex(f[3]);
        ulong va = Hex(f[4]);
        PagingFeatures features = f.Length == 8 ? Enum.Parse<PagingFeatures>(f[7]) : PagingFeatures.All;

        var mem = new SparseDriver(name);
        if (f[5] != "-")
        {
            foreach (string w in f[5].Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                string[] kv = w.Split('=');
                bool four = kv[0].EndsWith(":4", StringComparison.Ordinal);
                ulong pa = Hex(four ? kv[0][..^2] : kv[0]);
                ulong value = Hex(kv[1]);
                if (four)
                {
                    mem.PokeU32(pa, checked((uint)value));
                }
                else
                {
                    mem.PokeU64(pa, value);
                }
            }
        }

        string[] exp = f[6].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        using var core = new VmiCore(mem) { PagingMode = mode, PhysicalAddressWidth = m, PagingFeatures = features };
        var ctx = new AddressContext(new Va(va), new Pa(root));
        TranslationResult actual = core.TryTranslateAddress(ctx);
        RefResult reference = TranslationPropertyTests.Reference(mem, mode, root, va, m, features);

        if (exp[0] == "ok")
        {
            var kv = exp.Skip(1).Select(x => x.Split('=')).ToDictionary(x => x[0], x => x[1]);
            ulong pa = Hex(kv["pa"]);
            PageSizeKind size = kv["size"] switch { "4K" => PageSizeKind.Size4K, "2M" => PageSizeKind.Size2M, "4M" => PageSizeKind.Size4M, _ => PageSizeKind.Size1G };
            PageEntryFlags flags = ParseFlags(kv["flags"]);

            Assert.True(actual.Success, $"{name}: {actual}");
            Assert.Equal(pa, actual.Pa.Value);
            Assert.Equal(size, actual.PageSize);
            Assert.Equal(flags, actual.Flags);
            Assert.True(reference.Ok, $"reference: {reference.Fault} at {reference.Level}");
            Assert.Equal(pa, reference.Pa);
            Assert.Equal(size, reference.Size);
            Assert.Equal(flags, reference.Flags);

            // A second translation is a V2P hit and says the same; a byte read lands at the PA.
            Assert.Equal(actual, core.TryTranslateAddress(ctx));
            mem.Poke(pa, [0xA5]);
            Assert.Equal(0xA5, core.ReadU8(ctx));
        }
        else
        {
            var kind = Enum.Parse<WalkFaultKind>(exp[1]);
            Assert.False(actual.Success, $"{name}: translated to {actual}");
            Assert.Equal(kind, actual.Fault);
            Assert.Equal(kind, reference.Fault);
            if (exp[2] != "-")
            {
                var level = Enum.Parse<PagingLevel>(exp[2]);
                Assert.Equal(level, actual.FaultLevel);
                Assert.Equal(level, reference.Level);
            }

            // The throwing form names the fault.
            var e = Assert.ThrowsAny<VmiException>(() => core.TranslateAddress(ctx));
            if (kind == WalkFaultKind.NonCanonical)
            {
                Assert.IsType<NonCanonicalAddressException>(e);
            }
            else
            {
                var pf = Assert.IsType<PageFaultException>(e);
                Assert.Equal(kind, pf.Kind);
                Assert.Equal(actual.FaultLevel, pf.Level);
                Assert.Equal(new Pa(root), pf.Root);
                Assert.Equal(new Va(va), pf.Va);
            }
        }
    }
}
