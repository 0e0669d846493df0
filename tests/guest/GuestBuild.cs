using System.Diagnostics;

namespace Vmi.Tests.Guest;

/// <summary>
/// The real QEMU guests of tests/guest/build-guest.sh, shared by the test projects that read them (compiled into each):
/// one directory per variant under VMI_GUEST_DIR (or tests/data/generated/guest), keyed by the script's hash, built by
/// one process while the others wait on a lock file. Missing QEMU, busybox or the kernel fails with the packages to install.
/// </summary>
internal static class GuestBuild
{
    public static string RepositoryRoot
    {
        get
        {
            for (string? d = AppContext.BaseDirectory; d is not null; d = Path.GetDirectoryName(d))
            {
                if (File.Exists(Path.Combine(d, "tests", "guest", "build-guest.sh")))
                {
                    return d;
                }
            }

            throw new InvalidOperationException("Cannot find the repository root (tests/guest/build-guest.sh) above " + AppContext.BaseDirectory);
        }
    }

    /// <summary>The directory of <paramref name="variant"/>'s guest, built first unless a build by the current script is there.</summary>
    public static string Directory(string variant, TimeSpan buildTimeout)
    {
        string root = RepositoryRoot;
        string outRoot = Environment.GetEnvironmentVariable("VMI_GUEST_DIR") ?? Path.Combine(root, "tests", "data", "generated", "guest");
        string dir = Path.Combine(outRoot, variant);
        string script = Path.Combine(root, "tests", "guest", "build-guest.sh");

        // The cache is keyed by the script's content: a guest made by an older script (other samples, other answers)
        // is built again rather than compared against tests written for the new one.
        string scriptHash = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(script)));
        string stamp = Path.Combine(dir, "SCRIPT.sha256");

        // Test processes (several test projects, or several checkouts sharing VMI_GUEST_DIR) may want the same guest at
        // once: one builds it while the others wait, so no process deletes a directory another is writing or reading.
        System.IO.Directory.CreateDirectory(outRoot);
        using FileStream guard = LockFile(Path.Combine(outRoot, $".{variant}.lock"));
        if (File.Exists(Path.Combine(dir, "DONE")) && File.Exists(stamp) && File.ReadAllText(stamp).Trim() == scriptHash)
        {
            return dir;
        }

        if (System.IO.Directory.Exists(dir))
        {
            System.IO.Directory.Delete(dir, recursive: true);
        }

        var psi = new ProcessStartInfo("bash", [script, outRoot, variant]) { RedirectStandardError = true, RedirectStandardOutput = true };
        using Process p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start bash");
        Task<string> err = p.StandardError.ReadToEndAsync();
        Task<string> output = p.StandardOutput.ReadToEndAsync();
        if (!p.WaitForExit(buildTimeout))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"Building the {variant} guest took more than {buildTimeout.TotalMinutes:0} minutes.");
        }

        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"Building the real {variant} guest failed (exit {p.ExitCode}). The tests need the Debian packages qemu-system-x86, busybox-static, cpio and linux-image-amd64.\n{err.Result}\n{output.Result}");
        }

        File.WriteAllText(stamp, scriptHash);
        return dir;
    }

    /// <summary>Takes an exclusive lock on <paramref name="path"/> (flock through FileShare.None), waiting up to 30 minutes for another process's build.</summary>
    private static FileStream LockFile(string path)
    {
        for (int i = 0; ; i++)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (i < 1800)
            {
                Thread.Sleep(1000);
            }
        }
    }
}
