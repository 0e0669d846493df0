using Vmi.Tests.Guest;
using System.Diagnostics;
using System.Globalization;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;
using Vmi.Dump;

namespace Vmi.Os.Linux.Tests;

/// <summary>One line of the guest's own /proc/PID/stat.</summary>
public sealed record TruthTask(int Pid, string Comm, char State, int Ppid, ulong StartTicks, ulong ArgStart, ulong ArgEnd);

/// <summary>One line of the guest's own /proc/modules.</summary>
public sealed record TruthModule(string Name, ulong Size, ulong Base);

/// <summary>
/// What a real Linux guest printed about itself on its serial console, between the VMI-TRUTH-* markers of
/// tests/guest/build-guest.sh and live-guest.sh: /proc/kallsyms, /proc/modules and every /proc/PID/stat.
/// </summary>
public sealed class GuestTruth
{
    public GuestTruth(IEnumerable<string> serialLines)
    {
        var kallsyms = new List<(ulong, char, string)>();
        var moduleSymbols = new List<(ulong, char, string, string)>();
        var tasks = new List<TruthTask>();
        var modules = new List<TruthModule>();
        var btf = new List<(string, long, string)>();
        string? section = null;
        foreach (string raw in serialLines)
        {
            string line = raw.TrimEnd('\r');
            if (line.StartsWith("VMI-TRUTH-SELF ", StringComparison.Ordinal))
            {
                PrinterPid = int.Parse(line[15..], CultureInfo.InvariantCulture);
                continue;
            }

            if (line.StartsWith("VMI-TRUTH-", StringComparison.Ordinal) && line.EndsWith("-BEGIN", StringComparison.Ordinal))
            {
                section = line[10..^6];
                continue;
            }

            if (line.StartsWith("VMI-TRUTH-", StringComparison.Ordinal) && line.EndsWith("-END", StringComparison.Ordinal))
            {
                section = null;
                continue;
            }

            switch (section)
            {
                case "KALLSYMS":
                    string[] k = line.Split(' ', 3);
                    if (k.Length != 3)
                    {
                        break;
                    }

                    int tab = k[2].IndexOf('\t', StringComparison.Ordinal);
                    if (tab < 0)
                    {
                        kallsyms.Add((Hex(k[0]), k[1][0], k[2]));
                    }
                    else if (k[2][(tab + 1)..] is ['[', .. string module, ']'])
                    {
                        moduleSymbols.Add((Hex(k[0]), k[1][0], k[2][..tab], module));
                    }

                    break;
                case "MODULES":
                    string[] m = line.Split(' ');
                    modules.Add(new TruthModule(m[0], ulong.Parse(m[1], CultureInfo.InvariantCulture), Hex(m[5])));
                    break;
                case "BTF":
                    string[] b = line.Split(' ');
                    if (b.Length == 3)
                    {
                        btf.Add((b[0], long.Parse(b[1], CultureInfo.InvariantCulture), b[2]));
                    }

                    break;
                case "PS":
                    int open = line.IndexOf('(', StringComparison.Ordinal);
                    int close = line.LastIndexOf(')');
                    string[] f = line[(close + 2)..].Split(' ');
                    // f[0] is field 3 (state): field N is f[N - 3] (arg_start and arg_end are fields 48 and 49)
                    tasks.Add(new TruthTask(
                        int.Parse(line[..(open - 1)], CultureInfo.InvariantCulture), line[(open + 1)..close], f[0][0],
                        int.Parse(f[1], CultureInfo.InvariantCulture), ulong.Parse(f[19], CultureInfo.InvariantCulture),
                        ulong.Parse(f[45], CultureInfo.InvariantCulture), ulong.Parse(f[46], CultureInfo.InvariantCulture)));
                    break;
            }
        }

        Kallsyms = kallsyms;
        ModuleKallsyms = moduleSymbols;
        Tasks = tasks;
        Modules = modules;
        Btf = btf;
    }

