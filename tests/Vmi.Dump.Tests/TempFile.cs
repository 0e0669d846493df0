namespace Vmi.Dump.Tests;

internal sealed class TempFile : IDisposable
{
    private static int s_counter;

    public TempFile(byte[] bytes, string suffix = ".img")
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"vmi-{Environment.ProcessId}-{Interlocked.Increment(ref s_counter)}{suffix}");
        File.WriteAllBytes(Path, bytes);
    }

    public string Path { get; }

    public void Dispose() => File.Delete(Path);
}
