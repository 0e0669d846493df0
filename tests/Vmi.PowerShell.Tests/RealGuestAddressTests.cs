using System.Globalization;
using System.Management.Automation;
using Vmi.Tests.Guest;

namespace Vmi.PowerShell.Tests;

/// <summary>
/// Typed addresses on the real QEMU guests (tests/guest/build-guest.sh), checked against QEMU's own monitor: for a fixed
/// sample of its answers (gva2gpa, and x /4gx at the virtual address), Resolve-VmiAddress gives QEMU's physical address,
/// and that address typed as a [Vmi.Core.Pa] reads, without -Physical, the words QEMU read at the virtual address.
/// </summary>
public sealed class RealGuestAddressTests
{
    [Theory]
    [InlineData("kaslr")]
    [InlineData("la57")] // five-level paging
    [InlineData("pti")]
    public void A_pa_from_a_translation_reads_what_qemu_read_at_the_virtual_address(string variant)
    {
        string dir = GuestBuild.Directory(variant, TimeSpan.FromMinutes(20));
        string[] lines = File.ReadAllLines(Path.Combine(dir, "answers.txt"));
        ulong cr3 = Hex(lines.Single(l => l.StartsWith("cr3 ", StringComparison.Ordinal)).Split(' ')[1]);
        string[] mapped = lines.Where(l => l.StartsWith("va ", StringComparison.Ordinal) && l.Contains(" gpa ", StringComparison.Ordinal)).ToArray();
        int step = Math.Max(1, mapped.Length / 64); // a fixed sample: about 64 of the mapped addresses QEMU answered for, evenly spread
        (ulong Va, ulong Gpa, ulong[] X)[] samples = mapped.Where((_, i) => i % step == 0).Select(Parse).ToArray();
        Assert.True(samples.Length >= 30, $"{variant}: only {samples.Length} mapped addresses in answers.txt");
        Assert.Contains(samples, s => s.X.Any(x => x != 0));

        using var host = new PowerShellHost();
        string root = $"([Vmi.Core.Pa]::new(0x{cr3:x}u))";
        host.RunClean($"$null = Connect-VmiDomain -LiteralPath '{Path.Combine(dir, "guest.elf")}' -Cr3 {root}");
        foreach ((ulong va, ulong gpa, ulong[] x) in samples)
        {
            Assert.Equal(gpa, host.Get<ulong>($"(Resolve-VmiAddress 0x{va:x}u -Cr3 {root}).Pa"));
            ulong[] read = host.RunClean($"Read-VmiMemory ([Vmi.Core.Pa]::new(0x{gpa:x}u)) -As UInt64 -Count 4").Select(o => (ulong)o.BaseObject).ToArray();
            Assert.Equal(x, read);
        }

        ErrorRecord e = host.RunFailing($"Read-VmiMemory ([Vmi.Core.Va]::new(0x{samples[0].Va:x}u)) -Physical -Length 8");
        Assert.StartsWith(VmiErrorIds.AddressKindMismatch + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
    }

    private static (ulong Va, ulong Gpa, ulong[] X) Parse(string line)
    {
        // va 0x... gpa 0x... x 0x... 0x... 0x... 0x...
        string[] f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return (Hex(f[1]), Hex(f[3]), f[5..9].Select(Hex).ToArray());
    }

    private static ulong Hex(string s) => ulong.Parse(s.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
}