    /// <summary>The guest's /proc/kallsyms: vmlinux symbols only (module symbols carry "[module]").</summary>
    public IReadOnlyList<(ulong Address, char Type, string Name)> Kallsyms { get; }

    /// <summary>The "[module]" lines of the guest's /proc/kallsyms.</summary>
    public IReadOnlyList<(ulong Address, char Type, string Name, string Module)> ModuleKallsyms { get; }

    public IReadOnlyList<TruthTask> Tasks { get; }

    public IReadOnlyList<TruthModule> Modules { get; }

    /// <summary>Every file of the guest's /sys/kernel/btf (vmlinux and each module's): its name, size and SHA-256 (live guests only).</summary>
    public IReadOnlyList<(string Name, long Size, string Sha256)> Btf { get; }

    /// <summary>The shell that printed the task list (gone by the time anyone reads the guest).</summary>
    public int PrinterPid { get; }

    public static ulong Hex(string s) => ulong.Parse(s.StartsWith("0x", StringComparison.Ordinal) ? s[2..] : s, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
}

/// <summary>A real Linux guest built by tests/guest/build-guest.sh: its images and what it printed about itself (<see cref="GuestTruth"/>).</summary>
public sealed class RealGuest
{
    public RealGuest(string variant, string directory)
    {
        Variant = variant;
        Directory = directory;
        Truth = new GuestTruth(File.ReadLines(Path.Combine(directory, "serial.log")));
        foreach (string line in File.ReadLines(Path.Combine(directory, "answers.txt")))
        {
            string[] f = line.Split(' ');
            if (f[0] == "cr3")
            {
                Cr3 = Hex(f[1]);
            }
            else if (f[0] == "cr4")
            {
                Cr4 = Hex(f[1]);
            }
        }
    }

    public GuestTruth Truth { get; }

    public string Variant { get; }

    public string Directory { get; }

    public IReadOnlyList<(ulong Address, char Type, string Name)> Kallsyms => Truth.Kallsyms;

    public IReadOnlyList<TruthTask> Tasks => Truth.Tasks;

    public IReadOnlyList<TruthModule> Modules => Truth.Modules;

    /// <summary>The shell that printed the task list (gone when the images were taken).</summary>
    public int PrinterPid => Truth.PrinterPid;

    public ulong Cr3 { get; }

    public ulong Cr4 { get; }

    public PagingMode Mode => (Cr4 & Amd64.Cr4La57) != 0 ? PagingMode.Ia32eLa57 : PagingMode.Ia32e;

    public MemoryImage Open(string format) => format switch
    {
        "elf" => MemoryImage.Open(Path.Combine(Directory, "guest.elf")),
        "kdump" => MemoryImage.Open(Path.Combine(Directory, "guest.kdump")),
        "raw" => MemoryImage.Open(Path.Combine(Directory, "guest.raw"), new MemoryImageOptions { Cr3 = Cr3, PagingMode = Mode }),
        _ => throw new ArgumentOutOfRangeException(nameof(format)),
    };

    public static ulong Hex(string s) => GuestTruth.Hex(s);
}

/// <summary>
/// Builds both guests once per clean checkout (or uses VMI_GUEST_DIR) with tests/guest/build-guest.sh, keyed by the
/// script's hash like the Dump tests. Missing QEMU, busybox or the kernel fails with the package to install.
/// </summary>
public sealed class RealGuestFixture
{
    private readonly Dictionary<string, RealGuest> _guests = new();

    public RealGuest Get(string variant)
    {
        lock (_guests)
        {
            if (!_guests.TryGetValue(variant, out RealGuest? g))
            {
                g = new RealGuest(variant, Build(variant));
                _guests[variant] = g;
            }

            return g;
        }
    }

    private static string Build(string variant) => GuestBuild.Directory(variant, TimeSpan.FromMinutes(20));
}

[CollectionDefinition("RealGuest")]
public sealed class RealGuestCollection : ICollectionFixture<RealGuestFixture>
{
}
