using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Vmi.PowerShell.Tests;

namespace Vmi.Qemu.Tests;

/// <summary>
/// tests/pester/Vmi.Common.Tests.ps1, the suite of the common cmdlets, run by real Pester under the built vmi twice: on
/// the demo guest and on the live guest (VMI_PESTER_QMP). The same It blocks must pass on both, with the same count.
/// </summary>
[Collection("live-4level")]
public sealed partial class PesterLiveTests(FourLevelGuest guest)
{
    [Fact]
    public void The_common_Pester_suite_passes_alike_on_the_mock_and_the_live_guest()
    {
        (int passed, int failed, int skipped, string output) mock = RunSuite([]);
        Assert.True(mock.failed == 0 && mock.passed >= 10, "on the mock:\n" + mock.output);
        Assert.Contains("common cmdlets on the Mock target", mock.output, StringComparison.Ordinal);

        (int passed, int failed, int skipped, string output) live = RunSuite(new Dictionary<string, string>
        {
            ["VMI_PESTER_QMP"] = guest.QmpPath,
            ["VMI_PESTER_CODE"] = guest.Functions["__x64_sys_clock_nanosleep"].ToString("x", CultureInfo.InvariantCulture),
            ["VMI_PESTER_DATA"] = guest.Functions["jiffies"].ToString("x", CultureInfo.InvariantCulture),
        });
        Assert.True(live.failed == 0, "on the live guest:\n" + live.output);
        Assert.Contains("common cmdlets on the QEMU target", live.output, StringComparison.Ordinal);
        Assert.Equal((mock.passed, mock.skipped), (live.passed, live.skipped));

        // The suite disconnected: the guest runs on with nothing of ours left.
        using QmpClient qmp = QmpClient.Connect(guest.QmpPath);
        Assert.Equal("running", qmp.Status());
    }

    private static (int Passed, int Failed, int Skipped, string Output) RunSuite(Dictionary<string, string> environment)
    {
        string root = LiveGuest.RepoRoot();
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = root,
        };
        foreach (string a in new[] { PowerShellHost.ShellFile("vmi.dll"), "-NoProfile", "-NonInteractive", "-File", Path.Combine(root, "tests/pester/Invoke-VmiPester.ps1"), "-Path", Path.Combine(root, "tests/pester/Vmi.Common.Tests.ps1"), "-Output", "Detailed" })
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["NO_COLOR"] = "1";
        psi.Environment["NUGET_PACKAGES"] = Environment.GetEnvironmentVariable("NUGET_PACKAGES") ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        psi.Environment["HOME"] = Path.Combine(Path.GetTempPath(), "vmi-test-home");
        psi.Environment.Remove("PSModulePath");
        foreach ((string name, string value) in environment)
        {
            psi.Environment[name] = value;
        }

        using Process p = Process.Start(psi)!;
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(10))) // hang guard only
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail("the Pester suite did not finish in 10 minutes: " + stdout.Result);
        }

        string output = stdout.Result + stderr.Result;
        Match m = Counts().Match(output);
        Assert.True(m.Success, $"vmi exited {p.ExitCode} without Pester's counts:\n{output}");
        return (int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture), int.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture), output);
    }

    [GeneratedRegex(@"^pester: (\d+) passed, (\d+) failed, (\d+) skipped", RegexOptions.Multiline)]
    private static partial Regex Counts();
}
