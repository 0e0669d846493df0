using System.Diagnostics;
using Vmi.Core;
using Vmi.Dump;

namespace Vmi.Dump.Tests;

/// <summary>
/// A deterministic mutation fuzzer over the committed corpus (tests/Vmi.Dump.Tests/Corpus, the same seeds the
/// AFL++ harness in fuzz/ starts from). Each parser gets a few seconds of mutated input and may only succeed
/// or throw <see cref="VmiFormatException"/>: never another exception, a hang or a huge allocation.
/// </summary>
public sealed class FuzzTests
{
    private static readonly TimeSpan s_budget = TimeSpan.FromSeconds(double.Parse(Environment.GetEnvironmentVariable("VMI_FUZZ_SECONDS") ?? "3", System.Globalization.CultureInfo.InvariantCulture));
    private const long AllocationLimit = 64L << 20;

    public static TheoryData<string> CorpusFiles() => new(Directory.GetFiles(CorpusDirectory).Select(Path.GetFileName).OfType<string>().Order());

    private static string CorpusDirectory => Path.Combine(AppContext.BaseDirectory, "Corpus");

    [Fact]
    public void Committed_corpus_equals_the_seed_builders()
    {
        // The corpus is committed for AFL++; it must stay what the builders make today.
        foreach ((string name, byte[] bytes) in Seeds.All())
        {
            string path = Path.Combine(CorpusDirectory, name);
            Assert.True(File.Exists(path), $"{name} is missing from the corpus: run 'dotnet test --filter Regenerate_corpus' with VMI_WRITE_CORPUS=1");
            if (name.EndsWith(".kdump", StringComparison.Ordinal))
            {
                continue; // zlib output may differ between zlib builds; the fuzz run checks these seeds parse
            }

            Assert.True(File.ReadAllBytes(path).AsSpan().SequenceEqual(bytes), $"{name} in the corpus is stale: regenerate it (VMI_WRITE_CORPUS=1 dotnet test --filter Regenerate_corpus)");
        }
    }

    [Fact]
    public void Regenerate_corpus()
    {
        string? target = Environment.GetEnvironmentVariable("VMI_WRITE_CORPUS") == "1"
            ? Path.Combine(RealGuestFixture.RepositoryRoot, "tests", "Vmi.Dump.Tests", "Corpus")
            : null;
        foreach ((string name, byte[] bytes) in Seeds.All())
        {
            Assert.True(bytes.Length < 200_000, $"{name} is {bytes.Length} bytes: keep seeds small");
            if (target is not null)
            {
                File.WriteAllBytes(Path.Combine(target, name), bytes);
            }
        }
    }

