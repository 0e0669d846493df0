using System.Text;
using BenchmarkDotNet.Attributes;
using Vmi.Core;

namespace Vmi.Benchmarks;

/// <summary>The engine's hot paths over an in-memory driver: warm reads, cold translations, bulk reads, strings.</summary>
[MemoryDiagnoser]
public class CoreBenchmarks
{
    private const ulong DataVa = 0xffff_f800_0000_0000;
    private const ulong ColdVa = 0x0000_7f00_0000_0000;
    private const int ColdPages = 16384; // twice the V2P budget: a cyclic walk over them always misses
    private const int Megabyte = 1 << 20;

    private ArrayDriver _driver = null!;
    private VmiCore _core = null!;
    private AccessContext _u64;
    private AccessContext _bulk;
    private AccessContext _string;
    private AccessContext _wstring;
    private Pa _root;
    private byte[] _buffer = null!;
    private int _next;

    [GlobalSetup]
    public void Setup()
    {
        _driver = new ArrayDriver(megabytes: 96);
        _driver.Map(DataVa, 2 * Megabyte);
        _driver.Map(ColdVa, (ulong)ColdPages * 4096);
        _core = new VmiCore(_driver) { PagingMode = Vmi.Core.Arch.Amd64.PagingMode.Ia32e };
        _root = new Pa(_driver.Root);
        _u64 = AccessContext.Paging(new Va(DataVa + 0x128), _root);
        _bulk = AccessContext.Paging(new Va(DataVa + Megabyte), _root);
        _string = AccessContext.Paging(new Va(DataVa + 0x2000 + 40), _root);
        _wstring = AccessContext.Paging(new Va(DataVa + 0x3000 - 100), _root); // crosses a page
        _core.Write(_string, [.. Encoding.UTF8.GetBytes(@"\SystemRoot\System32\ntoskrnl.exe"), 0]);
        _core.Write(_wstring, [.. Encoding.Unicode.GetBytes(@"C:\Windows\System32\drivers\etc\hosts"), 0, 0]);
        _buffer = new byte[Megabyte];

        // Warm both caches for the warm paths, and the page cache with every table of the cold range.
        _core.ReadU64(_u64);
        _core.Read(_bulk, _buffer);
        for (int i = 0; i < ColdPages; i++)
        {
            _core.TryTranslateAddress(new AddressContext(new Va(ColdVa + ((ulong)i << 12)), _root));
        }
    }

    [GlobalCleanup]
    public void Cleanup() => _core.Dispose();

    /// <summary>ReadU64 at a VA whose translation and page are both cached.</summary>
    [Benchmark]
    public ulong WarmReadU64() => _core.ReadU64(_u64);

    /// <summary>A 4-level translation that misses the V2P cache (the walk's tables are in the page cache).</summary>
    [Benchmark]
    public Pa ColdTranslate4Level()
    {
        int i = _next;
        _next = i + 1 == ColdPages ? 0 : i + 1;
        return _core.TryTranslateAddress(new AddressContext(new Va(ColdVa + ((ulong)i << 12)), _root)).Pa;
    }

    /// <summary>1 MiB read at a VA (256 pages, caches warm). Throughput = 1 MiB / time.</summary>
    [Benchmark]
    public void VirtualRead1MiB() => _core.Read(_bulk, _buffer);

    /// <summary>A 34-byte UTF-8 string inside one page.</summary>
    [Benchmark]
    public string ReadString() => _core.ReadString(_string);

    /// <summary>A 37-character UTF-16 string that crosses a page boundary.</summary>
    [Benchmark]
    public string ReadWStringAcrossPages() => _core.ReadWString(_wstring);
}
