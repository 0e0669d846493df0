using System.Management.Automation;
using Vmi.Core;
using Vmi.Dump;

namespace Vmi.PowerShell.Commands;

/// <summary>
/// Acquires the session's guest memory (Xen, an image, the mock) into an image file: ELF core (QEMU-compatible,
/// with the registers in its notes), raw or LiME. Streamed page by page with progress in bytes; the guest is paused
/// only with -Pause. The file appears only when complete: it is written under a temporary name that only this
/// command created and then renamed; a failure or Ctrl+C removes only that temporary file. The target must be a
/// regular file: a device node, pipe or directory is refused, never replaced.
/// </summary>
[Cmdlet(VerbsData.Save, "VmiMemory", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(VmiSavedImage))]
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

    /// <summary>Overwrite an existing regular file.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        string path = GetUnresolvedProviderPathFromPSPath(Path);
        string? problem = ImagePaths.SaveProblem(path, Force, out bool exists);
        if (problem is not null)
        {
            WriteVmiError(new IOException(problem), path);
            return;
        }

        if (!ShouldProcess(path, exists ? $"Overwrite with the memory of {session.Name} ({Format})" : $"Save the memory of {session.Name} ({Format})"))
        {
            return;
        }

        var progress = new ProgressReporter(this, 7, $"Save-VmiMemory {path}");
        try
        {
            ImageFileResult result = session.Guest.Acquire((core, token) => ImageFileWriter.Write(core, path, Format, Force, new Adapter(progress), token), Pause, StopToken);
            progress.Complete();
            WriteObject(new VmiSavedImage(session, result));
        }
        catch (Exception e) when (IsItemError(e) || e is IOException or UnauthorizedAccessException)
        {
            WriteVmiError(e, path);
        }
        catch (Exception e) when (e is OperationCanceledException or GuestClosedException && !StopToken.IsCancellationRequested && session.Guest.Closing.IsCancellationRequested)
        {
            string message = string.Format(System.Globalization.CultureInfo.CurrentCulture, Messages.SaveCancelledByDisconnect, session.Name, path);
            WriteError(new ErrorRecord(new OperationCanceledException(message, e), VmiErrorIds.SessionClosed, ErrorCategory.OperationStopped, path));
        }
    }

    /// <summary>Progress in bytes of guest memory.</summary>
    private sealed class Adapter(IProgress<(ulong Done, ulong Total)> inner) : IProgress<ImageWriteProgress>
    {
        public void Report(ImageWriteProgress value) => inner.Report(((ulong)value.BytesData, (ulong)value.BytesTotal));
    }
}