    /// <summary>Inputs AFL++ found (Corpus/regress-*): each must now fail cleanly, as a format error.</summary>
    [Theory]
    [InlineData("regress-zlib-error.kdump")] // zlib's native error surfaced as ZLibException, not a format error
    [InlineData("regress-xen-no-map.xen")] // a Xen core without .xen_pfn/.xen_p2m: a null section name
    public void Regression_inputs_fail_with_a_format_error(string name)
    {
        string path = Path.Combine(CorpusDirectory, name);
        var e = Assert.Throws<VmiFormatException>(() => Exercise(path));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(CorpusFiles))]
    public void Mutated_input_only_ever_fails_with_a_format_error(string seedName)
    {
        byte[] seed = File.ReadAllBytes(Path.Combine(CorpusDirectory, seedName));
        var rng = new Random(seedName.Aggregate(17, (h, c) => (h * 31) + c)); // deterministic per seed
        string path = Path.Combine(Path.GetTempPath(), $"vmi-fuzz-{Environment.ProcessId}-{seedName}");
        var clock = Stopwatch.StartNew();
        int runs = 0, accepted = 0;
        try
        {
            while (clock.Elapsed < s_budget || runs < 50)
            {
                byte[] input = Mutate(seed, rng);
                File.WriteAllBytes(path, input);
                Exception? unexpected = null;
                long allocated = 0;
                bool ok = false;
                var thread = new Thread(() =>
                {
                    long before = GC.GetAllocatedBytesForCurrentThread();
                    try
                    {
                        ok = Exercise(path);
                    }
                    catch (VmiFormatException e)
                    {
                        if (!e.Message.Contains(path, StringComparison.Ordinal))
                        {
                            unexpected = new InvalidOperationException("the format error does not name the file: " + e.Message, e);
                        }
                    }
                    catch (Exception e)
                    {
                        unexpected = e;
                    }

                    allocated = GC.GetAllocatedBytesForCurrentThread() - before;
                });
                thread.Start();
                if (!thread.Join(TimeSpan.FromSeconds(20)))
                {
                    File.WriteAllBytes(path + ".hang", input);
                    Assert.Fail($"{seedName}: run {runs} hung (input kept at {path}.hang)");
                }

                if (unexpected is not null)
                {
                    File.WriteAllBytes(path + ".crash", input);
                    Assert.Fail($"{seedName}: run {runs} threw {unexpected.GetType().Name}: {unexpected.Message} (input kept at {path}.crash)\n{unexpected}");
                }

                Assert.True(allocated < AllocationLimit + (input.Length * 4L), $"{seedName}: run {runs} allocated {allocated} bytes for a {input.Length}-byte input");
                accepted += ok ? 1 : 0;
                runs++;
            }
        }
        finally
        {
            File.Delete(path);
        }

        Assert.True(runs >= 50, $"only {runs} runs");
        Assert.True(accepted > 0, "no mutated input parsed at all: the mutations are too destructive to reach the readers");
    }

    /// <summary>Opens the image and touches everything a session would: ranges, pages, registers, VMCOREINFO.</summary>
    private static bool Exercise(string path)
    {
        using MemoryImage image = MemoryImage.Open(path);
        int pages = 0;
        foreach (PhysicalRange r in image.Ranges.Take(64))
        {
            for (ulong pa = r.Start.Value; pa < r.End.Value && pages < 256; pa += 4096, pages++)
            {
                if (image.TryMapPage(new Gfn(pa >> 12), out MappedPage? p))
                {
                    using (p)
                    {
                        _ = p.Span[^1];
                    }
                }
            }
        }

        foreach (Vmi.Core.Arch.Amd64.Registers r in image.Registers)
        {
            _ = r.PagingMode;
        }

        _ = image.VmcoreinfoEntries.Count;
        if (image.Registers.Count > 0)
        {
            using var core = new VmiCore(image);
            var root = core.GetRegisters(new VcpuId(0)).TranslationRoot;
            _ = core.TryTranslateAddress(new AddressContext(new Va(Seeds.UserVa), root));
            GC.KeepAlive(core);
        }

        return true;
    }

    /// <summary>Byte flips, interesting values in headers, truncation, chunk duplication and splicing.</summary>
    internal static byte[] Mutate(byte[] seed, Random rng)
    {
        byte[] b = (byte[])seed.Clone();
        int edits = 1 + rng.Next(4);
        for (int e = 0; e < edits; e++)
        {
            // bias towards the first 8 KiB, where every format keeps its headers
            int Pos(int length) => length == 0 ? 0 : rng.Next(2) == 0 ? rng.Next(Math.Min(length, 8192)) : rng.Next(length);
            switch (rng.Next(7))
            {
                case 0:
                    if (b.Length > 0)
                    {
                        b[Pos(b.Length)] ^= (byte)(1 << rng.Next(8));
                    }

                    break;
                case 1:
                    if (b.Length > 0)
                    {
                        byte[] interesting = [0, 0xFF, 0x7F, 0x80, 1, 0x10, 0x40];
                        b[Pos(b.Length)] = interesting[rng.Next(interesting.Length)];
                    }

                    break;
                case 2:
                    if (b.Length >= 8)
                    {
                        ulong[] values = [0, ulong.MaxValue, long.MaxValue, 0x8000_0000, 0xFFFF_FFFF, 0x1_0000_0000, 4096, 0xFFFF];
                        int at = Pos(b.Length - 7);
                        BitConverter.TryWriteBytes(b.AsSpan(at), values[rng.Next(values.Length)]);
                    }

                    break;
                case 3:
                    b = b[..rng.Next(b.Length + 1)];
                    break;
                case 4:
                    if (b.Length > 16)
                    {
                        int from = rng.Next(b.Length - 8), to = Pos(b.Length - 8), n = Math.Min(1 + rng.Next(64), Math.Min(b.Length - from, b.Length - to));
                        Array.Copy(b, from, b, to, n);
                    }

                    break;
                case 5:
                    if (b.Length >= 4)
                    {
                        int at = Pos(b.Length - 3);
                        BitConverter.TryWriteBytes(b.AsSpan(at), BitConverter.ToUInt32(b, at) + (uint)(rng.Next(33) - 16));
                    }

                    break;
                default:
                    if (b.Length > 0 && b.Length < 1 << 20)
                    {
                        int at = Pos(b.Length), n = Math.Min(1 + rng.Next(512), b.Length - at);
                        b = [.. b.AsSpan(0, at), .. b.AsSpan(at, n), .. b.AsSpan(at)];
                    }

                    break;
            }
        }

        return b;
    }
}
