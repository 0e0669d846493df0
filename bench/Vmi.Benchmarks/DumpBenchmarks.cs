using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;
using Vmi.Dump;

namespace Vmi.Benchmarks;

/// <summary>
/// Memory images: bulk virtual reads from a memory-mapped image (raw, ELF, kdump-zlib) against a plain memcpy of
/// the same bytes, and acquisition (ImageWriter) throughput. The image: 64 MiB of guest memory whose
/// 4-level page tables map VA 0x7f0000000000.. onto it with 4 KiB pages in a shuffled order (as real guests do).
/// Run: dotnet run -c Release --project bench/Vmi.Benchmarks -- --filter '*DumpBenchmarks*'
/// </summary>
[MemoryDiagnoser]
public class DumpBenchmarks
{
    private const ulong Va0 = 0x7f00_0000_0000;
    private const int DataPages = 16384; // 64 MiB
    private const int ChunkBytes = 1 << 20;
    private string _dir = "";
    private MemoryImage? _raw, _elf, _kdump;
    private VmiCore? _rawCore, _elfCore, _kdumpCore;
    private byte[] _flat = [];
    private ulong[] _frameOfPage = [];
    private readonly byte[] _buffer = new byte[ChunkBytes];

    [GlobalSetup]
    public void Setup()
    {
        _dir = Path.Combine(Path.GetTempPath(), $"vmi-bench-{Environment.ProcessId}");
        Directory.CreateDirectory(_dir);
        const int tables = 1 + 1 + 1 + (DataPages / 512);
        const ulong firstData = tables + 1;
        int frames = (int)firstData + DataPages;
        byte[] mem = new byte[(long)frames * 4096];
        var rng = new Random(7);
        _frameOfPage = Enumerable.Range(0, DataPages).Select(i => firstData + (ulong)i).OrderBy(_ => rng.Next()).ToArray();
        void Entry(ulong table, int index, ulong target) => BinaryPrimitives.WriteUInt64LittleEndian(mem.AsSpan((int)((table * 4096) + ((ulong)index * 8))), (target << 12) | 7);
        Entry(1, (int)((Va0 >> 39) & 511), 2);
        Entry(2, (int)((Va0 >> 30) & 511), 3);
        for (int pt = 0; pt < DataPages / 512; pt++)
        {
            Entry(3, (int)((Va0 >> 21) & 511) + pt, (ulong)(4 + pt));
            for (int i = 0; i < 512; i++)
            {
                Entry((ulong)(4 + pt), i, _frameOfPage[(pt * 512) + i]);
            }
        }

        for (int p = 0; p < DataPages; p++)
        {
            rng.NextBytes(mem.AsSpan((int)(_frameOfPage[p] * 4096), 2048)); // half random, half zero: compressible like real memory
        }

        string rawPath = Path.Combine(_dir, "guest.raw");
        File.WriteAllBytes(rawPath, mem);
        _raw = MemoryImage.Open(rawPath, new MemoryImageOptions { Cr3 = 0x1000 });
        _rawCore = new VmiCore(_raw);
        string elfPath = Path.Combine(_dir, "guest.elf");
        using (var f = File.Create(elfPath))
        {
            ImageWriter.Write(_rawCore, f, ImageFormat.ElfCore, null, CancellationToken.None);
        }

        _elf = MemoryImage.Open(elfPath);
        _elfCore = new VmiCore(_elf);
        string kdumpPath = Environment.GetEnvironmentVariable("VMI_BENCH_KDUMP") ?? "";
        if (File.Exists(kdumpPath))
        {
            _kdump = MemoryImage.Open(kdumpPath);
            _kdumpCore = new VmiCore(_kdump);
        }

        // the memcpy baseline: the same bytes, already in order in memory
        _flat = new byte[(long)DataPages * 4096];
        for (int p = 0; p < DataPages; p++)
        {
            mem.AsSpan((int)(_frameOfPage[p] * 4096), 4096).CopyTo(_flat.AsSpan(p * 4096));
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _rawCore?.Dispose();
        _elfCore?.Dispose();
        _kdumpCore?.Dispose();
        _raw?.Dispose();
        _elf?.Dispose();
        _kdump?.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>Baseline: copy 64 MiB in 1 MiB chunks from a managed array.</summary>
    [Benchmark(Baseline = true)]
    public void Memcpy64MiB()
    {
        for (int off = 0; off < _flat.Length; off += ChunkBytes)
        {
            _flat.AsSpan(off, ChunkBytes).CopyTo(_buffer);
        }
    }

    /// <summary>64 MiB of virtual reads (1 MiB each, translated page by page) from the raw image.</summary>
    [Benchmark]
    public void VirtualRead64MiB_Raw() => ReadAll(_rawCore!);

    [Benchmark]
    public void VirtualRead64MiB_Elf() => ReadAll(_elfCore!);

    private void ReadAll(VmiCore core)
    {
        for (ulong off = 0; off < (ulong)DataPages * 4096; off += ChunkBytes)
        {
            core.Read(AccessContext.Paging(new Va(Va0 + off), new Pa(0x1000)), _buffer);
        }
    }

    /// <summary>Save-VmiMemory's engine: the whole 64 MiB image to an ELF core (to Stream.Null: producer throughput).</summary>
    [Benchmark]
    public void Save64MiB_Elf_ToNull() => ImageWriter.Write(_rawCore!, Stream.Null, ImageFormat.ElfCore, null, CancellationToken.None);

    [Benchmark]
    public void Save64MiB_Raw_ToFile()
    {
        string path = Path.Combine(_dir, "out.raw");
        using (var f = File.Create(path))
        {
            ImageWriter.Write(_elfCore!, f, ImageFormat.Raw, null, CancellationToken.None);
        }

        File.Delete(path);
    }

    /// <summary>Physical page reads from a real QEMU kdump-zlib image (set VMI_BENCH_KDUMP): decompression per page, cache off.</summary>
    [Benchmark]
    public int KdumpDecompressAllPages()
    {
        if (_kdump is null)
        {
            return 0;
        }

        int n = 0;
        foreach (PhysicalRange r in _kdump.Ranges)
        {
            for (ulong pa = r.Start.Value; pa < r.End.Value; pa += 4096)
            {
                if (_kdump.TryMapPage(new Gfn(pa >> 12), out MappedPage? p))
                {
                    p.Dispose();
                    n++;
                }
            }
        }

        return n;
    }
}
