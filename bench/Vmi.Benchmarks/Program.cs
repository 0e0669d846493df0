using BenchmarkDotNet.Running;

namespace Vmi.Benchmarks;

internal static class Program
{
    private static void Main(string[] args)
    {
        if (args is ["--peer", ..])
        {
            Environment.Exit(PeerHarness.Run(args[1..]));
        }

        if (args is ["--cpu-time"])
        {
            CpuTimeHarness.Run();
            return;
        }

        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
    }
}
