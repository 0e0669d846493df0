using Vmi.Core;
using Vmi.Dump;

namespace Vmi.Dump.Tests;

/// <summary>
/// A deterministic mutation fuzzer over the committed corpus (tests/Vmi.Dump.Tests/Corpus, the same seeds the
/// AFL++ harness in fuzz/ starts from). Each seed gets a fixed number of mutated inputs from a fixed seed (the same
/// inputs on every machine, however slow or busy: no time budget) and each parser may only succeed or throw
/// <see cref="VmiFormatException"/>: never another exception, a hang or a huge allocation. Mutations reach the size
/// and count fields of every format with hostile 32- and 64-bit values, and some inputs are grown into large sparse
/// files, so the checks that bound allocations by what the file holds are exercised too.
/// </summary>
public sealed class FuzzTests
{
    /// <summary>Inputs per seed; VMI_FUZZ_RUNS raises it for a longer local run (same inputs first, then more).</summary>
    private static readonly int s_runs = int.Parse(Environment.GetEnvironmentVariable("VMI_FUZZ_RUNS") ?? "400", System.Globalization.CultureInfo.InvariantCulture);
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
        int[] sizeFields = SizeFields(seedName, seed);
        int runs = 0, accepted = 0, sparse = 0;
        try
        {
            while (runs < s_runs)
            {
                byte[] input = Mutate(seed, rng, sizeFields);
                long tail = rng.Next(8) == 0 ? SparseTails[rng.Next(SparseTails.Length)] : 0;
                using (var f = new FileStream(path, FileMode.Create, FileAccess.Write))
                {
                    f.Write(input);
                    if (tail > 0)
                    {
                        f.SetLength(input.Length + tail); // a hole: large on paper, nothing on disk
                        sparse++;
                    }
                }
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
                    Assert.Fail($"{seedName}: run {runs} hung (input kept at {path}.hang, plus a {tail}-byte sparse tail)");
                }

                if (unexpected is not null)
                {
                    File.WriteAllBytes(path + ".crash", input);
                    Assert.Fail($"{seedName}: run {runs} (sparse tail {tail} bytes) threw {unexpected.GetType().Name}: {unexpected.Message} (input kept at {path}.crash)\n{unexpected}");
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

        Assert.Equal(s_runs, runs);
        Assert.True(sparse > 0, "no input was grown into a sparse file");
        if (!seedName.StartsWith("regress-", StringComparison.Ordinal))
        {
            // (a regression input is broken on purpose: its mutants need not parse)
            Assert.True(accepted > 0, "no mutated input parsed at all: the mutations are too destructive to reach the readers");
        }
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

    /// <summary>Lengths added to some inputs as a hole (a sparse file): 1 MiB, 4 GiB + 1 and 64 GiB.</summary>
    private static readonly long[] SparseTails = [1L << 20, (1L << 32) + 1, 1L << 36];

    /// <summary>Hostile sizes and counts: past 32 bits, the sizes that overflowed int arithmetic before, and the extremes.</summary>
    private static readonly ulong[] HostileSizes = [1UL << 31, 1UL << 32, 1UL << 35, 1UL << 37, 1UL << 38, 1UL << 40, 1UL << 52, long.MaxValue, ulong.MaxValue, 0xFFFF_FFFF, 0x7FFF_FFFF];

    /// <summary>
    /// The offsets of each format's size and count fields in a seed (width 4 or 8 as the format has it, marked by the
    /// sign: negative = 4 bytes): random flips almost never land on these, so they get a mutation of their own.
    /// </summary>
    internal static int[] SizeFields(string seedName, byte[] seed)
    {
        var f = new List<int>();
        if (seedName.EndsWith(".kdump", StringComparison.Ordinal))
        {
            int sub = seed.AsSpan().StartsWith("makedumpfile\0"u8) ? -1 : 4096;
            if (sub > 0)
            {
                f.AddRange([-436, -440, -432, sub + 96, sub + 32, sub + 40, sub + 48, sub + 56]);
            }
        }
        else if (seed.Length >= 64 && seed.AsSpan().StartsWith("\u007fELF"u8))
        {
            f.AddRange([-56, -60, -62, 32, 40]); // e_phnum, e_shnum, e_shstrndx (16-bit, written as 4 bytes over the next field too), e_phoff, e_shoff
            ulong phoff = BitConverter.ToUInt64(seed, 32);
            int phnum = BitConverter.ToUInt16(seed, 56);
            for (int i = 0; i < phnum && phoff + ((ulong)(i + 1) * 56) <= (ulong)seed.Length; i++)
            {
                int p = (int)phoff + (i * 56);
                f.AddRange([p + 8, p + 32, p + 40]); // p_offset, p_filesz, p_memsz
            }

            ulong shoff = BitConverter.ToUInt64(seed, 40);
            int shnum = BitConverter.ToUInt16(seed, 60);
            for (int i = 0; i < shnum && shoff + ((ulong)(i + 1) * 64) <= (ulong)seed.Length; i++)
            {
                int p = (int)shoff + (i * 64);
                f.AddRange([p + 24, p + 32]); // sh_offset, sh_size
            }
        }
        else if (seedName.EndsWith(".lime", StringComparison.Ordinal))
        {
            f.AddRange([8, 16]);
        }

        return f.ToArray();
    }

    /// <summary>Byte flips, interesting values in headers, hostile values in size fields, truncation, chunk duplication and splicing.</summary>
    internal static byte[] Mutate(byte[] seed, Random rng, int[]? sizeFields = null)
    {
        byte[] b = (byte[])seed.Clone();
        int edits = 1 + rng.Next(4);
        for (int e = 0; e < edits; e++)
        {
            // bias towards the first 8 KiB, where every format keeps its headers
            int Pos(int length) => length == 0 ? 0 : rng.Next(2) == 0 ? rng.Next(Math.Min(length, 8192)) : rng.Next(length);
            switch (rng.Next(sizeFields is { Length: > 0 } ? 9 : 7))
            {
                case 7:
                case 8:
                    {
                        int field = sizeFields![rng.Next(sizeFields.Length)];
                        int at = Math.Abs(field);
                        ulong value = HostileSizes[rng.Next(HostileSizes.Length)] + (ulong)(rng.Next(3) - 1);
                        if (field < 0 && at + 4 <= b.Length)
                        {
                            BitConverter.TryWriteBytes(b.AsSpan(at), (uint)Math.Min(value, uint.MaxValue));
                        }
                        else if (field >= 0 && at + 8 <= b.Length)
                        {
                            BitConverter.TryWriteBytes(b.AsSpan(at), value);
                        }

                        break;
                    }

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
