using System.Management.Automation;

namespace Vmi.PowerShell;

/// <summary>Provider conventions for image paths: -Path expands wildcards, -LiteralPath does not; what names no file is a non-terminating error with the path as its target.</summary>
internal static class ImagePaths
{
    /// <summary>The image files -Path or -LiteralPath name; writes an error for each that names no file.</summary>
    public static List<string> Resolve(PSCmdlet cmdlet, IEnumerable<string> paths, bool literal)
    {
        var files = new List<string>();
        foreach (string given in paths)
        {
            List<string> resolved;
            try
            {
                if (literal || !WildcardPattern.ContainsWildcardCharacters(given))
                {
                    resolved = [cmdlet.GetUnresolvedProviderPathFromPSPath(given)];
                }
                else
                {
                    resolved = [.. cmdlet.GetResolvedProviderPathFromPSPath(given, out ProviderInfo provider)];
                    if (provider.Name != "FileSystem")
                    {
                        cmdlet.WriteError(new ErrorRecord(new ArgumentException($"'{given}' is not a file-system path: a memory image is a file."), VmiErrorIds.InvalidArgument, ErrorCategory.InvalidArgument, given));
                        continue;
                    }
                }
            }
            catch (Exception e) when (e is ItemNotFoundException or System.Management.Automation.DriveNotFoundException or ProviderNotFoundException or NotSupportedException)
            {
                cmdlet.WriteError(new ErrorRecord(new ItemNotFoundException($"No memory image matches '{given}': check the path (Get-ChildItem lists the files).", e), VmiErrorIds.PathNotFound, ErrorCategory.ObjectNotFound, given));
                continue;
            }

            if (resolved.Count == 0)
            {
                cmdlet.WriteError(new ErrorRecord(new ItemNotFoundException($"No memory image matches '{given}': check the path (Get-ChildItem lists the files)."), VmiErrorIds.PathNotFound, ErrorCategory.ObjectNotFound, given));
            }

            foreach (string file in resolved)
            {
                if (Directory.Exists(file))
                {
                    cmdlet.WriteError(new ErrorRecord(new IOException($"'{file}' is a directory: give the memory image file inside it."), VmiErrorIds.PathIsDirectory, ErrorCategory.InvalidArgument, file));
                }
                else if (!File.Exists(file))
                {
                    cmdlet.WriteError(new ErrorRecord(new ItemNotFoundException($"The memory image '{file}' does not exist."), VmiErrorIds.PathNotFound, ErrorCategory.ObjectNotFound, file));
                }
                else
                {
                    files.Add(file);
                }
            }
        }

        return files;
    }

    /// <summary>
    /// Why an image may not be written at <paramref name="path"/>, or null when it may: only a regular file is ever
    /// replaced (a device node, pipe or directory never), and an existing one only with <paramref name="force"/>.
    /// </summary>
    public static string? SaveProblem(string path, bool force, out bool exists)
    {
        exists = File.Exists(path) || Directory.Exists(path);
        try
        {
            return Vmi.Dump.ImageFileWriter.CheckTarget(path, overwrite: true)
                ?? (exists && !force ? string.Format(System.Globalization.CultureInfo.CurrentCulture, Messages.SaveTargetExists, path) : null);
        }
        catch (IOException e)
        {
            return e.Message;
        }
    }
}
