using System.Globalization;
using System.Runtime.InteropServices;
using Vmi.Core;

namespace Vmi.Benchmarks;

/// <summary>
/// A second opinion for busy machines: the same operations as <see cref="CoreBenchmarks"/>, timed in the
/// thread's own CPU time (CLOCK_THREAD_CPUTIME_ID), best of 15 rounds. Time the thread spends descheduled
/// while other processes run is not counted (their effect on the caches still is).
/// Run: dotnet run -c Release --project bench/Vmi.Benchmarks -- --cpu-time
/// </summary>
internal static partial class CpuTimeHarness
{
    public static void Run()
    {
        var b = new CoreBenchmarks();
        b.Setup();
        try
        {
            ulong sink = 0;
            Report("WarmReadU64", 2_000_000, n => { for (int i = 0; i < n; i++) { sink += b.WarmReadU64(); } });
            Report("ColdTranslate4Level", 1_000_000, n => { for (int i = 0; i < n; i++) { sink += b.ColdTranslate4Level().Value; } });
            Report("Walk4LevelUncached", 1_000_000, n => { for (int i = 0; i < n; i++) { sink += b.Walk4LevelUncached().Value; } });
            double read = Report("VirtualRead1MiB", 300, n => { for (int i = 0; i < n; i++) { b.VirtualRead1MiB(); } });
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{"  = throughput",-24} {(1 << 20) / read,10:F2} GB/s"));
            Report("ReadString", 1_000_000, n => { for (int i = 0; i < n; i++) { sink += (ulong)b.ReadString().Length; } });
            Report("ReadWStringAcrossPages", 1_000_000, n => { for (int i = 0; i < n; i++) { sink += (ulong)b.ReadWStringAcrossPages().Length; } });
            GC.KeepAlive(sink);
        }
        finally
        {
            b.Cleanup();
        }
    }

    private static double Report(string name, int n, Action<int> body)
    {
        body(n / 10); // warm up and let the JIT tier up
        double best = double.MaxValue;
        for (int round = 0; round < 15; round++)
        {
            long t0 = ThreadCpuNanoseconds();
            body(n);
            best = Math.Min(best, (double)(ThreadCpuNanoseconds() - t0) / n);
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name,-24} {best,10:F2} ns"));
        return best;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    private const int ClockThreadCpuTimeId = 3;

    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int ClockGetTime(int clock, out Timespec time);

    private static long ThreadCpuNanoseconds()
    {
        if (ClockGetTime(ClockThreadCpuTimeId, out Timespec t) != 0)
        {
            throw new InvalidOperationException("clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed: this harness needs Linux.");
        }

        return (t.Seconds * 1_000_000_000) + t.Nanoseconds;
    }
}
