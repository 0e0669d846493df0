using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Vmi.Qemu.Tests;

/// <summary>
/// The tests' Debian guest booted under QEMU TCG (tests/guest/live-guest.sh) with QMP and its RAM in a shared file,
/// kept running for one collection of tests. It prints its own kallsyms lines to the serial console, then loops on
/// nanosleep printing "VMI-TICK n".
/// </summary>
public abstract partial class LiveGuest : IDisposable
{
    private readonly Process? _qemu;

    protected LiveGuest(string variant)
    {
        Variant = variant;
        string? qemu = FindOnPath("qemu-system-x86_64");
        if (qemu is null)
        {
            // Not a skip: deps.sh installs QEMU, so a machine that runs the suite without it is misconfigured.
            throw new InvalidOperationException("qemu-system-x86_64 is missing, so the live QEMU driver tests cannot run: run tests/deps.sh as root (apt-get install qemu-system-x86).");
        }

        // VMI_QEMU_LIVE_<VARIANT>: a guest already started with live-guest.sh (for a quick edit-test loop); else boot one.
        string? running = Environment.GetEnvironmentVariable("VMI_QEMU_LIVE_" + variant.ToUpperInvariant());
        if (running is not null)
        {
            WorkDir = running;
            _qemu = null;
        }
        else
        {
            _qemu = Start(variant, out string dir);
            WorkDir = dir;
        }

        DateTime deadline = DateTime.UtcNow + TimeSpan.FromMinutes(20); // hang guard: TCG boots in ~1 min quiet; the LA57 guest passed 10 at load 50
        while (!SerialText().Contains("VMI-GUEST-UP", StringComparison.Ordinal))
        {
            if (_qemu is { HasExited: true })
            {
                throw new InvalidOperationException($"QEMU exited ({_qemu.ExitCode}) before the guest came up: {_qemu.StandardError.ReadToEnd()} serial: {SerialText()}");
            }

            if (DateTime.UtcNow > deadline)
            {
                string tail = SerialText(); // before Dispose removes the work folder with the log
                Dispose();
                throw new TimeoutException($"the {variant} guest did not come up in 20 minutes; serial: {tail}");
            }

            Thread.Sleep(500);
        }

        string serial = SerialText();
        foreach (Match m in KfunLine().Matches(serial))
        {
            Functions[m.Groups[1].Value] = ulong.Parse(m.Groups[2].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        }

        Symbols = [.. KsymLine().Matches(serial).Select(m => ulong.Parse(m.Groups[1].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture)).Distinct()];
        La57 = serial.Contains("la57=1", StringComparison.Ordinal) || serial.Contains("la57=2", StringComparison.Ordinal);
    }

    private static Process Start(string variant, out string workDir)
    {
        string root = RepoRoot();
        string WorkDir;
        WorkDir = Path.Combine(Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath(), $"vmi-live-{variant}-{Environment.ProcessId}");
        Directory.CreateDirectory(WorkDir);
        var psi = new ProcessStartInfo("bash", [Path.Combine(root, "tests/guest/live-guest.sh"), WorkDir, variant])
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        };
        workDir = WorkDir;
        return Process.Start(psi) ?? throw new InvalidOperationException("could not start live-guest.sh");
    }

    public string Variant { get; }

    public string WorkDir { get; }

    public string QmpPath => Path.Combine(WorkDir, "qmp.sock");

    public string SerialPath => Path.Combine(WorkDir, "serial.log");

    /// <summary>Kernel functions (and the variable jiffies) by name, from the guest's own /proc/kallsyms.</summary>
    public Dictionary<string, ulong> Functions { get; } = new(StringComparer.Ordinal);

    /// <summary>Every 97th kernel symbol of the guest's kallsyms.</summary>
    public IReadOnlyList<ulong> Symbols { get; }

    public bool La57 { get; }

    public string SerialText()
    {
        try
        {
            using var s = new FileStream(SerialPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var r = new StreamReader(s);
            return r.ReadToEnd().Replace("\r", "", StringComparison.Ordinal);
        }
        catch (FileNotFoundException)
        {
            return "";
        }
    }

    /// <summary>The last "VMI-TICK n" the guest printed.</summary>
    public int LastTick()
    {
        MatchCollection m = TickLine().Matches(SerialText());
        return m.Count == 0 ? 0 : int.Parse(m[^1].Groups[1].Value, CultureInfo.InvariantCulture);
    }

    public static string RepoRoot()
    {
        string? d = AppContext.BaseDirectory;
        while (d is not null && !File.Exists(Path.Combine(d, "tests/guest/live-guest.sh")))
        {
            d = Path.GetDirectoryName(d);
        }

        return d ?? throw new InvalidOperationException("cannot find the repository (tests/guest/live-guest.sh) above " + AppContext.BaseDirectory);
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(p => Path.Combine(p, name)).FirstOrDefault(File.Exists);

    [GeneratedRegex(@"^KFUN (\S+) ([0-9a-f]{16})$", RegexOptions.Multiline)]
    private static partial Regex KfunLine();

    [GeneratedRegex(@"^KSYM ([0-9a-f]{16})$", RegexOptions.Multiline)]
    private static partial Regex KsymLine();

    [GeneratedRegex(@"^VMI-TICK (\d+)$", RegexOptions.Multiline)]
    private static partial Regex TickLine();

    public void Dispose()
    {
        if (_qemu is null)
        {
            GC.SuppressFinalize(this);
            return; // a guest someone else started: theirs to stop
        }

        try
        {
            if (!_qemu.HasExited)
            {
                _qemu.Kill(entireProcessTree: true);
                _qemu.WaitForExit(30000);
            }
        }
        catch (InvalidOperationException)
        {
        }

        _qemu.Dispose();
        try
        {
            Directory.Delete(WorkDir, true);
        }
        catch (IOException)
        {
        }

        GC.SuppressFinalize(this);
    }
}

public sealed class FourLevelGuest() : LiveGuest("kaslr");

public sealed class FiveLevelGuest() : LiveGuest("la57");

[CollectionDefinition("live-4level")]
public sealed class FourLevelCollection : ICollectionFixture<FourLevelGuest>;

[CollectionDefinition("live-5level")]
public sealed class FiveLevelCollection : ICollectionFixture<FiveLevelGuest>;
