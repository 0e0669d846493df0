using System.Buffers.Binary;
using System.Management.Automation;
using Vmi.Mock;

namespace Vmi.PowerShell.Tests;

/// <summary>
/// Issue 10: an ELF core whose p_memsz far exceeds its p_filesz declares memory it does not store (up to 4 PiB of
/// zeros); Find-VmiMemory -Physical over it would have taken days. Without -Length the search stops where the stored
/// memory ends, with a warning naming what it skipped.
/// </summary>
public sealed class ZeroFillSearchTests : MockSessionTest, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vmi-zerofill-").FullName;

    void IDisposable.Dispose()
    {
        Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>Saves the demo guest as an ELF core and makes its last PT_LOAD declare <paramref name="extra"/> bytes more than it stores.</summary>
    private string ElfWithZeroFill(ulong extra, out ulong storedEnd)
    {
        string path = Path.Combine(_dir, "guest.elf");
        Host.RunClean($"Save-VmiMemory '{path}' | Out-Null");
        byte[] b = File.ReadAllBytes(path);
        ulong phoff = BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(32));
        int phnum = BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(56));
        int last = -1;
        for (int i = 0; i < phnum; i++)
        {
            int at = (int)phoff + (i * 56);
            if (BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(at)) == 1 && (last < 0 || BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(at + 24)) > BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(last + 24))))
            {
                last = at; // the PT_LOAD with the highest physical address
            }
        }

        ulong paddr = BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(last + 24));
        ulong filesz = BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(last + 32));
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(last + 40), filesz + extra);
        File.WriteAllBytes(path, b);
        storedEnd = paddr + filesz;
        return path;
    }

    [Fact]
    public void A_physical_search_without_a_length_stops_at_the_stored_memory_and_says_what_it_skipped()
    {
        const ulong Extra = 1UL << 30; // 1 GiB declared, not stored (enough to tell; the finding had petabytes)
        string path = ElfWithZeroFill(Extra, out ulong storedEnd);
        PSObject[] found = Host.RunClean(
            $"$i = Connect-VmiDomain -Path '{path}'; " +
            $"Find-VmiMemory -Physical -String '{DemoGuestLayout.AsciiString}' -Session $i -WarningVariable w -WarningAction SilentlyContinue; " +
            "$global:warnings = @($w)").ToArray();
        Assert.NotEmpty(found); // the stored memory was searched
        string warning = Assert.Single(Host.Run("$global:warnings | ForEach-Object { $_.Message }")).ToString();
        Assert.Contains($"stops at 0x{storedEnd:x}", warning, StringComparison.Ordinal);
        Assert.Contains($"(0x{Extra:x} bytes)", warning, StringComparison.Ordinal);
    }
}
