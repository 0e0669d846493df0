using System.Globalization;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;
using Vmi.Core.Search;
using Vmi.Dump;

namespace Vmi.Benchmarks;

/// <summary>
/// The paths of issue 8's LibVMI comparison, on the tests' real QEMU guest image (raw, memory-mapped) with the inputs
/// bench/peer/make_inputs.py writes. Set VMI_BENCH_GUEST to the guest's directory (guest.raw) and VMI_BENCH_PEER to the
/// inputs' directory (params, vas.tsv, pas.bin); without them every benchmark here reports that it has nothing to run.
/// </summary>
[MemoryDiagnoser]
public class GuestImageBenchmarks
{
    private const int Bulk = 64 << 20;

    private MemoryImage? _image;
    private VmiCore _core = null!;
    private AddressContext[] _vas = [];
    private ulong[] _pas = [];
    private ulong _bulkVa;
    private Pa _root;
    private byte[] _buffer = null!;
    private byte[] _copy = null!;
    private BytePattern _literal = null!;
    private BytePattern _wildcard = null!;
    private int _next;

    [GlobalSetup]
    public void Setup()
    {
        string guest = Environment.GetEnvironmentVariable("VMI_BENCH_GUEST") ?? throw new InvalidOperationException("Set VMI_BENCH_GUEST to the directory of the tests' guest (guest.raw): see bench/peer/run.sh.");
        string peer = Environment.GetEnvironmentVariable("VMI_BENCH_PEER") ?? throw new InvalidOperationException("Set VMI_BENCH_PEER to the directory bench/peer/make_inputs.py wrote (params, vas.tsv, pas.bin).");
        Dictionary<string, string> p = File.ReadAllLines(Path.Combine(peer, "params")).Select(l => l.Split('=', 2)).ToDictionary(a => a[0], a => a[1]);
        ulong cr3 = ulong.Parse(p["CR3"], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        _bulkVa = ulong.Parse(p["BULK_VA"], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        _image = MemoryImage.Open(Path.Combine(guest, "guest.raw"), new MemoryImageOptions { Cr3 = cr3 });
        _core = new VmiCore(_image) { PagingMode = PagingMode.Ia32e };
        _root = new Pa(cr3);
        _vas = File.ReadLines(Path.Combine(peer, "vas.tsv")).Where(l => !l.StartsWith('#'))
            .Select(l => l.Split('\t'))
            .Select(r => new AddressContext(new Va(ulong.Parse(r[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture)), new Pa(ulong.Parse(r[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture))))
            .ToArray();
        _pas = MemoryMarshal.Cast<byte, ulong>(File.ReadAllBytes(Path.Combine(peer, "pas.bin")).AsSpan(0, 8000)).ToArray();
        _buffer = GC.AllocateUninitializedArray<byte>(1 << 20, pinned: true);
        _copy = GC.AllocateUninitializedArray<byte>(Bulk, pinned: true);
        _core.Read(AccessContext.Paging(new Va(_bulkVa), _root), _copy);
        _literal = BytePattern.FromString("VMI-PERF-NEEDLE-NOT-IN-GUEST", System.Text.Encoding.ASCII);
        _wildcard = BytePattern.Parse("56 4d 49 ?? 50 45 52 46 ?? ?? 4e 45 45 44 4c 45");
        foreach (AddressContext a in _vas)
        {
            _core.ReadU64(a); // warm both caches
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _core?.Dispose();
    }

    /// <summary>FlushV2PCache, then one translation (a 4-level walk through the page cache).</summary>
    [Benchmark]
    public ulong FlushAllThenTranslate()
    {
        int i = _next;
        _next = i + 1 == _vas.Length ? 0 : i + 1;
        _core.FlushV2PCache();
        return _core.TryTranslateAddress(_vas[i]).Pa.Value;
    }

    /// <summary>8-byte physical reads cycling over 1000 random PAs of the image.</summary>
    [Benchmark(OperationsPerInvoke = 1000)]
    public ulong PhysReadCycle1000()
    {
        ulong s = 0;
        for (int i = 0; i < 1000; i++)
        {
            s += _core.ReadU64(AccessContext.Direct(new Pa(_pas[i])));
        }

        return s;
    }

    /// <summary>8-byte read at one VA, both caches warm.</summary>
    [Benchmark(OperationsPerInvoke = 1000)]
    public ulong WarmReadSameVa()
    {
        ulong s = 0;
        AccessContext c = _vas[0];
        for (int i = 0; i < 1000; i++)
        {
            s += _core.ReadU64(c);
        }

        return s;
    }

    /// <summary>64 MiB of the direct map read by virtual address, in 1 MiB reads.</summary>
    [Benchmark]
    public void StreamRead64MiB_1MiB() => ReadBulk(1 << 20);

    /// <summary>The same 64 MiB in 4 KiB reads.</summary>
    [Benchmark]
    public void StreamRead64MiB_4KiB() => ReadBulk(4096);

    /// <summary>The baseline: 64 MiB copied from a managed array in 1 MiB chunks (Span.CopyTo, i.e. memmove).</summary>
    [Benchmark(Baseline = true)]
    public void Memcpy64MiB_1MiB()
    {
        for (int off = 0; off < Bulk; off += 1 << 20)
        {
            _copy.AsSpan(off, 1 << 20).CopyTo(_buffer);
        }
    }

    /// <summary>Search of the 64 MiB for a 28-byte literal that is not there (every byte scanned).</summary>
    [Benchmark]
    public int Search64MiB_Literal() => MemorySearcher.Search(_core, _literal, AccessContext.Paging(new Va(_bulkVa), _root), Bulk).Count();

    /// <summary>Search of the 64 MiB for a 16-byte pattern with three wildcards that is not there.</summary>
    [Benchmark]
    public int Search64MiB_Wildcard() => MemorySearcher.Search(_core, _wildcard, AccessContext.Paging(new Va(_bulkVa), _root), Bulk).Count();

    private void ReadBulk(int chunk)
    {
        Span<byte> dst = _buffer.AsSpan(0, chunk);
        for (int off = 0; off < Bulk; off += chunk)
        {
            _core.ReadStreaming(AccessContext.Paging(new Va(_bulkVa + (ulong)off), _root), dst);
        }
    }
}
