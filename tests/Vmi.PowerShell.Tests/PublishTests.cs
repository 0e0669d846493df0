using System.Diagnostics;

namespace Vmi.PowerShell.Tests;

/// <summary>
/// The one file a responder copies onto a dom0: <c>dotnet publish src/Shell -r linux-x64</c>, self-contained and
/// single-file. It must be the same shell as the built one: pwsh's built-in modules (Write-Host, Select-Object...)
/// and the Vmi module, extracted at first start.
/// </summary>
public class PublishTests
{
    private static (int Code, string Out, string Err) Run(string file, IEnumerable<string> args, IDictionary<string, string>? env = null, string? workingDirectory = null)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }

        foreach ((string k, string v) in env ?? new Dictionary<string, string>())
        {
            psi.Environment[k] = v;
        }

        psi.Environment.Remove("PSModulePath");
        using Process p = Process.Start(psi)!;
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        // A hang guard, not a budget: a publish takes minutes on a loaded 2-core machine.
        if (!p.WaitForExit(TimeSpan.FromMinutes(20)))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in 20 minutes");
        }

        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    [Fact]
    public void The_single_file_vmi_has_pwsh_s_built_in_modules_and_the_Vmi_module()
    {
        string root = PowerShellHost.RepoRoot;
        string output = Path.Combine(Path.GetTempPath(), "vmi-publish-test-" + Environment.ProcessId);
        string extract = output + "-extract";
        try
        {
            // --no-dependencies: the module was built by the test command already; rebuilding it here would rewrite the
            // module folder under the other tests.
            (int code, string o, string e) = Run("dotnet", ["publish", Path.Combine(root, "src", "Shell"), "-c", "Release", "-r", "linux-x64", "--no-dependencies", "-o", output, "-nologo", "-v", "q"]);
            Assert.True(code == 0, o + e);
            string vmi = Path.Combine(output, "vmi");
            Assert.True(File.Exists(vmi), "no single file at " + vmi);

            (code, o, e) = Run(vmi, ["-NoProfile", "-NonInteractive", "-Command",
                "Write-Host built-in; (Get-Command Select-Object).Source; $null = Connect-VmiDomain -Mock; Read-VmiMemory 0xffffffff82000100 -As String"],
                new Dictionary<string, string> { ["DOTNET_BUNDLE_EXTRACT_BASE_DIR"] = extract, ["NO_COLOR"] = "1", ["HOME"] = extract });
            Assert.True(code == 0, o + e);
            Assert.Contains("built-in", o, StringComparison.Ordinal);
            Assert.Contains("Microsoft.PowerShell.Utility", o, StringComparison.Ordinal);
            Assert.Contains("Hello from the Vmi.PowerShell demo guest!", o, StringComparison.Ordinal);
        }
        finally
        {
            foreach (string d in new[] { output, extract })
            {
                if (Directory.Exists(d))
                {
                    Directory.Delete(d, recursive: true);
                }
            }
        }
    }
}
