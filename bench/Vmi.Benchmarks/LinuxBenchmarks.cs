using BenchmarkDotNet.Attributes;
using Vmi.Core;
using Vmi.Dump;
using Vmi.Mock;
using Vmi.Mock.Linux;
using Vmi.Os.Linux;

namespace Vmi.Benchmarks;

/// <summary>
/// Linux awareness (src/Os/Linux): kallsyms + BTF recovery from a cold session (a new engine over the image each
/// time: empty page and translation caches), and a process listing on a warm one.
/// The real guest is tests/guest/build-guest.sh's kaslr guest: VMI_GUEST_DIR (default tests/data/generated/guest);
/// the real-guest benchmarks return at once (and say so) when it is absent.
/// Run: dotnet run -c Release --project bench/Vmi.Benchmarks -- --filter '*LinuxBenchmarks*'
/// </summary>
[MemoryDiagnoser]
public class LinuxBenchmarks
{
    private string? _elfPath;
    private MemoryImage? _image;
    private VmiCore? _warmReal;
    private LinuxKernel? _warmRealKernel;
    private VmiCore? _warmMock;
    private LinuxKernel? _warmMockKernel;

    [GlobalSetup]
    public void Setup()
    {
        string dir = Environment.GetEnvironmentVariable("VMI_GUEST_DIR") ?? Path.Combine(RepoRoot(), "tests", "data", "generated", "guest");
        string elf = Path.Combine(dir, "kaslr", "guest.elf");
        if (File.Exists(elf))
        {
            _elfPath = elf;
            _image = MemoryImage.Open(elf);
            _warmReal = new VmiCore(_image);
            _warmRealKernel = LinuxKernel.Open(new CoreGuestMemory(_warmReal, _image.Vmcoreinfo));
            Console.WriteLine($"// real guest: {elf}: {_warmRealKernel.GetProcesses().Count()} tasks, {_warmRealKernel.Symbols.Count} symbols");
        }
        else
        {
            Console.WriteLine($"// no real guest at {elf}: the RealGuest benchmarks measure nothing (build one with tests/guest/build-guest.sh)");
        }

        // the demo guest with 100 tasks: its six, then kernel workers
        var tasks = DemoLinuxLayout.Tasks.Concat(Enumerable.Range(0, 94).Select(i =>
            new DemoTask(2000 + i, 2, $"kworker/0:{i}", $"kworker/0:{i}", "I", 0, 90_000_000, null, null))).ToList();
        _warmMock = new VmiCore(DemoGuest.Create(tasks));
        _warmMockKernel = LinuxKernel.Open(new CoreGuestMemory(_warmMock));
        _ = _warmMockKernel.GetProcesses().Count();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _warmReal?.Dispose();
        _image?.Dispose();
        _warmMock?.Dispose();
    }

    /// <summary>Open the real guest's ELF image, find the kernel, decode ~94,000 kallsyms entries and parse the BTF blob.</summary>
    [Benchmark]
    public int ColdRecovery_RealGuestElf()
    {
        if (_elfPath is null)
        {
            return 0;
        }

        using MemoryImage image = MemoryImage.Open(_elfPath);
        using var core = new VmiCore(image);
        LinuxKernel k = LinuxKernel.Open(new CoreGuestMemory(core, image.Vmcoreinfo));
        return k.Symbols.Count + k.Types!.Count;
    }

    /// <summary>Every task of the real guest (48), warm caches.</summary>
    [Benchmark]
    public int ListProcesses_RealGuest_Warm() => _warmRealKernel?.GetProcesses().Count() ?? 0;

    /// <summary>The real guest's 5 modules, warm: the modules list, plus the btf_modules list for HasBtf/BtfTypeCount (no BTF read).</summary>
    [Benchmark]
    public int ListModules_RealGuest_Warm() => _warmRealKernel?.GetModules().Count() ?? 0;

    /// <summary>Every module's split BTF of the real guest read from memory and parsed on the kernel's BTF (what ModuleTypes does once per module), warm caches.</summary>
    [Benchmark]
    public int ModuleBtf_ReadAndParseAll_RealGuest_Warm()
    {
        if (_warmRealKernel is null)
        {
            return 0;
        }

        var kernelTypes = (BtfTypes)_warmRealKernel.Types!;
        int types = 0;
        foreach (LinuxModuleBtf m in _warmRealKernel.GetModuleBtf())
        {
            types += BtfTypes.ParseSplit(_warmRealKernel.ReadModuleBtf(m), kernelTypes).Count;
        }

        return types;
    }

    /// <summary>100 tasks of the demo guest, warm caches, command lines included.</summary>
    [Benchmark]
    public int List100Processes_Mock_Warm() => _warmMockKernel!.GetProcesses().Count();

    /// <summary>The demo guest from scratch: build it, find the kernel, decode its kallsyms and BTF.</summary>
    [Benchmark]
    public int ColdRecovery_Mock()
    {
        using var core = new VmiCore(DemoGuest.Create());
        return LinuxKernel.Open(new CoreGuestMemory(core)).Symbols.Count;
    }

    private static string RepoRoot()
    {
        for (string? d = AppContext.BaseDirectory; d is not null; d = Path.GetDirectoryName(d))
        {
            if (File.Exists(Path.Combine(d, "tests", "guest", "build-guest.sh")))
            {
                return d;
            }
        }

        return Directory.GetCurrentDirectory();
    }
}
