using System.Management.Automation;
using Vmi.Core;
using Vmi.Dump;

namespace Vmi.PowerShell.Commands;

/// <summary>
/// Acquires the session's guest memory (Xen, an image, the mock) into an image file: ELF core (QEMU-compatible,
/// with the registers in its notes), raw or LiME. Streamed page by page with progress; the guest is paused only
/// with -Pause. The file appears only when complete (written beside it, then renamed).
/// </summary>
[Cmdlet(VerbsData.Save, "VmiMemory", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(FileInfo))]
public sealed class SaveVmiMemoryCommand : VmiCmdlet
{
    /// <summary>The image file to write.</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = string.Empty;

    /// <summary>ElfCore (default), Raw or Lime.</summary>
    [Parameter]
    public ImageFormat Format { get; set; } = ImageFormat.ElfCore;

    /// <summary>Pause the guest while its memory is written (a consistent image of a live guest).</summary>
    [Parameter]
    public SwitchParameter Pause { get; set; }

    /// <summary>Overwrite an existing file.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        string path = GetUnresolvedProviderPathFromPSPath(Path);
        bool exists = File.Exists(path);
        if (exists && !Force)
        {
            WriteVmiError(new IOException($"'{path}' already exists: use -Force to overwrite it, or choose another path."), path);
            return;
        }

        if (!ShouldProcess(path, exists ? $"Overwrite with the memory of {session.Name} ({Format})" : $"Save the memory of {session.Name} ({Format})"))
        {
            return;
        }

        string partial = path + ".partial";
        var progress = new ProgressReporter(this, 7, $"Save-VmiMemory {path}");
        try
        {
            session.Guest.Exclusive(core =>
            {
                using VmiPauseGuard? guard = Pause ? core.PauseGuard() : null;
                using var file = new FileStream(partial, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
                ImageWriter.Write(core, file, Format, new Adapter(progress), StopToken);
                return 0;
            });
            File.Move(partial, path, overwrite: true);
            progress.Complete();
            WriteObject(new FileInfo(path));
        }
        catch (Exception e) when (IsItemError(e) || e is IOException or UnauthorizedAccessException)
        {
            TryDelete(partial);
            WriteVmiError(e, path);
        }
        catch
        {
            TryDelete(partial);
            throw;
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private sealed class Adapter(IProgress<(ulong Done, ulong Total)> inner) : IProgress<ImageWriteProgress>
    {
        public void Report(ImageWriteProgress value) => inner.Report((value.PagesDone, value.PagesTotal));
    }
}
