using System.Management.Automation;
using Vmi.Core.Arch.Amd64;
using Vmi.Mock;

namespace Vmi.PowerShell.Tests;

/// <summary>Save-VmiMemory and Connect-VmiDomain -Path through the real PowerShell engine.</summary>
public sealed class ImageCmdletTests : MockSessionTest, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vmi-image-cmdlets-").FullName;

    private string File(string name) => System.IO.Path.Combine(_dir, name);

    [Theory]
    [InlineData("ElfCore", "ELF core")]
    [InlineData("Lime", "LiME")]
    [InlineData("Raw", "raw image")]
    public void Saved_image_reopens_by_content_with_the_same_memory(string format, string driver)
    {
        string path = File("guest.img"); // the name says nothing about the format
        VmiSavedImage saved = Host.Get<VmiSavedImage>($"Save-VmiMemory '{path}' -Format {format}");
        Assert.Equal(path, saved.Path);
        Assert.Equal(format, saved.Format.ToString());
        Assert.Equal(new FileInfo(path).Length, saved.Bytes);
        Assert.True(saved.DataBytes > 0 && saved.DataBytes % 4096 == 0);
        Assert.True(saved.Ranges > 0);
        Assert.Equal([System.IO.Path.GetFileName(path)], Directory.GetFiles(_dir).Select(System.IO.Path.GetFileName)); // no temporary file left
        Registers mockRegs = Session.Core.GetRegisters(new Vmi.Core.VcpuId(0));

        // ELF carries the registers; LiME and raw take -Cr3.
        string cr3 = format == "ElfCore" ? string.Empty : $" -Cr3 {Hex(mockRegs.Cr3)}";
        VmiSession image = Host.Get<VmiSession>($"$i = Connect-VmiDomain -Path '{path}'{cr3}; $i");
        Assert.Equal(driver, image.Driver);
        Assert.Equal(DemoGuestLayout.AsciiString, Host.Get<string>($"Read-VmiMemory {Hex(DemoGuestLayout.AsciiStringVa)} -As String -Session $i"));
        if (format == "ElfCore")
        {
            Assert.Equal(DemoGuestLayout.VcpuCount, image.VcpuCount);
            for (int v = 0; v < DemoGuestLayout.VcpuCount; v++)
            {
                Registers expected = Session.Core.GetRegisters(new Vmi.Core.VcpuId((ushort)v));
                Registers actual = image.Core.GetRegisters(new Vmi.Core.VcpuId((ushort)v));
                Assert.Equal(expected.Cr3, actual.Cr3);
                Assert.Equal(expected.Rip, actual.Rip);
                Assert.Equal(expected.Rsp, actual.Rsp);
            }
        }
    }

    [Fact]
    public void Cr3_overrides_the_images_own()
    {
        string path = File("guest.elf");
        Host.RunClean($"Save-VmiMemory '{path}' | Out-Null");
        VmiSession image = Host.Get<VmiSession>($"Connect-VmiDomain -Path '{path}' -Cr3 0x5000");
        Assert.Equal(0x5000UL, image.Core.GetRegisters(new Vmi.Core.VcpuId(0)).Cr3);
    }

    [Fact]
    public void An_existing_file_needs_Force_and_WhatIf_writes_nothing()
    {
        string path = File("exists.elf");
        System.IO.File.WriteAllText(path, "keep me");
        ErrorRecord e = Host.RunFailing($"Save-VmiMemory '{path}'");
        Assert.Contains("-Force", e.Exception.Message, StringComparison.Ordinal);
        Assert.Equal("keep me", System.IO.File.ReadAllText(path));

        Host.RunClean($"Save-VmiMemory '{path}' -Force -WhatIf");
        Assert.Equal("keep me", System.IO.File.ReadAllText(path));
        Assert.False(System.IO.File.Exists(File("new.elf")));
        Host.RunClean($"Save-VmiMemory '{File("new.elf")}' -WhatIf");
        Assert.False(System.IO.File.Exists(File("new.elf")));

        Host.RunClean($"Save-VmiMemory '{path}' -Force | Out-Null");
        Assert.NotEqual("keep me", System.IO.File.ReadAllText(path)[..7]);
    }

    [Fact]
    public void Save_never_touches_a_partial_file_it_did_not_create()
    {
        // Issue 10: Save once deleted <Path>.partial, whoever owned it (a user's image, a concurrent save in progress).
        string path = File("guest.elf");
        string other = path + ".partial";
        System.IO.File.WriteAllText(other, "someone else's");
        Host.RunClean($"Save-VmiMemory '{path}' | Out-Null");
        Assert.Equal("someone else's", System.IO.File.ReadAllText(other));
        Host.RunFailing($"Save-VmiMemory '{path}'"); // fails: exists without -Force
        Assert.Equal("someone else's", System.IO.File.ReadAllText(other));
        Host.RunFailing($"Save-VmiMemory '{File("no-such-dir")}/x.elf'"); // fails in the middle of nowhere
        Assert.Equal("someone else's", System.IO.File.ReadAllText(other));
    }

    [Fact]
    public void Save_refuses_a_target_that_is_not_a_regular_file_even_with_Force()
    {
        // Issue 10: -Force once renamed a regular file over a device node (as root: /dev/null itself). A FIFO stands in
        // for the device here (mkfifo needs no privilege); the check is the same: only a regular file is replaced.
        string fifo = File("pipe");
        using (var mk = System.Diagnostics.Process.Start("mkfifo", [fifo]))
        {
            mk.WaitForExit();
            Assert.Equal(0, mk.ExitCode);
        }

        ErrorRecord e = Host.RunFailing($"Save-VmiMemory '{fifo}' -Force");
        Assert.Contains("named pipe (FIFO), not a regular file", e.Exception.Message, StringComparison.Ordinal);
        using (var stat = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("stat", ["-c", "%F", fifo]) { RedirectStandardOutput = true })!)
        {
            Assert.Equal("fifo", stat.StandardOutput.ReadToEnd().Trim());
        }

        ErrorRecord d = Host.RunFailing($"Save-VmiMemory '{_dir}' -Force");
        Assert.Contains("is a directory", d.Exception.Message, StringComparison.Ordinal);
        Assert.Equal(["pipe"], Directory.GetFileSystemEntries(_dir).Select(System.IO.Path.GetFileName)); // nothing left behind
    }

    [Fact]
    public void Pause_pauses_only_when_asked_and_always_resumes()
    {
        // The call log keeps the latest calls: the resume comes after every page was read.
        Host.RunClean($"Save-VmiMemory '{File("a.lime")}' -Format Lime | Out-Null");
        Assert.DoesNotContain(Guest.Calls, c => c.Operation is MockOperation.Pause or MockOperation.Resume);
        Host.RunClean($"Save-VmiMemory '{File("b.lime")}' -Format Lime -Pause | Out-Null");
        Assert.Equal(MockOperation.Resume, Guest.Calls[^1].Operation);
        Assert.Equal(0, Guest.PauseCount);
    }

    [Fact]
    public void A_malformed_image_is_a_format_error_naming_file_and_offset()
    {
        string path = File("bad.elf");
        byte[] elf = new byte[64];
        elf[0] = 0x7f;
        "ELF"u8.CopyTo(elf.AsSpan(1));
        elf[4] = 2;
        elf[5] = 1;
        elf[16] = 4; // ET_CORE
        elf[18] = 62;
        elf[32] = 64; // e_phoff
        elf[54] = 56; // e_phentsize
        elf[56] = 3; // three program headers, none present: truncated
        System.IO.File.WriteAllBytes(path, elf);
        ErrorRecord e = Host.RunFailing($"Connect-VmiDomain -Path '{path}'");
        Assert.StartsWith(VmiErrorIds.FormatError + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Equal(ErrorCategory.InvalidData, e.CategoryInfo.Category);
        Assert.Contains(path, e.Exception.Message, StringComparison.Ordinal);
        Assert.Contains("offset", e.Exception.Message, StringComparison.Ordinal);

        ErrorRecord missing = Host.RunFailing($"Connect-VmiDomain -Path '{File("nothing-here")}'");
        Assert.Contains("does not exist", missing.Exception.Message, StringComparison.Ordinal);
    }

    void IDisposable.Dispose()
    {
        Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}
