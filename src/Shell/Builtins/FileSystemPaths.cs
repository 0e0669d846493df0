using System.Collections.ObjectModel;
using System.Management.Automation;

namespace Vmi.Shell.Builtins;

/// <summary>PowerShell paths (relative to the current location, ~, wildcards unless literal) to file-system paths.</summary>
internal static class FileSystemPaths
{
    /// <summary>
    /// The existing files a path names (wildcards expanded unless literal). Writes a non-terminating error and
    /// returns none when nothing is there or the path is not on the file system.
    /// </summary>
    public static IReadOnlyList<string> Existing(PSCmdlet cmdlet, string path, bool literal)
    {
        try
        {
            if (literal)
            {
                string full = cmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath(path, out ProviderInfo provider, out _);
                RequireFileSystem(provider, path);
                if (!File.Exists(full) && !Directory.Exists(full))
                {
                    throw new ItemNotFoundException($"Cannot find path '{path}' because it does not exist.");
                }

                return [full];
            }

            Collection<string> paths = cmdlet.SessionState.Path.GetResolvedProviderPathFromPSPath(path, out ProviderInfo resolvedBy);
            RequireFileSystem(resolvedBy, path);
            return paths;
        }
        catch (Exception e) when (e is ItemNotFoundException or System.Management.Automation.DriveNotFoundException or ProviderNotFoundException or PSNotSupportedException or PSArgumentException)
        {
            cmdlet.WriteError(BuiltinErrors.FromIO(e, BuiltinErrors.PathNotFound, path));
            return [];
        }
    }

    /// <summary>The file a path names for writing (it may not exist yet); wildcards must match exactly one existing item.</summary>
    public static string? ForWriting(PSCmdlet cmdlet, string path, bool literal)
    {
        try
        {
            if (!literal && WildcardPattern.ContainsWildcardCharacters(path))
            {
                Collection<string> matches = cmdlet.SessionState.Path.GetResolvedProviderPathFromPSPath(path, out ProviderInfo p);
                RequireFileSystem(p, path);
                if (matches.Count == 1)
                {
                    return matches[0];
                }

                throw new PSArgumentException($"The path '{path}' matches {matches.Count} items; name one file.");
            }

            string full = cmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath(path, out ProviderInfo provider, out _);
            RequireFileSystem(provider, path);
            return full;
        }
        catch (Exception e) when (e is ItemNotFoundException or System.Management.Automation.DriveNotFoundException or ProviderNotFoundException or PSNotSupportedException or PSArgumentException)
        {
            cmdlet.WriteError(BuiltinErrors.FromIO(e, BuiltinErrors.PathNotFound, path));
            return null;
        }
    }

    private static void RequireFileSystem(ProviderInfo provider, string path)
    {
        if (!string.Equals(provider.Name, "FileSystem", StringComparison.OrdinalIgnoreCase))
        {
            throw new PSNotSupportedException($"'{path}' is on the {provider.Name} provider; this command works with files.");
        }
    }
}
