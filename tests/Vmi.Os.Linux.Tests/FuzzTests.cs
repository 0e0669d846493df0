using Vmi.Core;
using Vmi.Mock;
using Vmi.Mock.Linux;
using L = Vmi.Mock.DemoGuestLayout;
using X = Vmi.Mock.Linux.DemoLinuxLayout;

namespace Vmi.Os.Linux.Tests;

/// <summary>
/// The kallsyms and BTF parsers on damaged input (fixed seeds, fixed counts): each run either decodes or fails
/// with <see cref="LinuxIntrospectionException"/>; nothing else escapes, nothing hangs.
/// </summary>
public sealed class FuzzTests
{
    private const int Iterations = 300;

    public static TheoryData<int> Seeds => new() { 1, 2, 3 };

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Damaged_kallsyms_tables_decode_or_fail_cleanly(int seed)
    {
        var rng = new Random(seed);
        byte[] table = KallsymsWriter.Write(DemoLinuxKernel.Symbols(100), out KallsymsWriter.Layout layout);
        int decoded = 0;
        for (int i = 0; i < Iterations; i++)
        {
            byte[] damaged = (byte[])table.Clone();
            Mutate(rng, damaged, layout.End);
            ulong va = 0xFFFF_FFFF_8220_0000;
            // the token table is found by its structure, then everything before it
            byte[] window = new byte[4096 + 16384];
            int hit = damaged.AsSpan().IndexOf(KallsymsDecoder.DigitTokens);
            if (hit < 0 || hit < 4096)
            {
                continue;
            }

            Array.Copy(damaged, hit - 4096, window, 0, Math.Min(window.Length, damaged.Length - (hit - 4096)));
            if (!KallsymsDecoder.TryTokenTableAt(window, va + (ulong)(hit - 4096), 4096, out ulong tokenTable, out ulong tokenIndex, out string[] tokens))
            {
                continue;
            }

            int tokenAt = (int)(tokenTable - va);
            KallsymsTable? t = KallsymsDecoder.TryDecode(damaged.AsSpan(0, tokenAt), va, tokenTable, tokenIndex, tokens);
            if (t is not null)
            {
                decoded++;
                Assert.InRange(t.Count, 1, KallsymsDecoder.MaxSymbols);
            }
        }

        // a table with a few flipped bytes is mostly still a table: the fuzzer reached the decoder
        Assert.True(decoded > 0, "no damaged table got as far as the decoder");
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Random_bytes_never_pass_as_a_token_table(int seed)
    {
        var rng = new Random(seed);
        byte[] data = new byte[1 << 16];
        for (int i = 0; i < 50; i++)
        {
            rng.NextBytes(data);
            // plant the digits so that the check behind them runs
            int hit = 4096 + rng.Next(4096);
            KallsymsDecoder.DigitTokens.CopyTo(data.AsSpan(hit));
            Assert.False(KallsymsDecoder.TryTokenTableAt(data, 0xFFFF_FFFF_8100_0000, hit, out _, out _, out _));
        }
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Damaged_kallsyms_in_a_guest_end_in_a_table_or_a_clear_error(int seed)
    {
        var rng = new Random(seed);
        using var core = new VmiCore(DemoGuest.Create());
        byte[] original = core.ReadBytes(AccessContext.Paging(new Va(X.KallsymsVa), new Pa(L.KernelCr3)), 0x8000);
        for (int i = 0; i < 20; i++)
        {
            byte[] damaged = (byte[])original.Clone();
            Mutate(rng, damaged, damaged.Length);
            core.Write(AccessContext.Paging(new Va(X.KallsymsVa), new Pa(L.KernelCr3)), damaged);
            try
            {
                LinuxKernel k = LinuxKernel.Open(new CoreGuestMemory(core));
                Assert.InRange(k.Symbols.Count, 1, KallsymsDecoder.MaxSymbols);
            }
            catch (LinuxIntrospectionException)
            {
            }
        }
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Damaged_btf_parses_or_fails_cleanly_and_lookups_stay_bounded(int seed)
    {
        var rng = new Random(seed);
        using var core = new VmiCore(DemoGuest.Create());
        LinuxKernel kernel = LinuxKernel.Open(new CoreGuestMemory(core));
        ulong start = kernel.Symbols.GetAddress("__start_BTF"), stop = kernel.Symbols.GetAddress("__stop_BTF");
        byte[] blob = core.ReadBytes(AccessContext.Paging(new Va(start), new Pa(L.KernelCr3)), (int)(stop - start));
        int parsed = 0;
        for (int i = 0; i < Iterations; i++)
        {
            byte[] damaged = Damage(rng, blob);

            BtfTypes types;
            try
            {
                types = BtfTypes.Parse(damaged);
            }
            catch (LinuxIntrospectionException)
            {
                continue;
            }

            parsed++;
            foreach ((string s, string f) in new[] { ("task_struct", "tasks"), ("task_struct", "comm"), ("mm_struct", "pgd"), ("cred", "uid.val"), ("module", "core_layout.size") })
            {
                if (types.TryGetField(s, f, out BtfField field))
                {
                    _ = types.SizeOf(field.TypeId);
                }
            }

            foreach ((int id, BtfKind _, string _) in types.Types())
            {
                _ = types.SizeOf(id);
                _ = types.Members(id).Count();
            }
        }

        Assert.True(parsed > 0, "no damaged blob parsed: the fuzzer never reached the lookups");
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Damaged_split_btf_parses_or_fails_cleanly_and_lookups_stay_bounded(int seed)
    {
        var rng = new Random(seed);
        (BtfTypes kernel, byte[] blob) = SplitBtfTests.Demo();
        int parsed = 0;
        for (int i = 0; i < Iterations; i++)
        {
            byte[] damaged = Damage(rng, blob);

            BtfTypes types;
            try
            {
                types = BtfTypes.ParseSplit(damaged, kernel);
            }
            catch (LinuxIntrospectionException)
            {
                continue;
            }

            parsed++;
            Assert.Equal(kernel.LastId + 1, types.FirstId);
            foreach ((string s, string f) in new[] { ("demo_entry", "list.prev"), ("demo_entry", "mode"), ("demo_entry", "word"), ("list_head", "next") })
            {
                if (types.TryGetField(s, f, out BtfField field))
                {
                    _ = types.SizeOf(field.TypeId);
                    _ = types.PointeeOf(field.TypeId);
                }
            }

            // every id either side of the split, and ids past both ends
            for (int id = -2; id <= types.LastId + 2; id++)
            {
                _ = types.SizeOf(id);
                _ = types.NameOf(id);
                _ = types.Resolve(id);
                _ = types.Members(id).Count();
                _ = types.ReferencesOf(id).Count();
                _ = types.NameOffsetsOf(id).Count(types.IsStringOffset);
            }
        }

        Assert.True(parsed > 0, "no damaged split blob parsed: the fuzzer never reached the lookups");
    }

    [Fact]
    public void Btf_with_self_containing_anonymous_members_stays_bounded()
    {
        var w = new BtfWriter();
        int self = w.NextId;
        w.Struct("loop", 8, new(string.Empty, self, 0), new(string.Empty, self, 0), new(string.Empty, self, 0));
        int t = w.NextId;
        w.Typedef("t", t); // a typedef of itself
        BtfTypes types = BtfTypes.Parse(w.ToArray());
        Assert.False(types.TryGetField("loop", "missing", out _));
        Assert.Equal(0UL, types.SizeOf(t));
    }

    [Fact]
    public void Btf_bitfields_and_anonymous_unions_resolve()
    {
        var w = new BtfWriter();
        int u32 = w.Int("unsigned int", 4);
        int inner = w.Union(string.Empty, 4, new("whole", u32, 0), new("half", w.Int("short unsigned int", 2), 0));
        int s = w.Struct("flags_demo", 16, new("a", u32, 0, 3), new("b", u32, 3, 5), new(string.Empty, inner, 64), new("c", u32, 96, 0));
        BtfTypes types = BtfTypes.Parse(w.ToArray());
        Assert.Equal(BtfKind.Struct, types.KindOf(s));
        BtfField b = types.GetField("flags_demo", "b");
        Assert.Equal((0UL, 3u, (byte)5), (b.Offset, b.BitOffset, b.BitfieldSize));
        Assert.Equal(8UL, types.GetField("flags_demo", "half").Offset);
        Assert.Equal(12UL, types.GetField("flags_demo", "c").Offset);
        Assert.Equal(4UL, types.GetField("flags_demo", "whole").Size);
    }

    [Theory]
    [InlineData(new byte[] { 0x9F, 0xEB, 1, 0 }, "shorter than")]
    [InlineData(new byte[] { 0x00, 0x00, 1, 0, 24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0 }, "magic")]
    [InlineData(new byte[] { 0x9F, 0xEB, 2, 0, 24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0 }, "version")]
    [InlineData(new byte[] { 0x9F, 0xEB, 1, 0, 24, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0 }, "runs past")]
    public void Bad_btf_headers_are_named(byte[] blob, string what)
    {
        var e = Assert.Throws<LinuxIntrospectionException>(() => BtfTypes.Parse(blob));
        Assert.Contains(what, e.Message, StringComparison.Ordinal);
    }

    /// <summary>A mutated copy of <paramref name="blob"/>, cut short one time in ten.</summary>
    private static byte[] Damage(Random rng, byte[] blob)
    {
        byte[] damaged = (byte[])blob.Clone();
        Mutate(rng, damaged, damaged.Length);
        return rng.Next(10) == 0 ? damaged[..rng.Next(damaged.Length)] : damaged;
    }

    private static void Mutate(Random rng, byte[] data, int length)
    {
        int n = 1 + rng.Next(8);
        for (int k = 0; k < n; k++)
        {
            int at = rng.Next(length);
            data[at] = rng.Next(3) switch
            {
                0 => (byte)rng.Next(256),
                1 => 0xFF,
                _ => 0,
            };
        }
    }
}
