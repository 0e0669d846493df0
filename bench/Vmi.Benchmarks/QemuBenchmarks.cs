using System.Globalization;
using BenchmarkDotNet.Attributes;
using Vmi.Core;
using Vmi.Qemu;

namespace Vmi.Benchmarks;

/// <summary>
/// The live QEMU driver on a running guest (tests/guest/live-guest.sh): a warm 8-byte read through the page cache, a
/// 64 MiB physical read from the shared RAM file, and the event round trips (a vCPU stops in QEMU, the stop reaches
/// us, its registers are read, the event is handed to the handler and answered, the VM runs again): single-step, a
/// breakpoint on ktime_get (called constantly by the guest's timers), and a write watchpoint on jiffies (written on every tick).
/// Run: VMI_BENCH_QMP=/dev/shm/g/qmp.sock VMI_BENCH_BP=&lt;ktime_get address&gt; VMI_BENCH_WATCH=&lt;jiffies address&gt; dotnet run -c Release --project bench/Vmi.Benchmarks -- --filter '*QemuBenchmarks*' --job short
/// </summary>
[MemoryDiagnoser]
public class QemuBenchmarks
{
    private const int BulkBytes = 64 << 20;
    private QemuDriver? _driver;
    private VmiCore? _core;
    private byte[] _bulk = [];
    private ulong _bp;

    [GlobalSetup]
    public void Setup()
    {
        string qmp = Environment.GetEnvironmentVariable("VMI_BENCH_QMP")
            ?? throw new InvalidOperationException("Set VMI_BENCH_QMP to the QMP socket of a guest started with tests/guest/live-guest.sh.");
        _bp = ulong.Parse(Environment.GetEnvironmentVariable("VMI_BENCH_BP") ?? throw new InvalidOperationException("Set VMI_BENCH_BP to ktime_get's address (the guest prints KFUN lines on its serial console)."), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        _driver = QemuDriver.Connect(qmp);
        _core = new VmiCore(_driver);
        _bulk = new byte[BulkBytes];
        _core.ReadU64(AccessContext.Direct(new Pa(0x1000000)));
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _core?.Dispose();
    }

    [Benchmark(Description = "warm 8-byte physical read")]
    public ulong WarmRead() => _core!.ReadU64(AccessContext.Direct(new Pa(0x1000008)));

    [Benchmark(Description = "64 MiB physical read from shared RAM")]
    public void Read64MiB() => _core!.Read(AccessContext.Direct(new Pa(0x100000)), _bulk);

    [IterationSetup(Target = nameof(SinglestepRoundTrip))]
    public void StepOn() => _driver!.EnableMonitor(EventMonitor.Singlestep);

    [IterationCleanup(Target = nameof(SinglestepRoundTrip))]
    public void StepOff() => _driver!.DisableMonitor(EventMonitor.Singlestep);

    [Benchmark(Description = "single-step round trip (stop, registers, answer, step)")]
    public int SinglestepRoundTrip() => _driver!.WaitForEvents(TimeSpan.FromSeconds(30), 1, static _ => VmiEventResponse.Continue);

    private VmiBreakpoint? _set;

    [IterationSetup(Target = nameof(BreakpointRoundTrip))]
    public void BreakpointOn() => _set = _driver!.SetBreakpoint(new BreakpointRequest(new Va(_bp)));

    [IterationCleanup(Target = nameof(BreakpointRoundTrip))]
    public void BreakpointOff() => _driver!.RemoveBreakpoint(_set!.Id);

    [Benchmark(Description = "breakpoint round trip on ktime_get (hit, registers, answer, step over, continue)")]
    public int BreakpointRoundTrip() => _driver!.WaitForEvents(TimeSpan.FromSeconds(30), 1, static _ => VmiEventResponse.Continue);

    [IterationSetup(Target = nameof(WatchpointRoundTrip))]
    public void WatchpointOn()
    {
        ulong jiffies = ulong.Parse(Environment.GetEnvironmentVariable("VMI_BENCH_WATCH") ?? throw new InvalidOperationException("Set VMI_BENCH_WATCH to jiffies' address (the guest prints it in a KFUN line)."), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        _set = _driver!.SetBreakpoint(new BreakpointRequest(new Va(jiffies)) { Access = BreakpointAccess.Write, Length = 8 });
    }

    [IterationCleanup(Target = nameof(WatchpointRoundTrip))]
    public void WatchpointOff() => _driver!.RemoveBreakpoint(_set!.Id);

    [Benchmark(Description = "write watchpoint round trip on jiffies (hit after the write, registers, answer, continue)")]
    public int WatchpointRoundTrip() => _driver!.WaitForEvents(TimeSpan.FromSeconds(30), 1, static _ => VmiEventResponse.Continue);
}
