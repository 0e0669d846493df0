using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Vmi.Core;

namespace Vmi.Dump;

/// <summary>What an acquisition to a file produced.</summary>
/// <param name="Path">The image file (complete: it appeared only when fully written).</param>
/// <param name="Format">The format written.</param>
/// <param name="Bytes">The file's length (holes included: raw images keep unstored memory as holes).</param>
/// <param name="DataBytes">Bytes of guest memory stored (what was read and written).</param>
/// <param name="Ranges">Runs of physical memory stored.</param>
/// <param name="PagesUnreadable">Frames listed as readable that could not be read when written (zero-filled).</param>
/// <param name="Duration">How long the acquisition took.</param>
public sealed record ImageFileResult(string Path, ImageFormat Format, long Bytes, long DataBytes, int Ranges, ulong PagesUnreadable, TimeSpan Duration);

/// <summary>
/// Acquisition to a file, safely: written under a temporary name that only this call created (O_EXCL, random
/// suffix) beside the target and renamed over it only when complete; on any failure or cancellation only that
/// temporary file is removed, never a file someone else made. The target must be a regular file (or not exist):
/// a device node, pipe or directory is refused, never replaced. Temporary files still being written are tracked so
/// that a process ending on a signal can remove them (<see cref="DeleteFilesInProgress"/>).
/// </summary>
public static partial class ImageFileWriter
{
    private static readonly ConcurrentDictionary<string, byte> s_inProgress = new(StringComparer.Ordinal);

    /// <summary>The temporary files being written right now (for a signal handler that must not leave them behind).</summary>
    public static IReadOnlyCollection<string> FilesInProgress => s_inProgress.Keys.ToArray();

    /// <summary>Removes the temporary files of acquisitions still running (called when the process is ending).</summary>
    public static void DeleteFilesInProgress()
    {
        foreach (string p in s_inProgress.Keys)
        {
            TryDelete(p);
        }
    }

    /// <summary>Why <paramref name="path"/> cannot be written: null when it can (absent, or a regular file and <paramref name="overwrite"/>).</summary>
    public static string? CheckTarget(string path, bool overwrite)
    {
        string? kind = FileKind(path);
        if (kind is null)
        {
            return null;
        }

        if (kind != "regular file")
        {
            return $"'{path}' is a {kind}, not a regular file: an image is written only to a regular file, and nothing else is replaced. Choose a file path.";
        }

        return overwrite ? null : $"'{path}' already exists: allow overwriting it, or choose another path.";
    }

    /// <summary>Writes <paramref name="core"/>'s memory to <paramref name="path"/>; see the class remarks for the guarantees.</summary>
    public static ImageFileResult Write(VmiCore core, string path, ImageFormat format, bool overwrite, IProgress<ImageWriteProgress>? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(core);
        ArgumentException.ThrowIfNullOrEmpty(path);
        path = System.IO.Path.GetFullPath(path);
        if (CheckTarget(path, overwrite) is { } problem)
        {
            throw new IOException(problem);
        }

        string dir = System.IO.Path.GetDirectoryName(path)!;
        var clock = Stopwatch.StartNew();
        FileStream? file = null;
        string temp = string.Empty;
        for (int attempt = 0; file is null; attempt++)
        {
            temp = System.IO.Path.Combine(dir, $".{System.IO.Path.GetFileName(path)}.{Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(6)).ToLowerInvariant()}.partial");
            try
            {
                // CreateNew is O_CREAT|O_EXCL: the file is ours, or this throws.
                file = new FileStream(temp, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16);
            }
            catch (IOException) when (File.Exists(temp) && attempt < 8)
            {
            }
        }

        s_inProgress[temp] = 0;
        bool ok = false;
        ImageWriteProgress last = default;
        var tracker = new Progress(progress, p => last = p);
        try
        {
            using (file)
            {
                ImageWriter.Write(core, file, format, tracker, cancellationToken);
                file.Flush(flushToDisk: true);
            }

            // The target may have changed while we wrote: check again just before the rename.
            if (CheckTarget(path, overwrite) is { } nowProblem)
            {
                throw new IOException(nowProblem);
            }

            File.Move(temp, path, overwrite);
            ok = true;
        }
        finally
        {
            s_inProgress.TryRemove(temp, out _);
            if (!ok)
            {
                TryDelete(temp);
            }
        }

        return new ImageFileResult(path, format, new FileInfo(path).Length, last.BytesData, last.Ranges, last.PagesUnreadable, clock.Elapsed);
    }

    private sealed class Progress(IProgress<ImageWriteProgress>? inner, Action<ImageWriteProgress> record) : IProgress<ImageWriteProgress>
    {
        public void Report(ImageWriteProgress value)
        {
            record(value);
            inner?.Report(value);
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

    /// <summary>What is at <paramref name="path"/> (following links): null when nothing.</summary>
    internal static string? FileKind(string path)
    {
        if (Directory.Exists(path))
        {
            return "directory";
        }

        if (!File.Exists(path))
        {
            return null;
        }

        uint mode = StatMode(path);
        return (mode & 0xF000) switch
        {
            0x8000 => "regular file",
            0x2000 => "character device",
            0x6000 => "block device",
            0x1000 => "named pipe (FIFO)",
            0xC000 => "socket",
            _ => "special file",
        };
    }

    /// <summary>st_mode of <paramref name="path"/> (stat(2), following links).</summary>
    private static unsafe uint StatMode(string path)
    {
        byte* buffer = stackalloc byte[256]; // struct stat is 144 bytes on x86-64, 128 on arm64
        if (Stat(path, buffer) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new IOException($"Cannot examine '{path}': {Marshal.GetPInvokeErrorMessage(errno)}.", errno);
        }

        // st_mode follows st_dev, st_ino (and on x86-64 st_nlink): offset 24 on x86-64, 16 on arm64.
        int offset = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 24 : 16;
        return *(uint*)(buffer + offset);
    }

    [LibraryImport("libc", EntryPoint = "stat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static unsafe partial int Stat(string path, byte* buffer);
}
