using Vmi.Tests.Guest;
using System.Diagnostics;
using System.Globalization;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;
using Vmi.Dump;

namespace Vmi.Dump.Tests;

/// <summary>One QEMU answer: a virtual address, its physical address (null: QEMU says unmapped) and the 32 bytes there.</summary>
public sealed record QemuAnswer(ulong Va, ulong? Gpa, byte[] Bytes);

/// <summary>A real Linux guest booted under QEMU, its images and QEMU's own answers (tests/guest/build-guest.sh).</summary>
public sealed class GuestData
{
    public GuestData(string variant, string directory)
    {
        Variant = variant;
        Directory = directory;
        var answers = new List<QemuAnswer>();
        foreach (string line in File.ReadLines(Path.Combine(directory, "answers.txt")))
        {
            string[] f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length == 0 || f[0] == "#")
            {
                continue;
            }

            switch (f[0])
            {
                case "cr3":
                    Cr3 = Hex(f[1]);
                    break;
                case "cr4":
                    Cr4 = Hex(f[1]);
                    break;
                case "va" when f[2] == "unmapped":
                    answers.Add(new QemuAnswer(Hex(f[1]), null, []));
                    break;
                case "va" when f[2] == "gpa" && f[4] == "x" && f.Length >= 9 && f[5].StartsWith("0x", StringComparison.Ordinal):
                    byte[] bytes = new byte[32];
                    for (int i = 0; i < 4; i++)
                    {
                        BitConverter.TryWriteBytes(bytes.AsSpan(i * 8), Hex(f[5 + i]));
                    }

                    answers.Add(new QemuAnswer(Hex(f[1]), Hex(f[3]), bytes));
                    break;
            }
        }

        Answers = answers;
        RegistersText = File.ReadAllText(Path.Combine(directory, "registers.txt"));
    }

    public string Variant { get; }

    public string Directory { get; }

    public ulong Cr3 { get; }

    public ulong Cr4 { get; }

    public IReadOnlyList<QemuAnswer> Answers { get; }

    public string RegistersText { get; }

    public PagingMode Mode => (Cr4 & Amd64.Cr4La57) != 0 ? PagingMode.Ia32eLa57 : PagingMode.Ia32e;

    public string Image(string name) => Path.Combine(Directory, name);

    /// <summary>A value from QEMU's "info registers" text, e.g. "RIP" or "IDT".</summary>
    public ulong Register(string name)
    {
        foreach (string line in RegistersText.Split('\n'))
        {
            string l = line.Replace(name + " =", name + "=", StringComparison.Ordinal); // "CS =0033 ..."
            int i = l.IndexOf(name + "=", StringComparison.Ordinal);
            while (i >= 0)
            {
                if (i == 0 || l[i - 1] == ' ')
                {
                    string rest = l[(i + name.Length + 1)..].TrimStart();
                    string token = rest.Split(' ')[0];
                    return ulong.Parse(token, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                }

                i = l.IndexOf(name + "=", i + 1, StringComparison.Ordinal);
            }
        }

        throw new KeyNotFoundException($"{name} is not in QEMU's register dump");
    }

    public static ulong Hex(string s) => ulong.Parse(s.StartsWith("0x", StringComparison.Ordinal) ? s[2..] : s, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
}

/// <summary>
/// Builds both guests once per clean checkout (tests/data/generated/guest/&lt;variant&gt;, git-ignored) and reuses them.
/// Missing QEMU, busybox or the kernel fails the tests with the package to install: they never silently skip.
/// </summary>
public sealed class RealGuestFixture : IDisposable
{
    private readonly Dictionary<string, GuestData> _guests = new();

    /// <summary>Images our writer derives from QEMU's (hundreds of MiB): made once per test run, deleted at its end.</summary>
    public string DerivedDirectory { get; } = Path.Combine(Path.GetTempPath(), $"vmi-dump-tests-{Environment.ProcessId}");

    public void Dispose()
    {
        if (Directory.Exists(DerivedDirectory))
        {
            Directory.Delete(DerivedDirectory, recursive: true);
        }
    }

    public GuestData Get(string variant)
    {
        lock (_guests)
        {
            if (!_guests.TryGetValue(variant, out GuestData? g))
            {
                g = Build(variant);
                _guests[variant] = g;
            }

            return g;
        }
    }

    public static string RepositoryRoot => GuestBuild.RepositoryRoot;

    private static GuestData Build(string variant) => new(variant, GuestBuild.Directory(variant, TimeSpan.FromMinutes(10)));
}

[CollectionDefinition("RealGuest")]
public sealed class RealGuestCollection : ICollectionFixture<RealGuestFixture>
{
}
