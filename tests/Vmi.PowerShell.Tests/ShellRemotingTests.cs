using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Vmi.PowerShell.Tests;

/// <summary>
/// vmi as a PowerShell remoting endpoint over SSH, as a dom0 fleet uses it: a real OpenSSH sshd (started here on two
/// spare loopback ports, a temporary host key, key authentication only) runs <c>vmi -sshs</c> as its "vmi" subsystem,
/// and this process's runspace (the PowerShell SDK, with the module imported for its views) fans out to both with
/// <c>Invoke-Command -HostName ... -Subsystem vmi</c>.
/// </summary>
public sealed class ShellRemotingTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"vmi-sshd-{Guid.NewGuid():N}");
    private readonly Process _sshd;
    private readonly int _portA;
    private readonly int _portB;

    public ShellRemotingTests()
    {
        Assert.True(File.Exists("/usr/sbin/sshd") && File.Exists("/usr/bin/ssh"), "OpenSSH is missing: tests/deps.sh installs openssh-server and openssh-client.");
        Directory.CreateDirectory(_dir);
        Run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", Path.Combine(_dir, "hostkey"));
        Run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", Path.Combine(_dir, "client"));
        File.Copy(Path.Combine(_dir, "client.pub"), Path.Combine(_dir, "authorized_keys"));
        Directory.CreateDirectory("/run/sshd"); // sshd's privilege-separation directory

        _portA = SparePort();
        _portB = SparePort();
        string config = Path.Combine(_dir, "sshd_config");
        File.WriteAllText(config, string.Join('\n',
            $"Port {_portA}",
            $"Port {_portB}",
            "ListenAddress 127.0.0.1",
            $"HostKey {_dir}/hostkey",
            $"PidFile {_dir}/sshd.pid",
            $"AuthorizedKeysFile {_dir}/authorized_keys",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "PermitRootLogin prohibit-password",
            $"Subsystem vmi {VmiExecutable} -sshs -NoLogo -NoProfile",
            ""));

        var psi = new ProcessStartInfo("/usr/sbin/sshd") { RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in new[] { "-D", "-e", "-f", config })
        {
            psi.ArgumentList.Add(a);
        }

        _sshd = Process.Start(psi)!;
        _sshd.ErrorDataReceived += (_, _) => { };
        _sshd.BeginErrorReadLine();
        Assert.True(SpinWait.SpinUntil(() => Listening(_portA) && Listening(_portB), TimeSpan.FromSeconds(30)), "sshd did not start listening");
    }

    private static string VmiExecutable => PowerShellHost.ShellFile("vmi");

    /// <summary>The Invoke-Command parameters of both endpoints: two host names, so PSComputerName tells them apart.</summary>
    private string FanOut => $"$ssh = @{{ HostName = 'localhost:{_portA}', '127.0.0.1:{_portB}'; UserName = '{Environment.UserName}'; " +
        $"KeyFilePath = '{_dir}/client'; Subsystem = 'vmi'; Options = @{{ StrictHostKeyChecking = 'no'; UserKnownHostsFile = '/dev/null'; LogLevel = 'ERROR' }} }}; ";

    [Fact]
    public void AFanOutReturnsDeserializedRecordsFromEachEndpointWithTheirComputerName()
    {
        using var host = new PowerShellHost();
        var results = host.Run(FanOut + "Invoke-Command @ssh { $null = Connect-VmiDomain -Mock; Get-VmiRegister -Vcpu 0; (Get-Process -Id $PID).ProcessName }");
        Assert.True(host.LastErrors.Count == 0, string.Join("\n", host.LastErrors));

        var registers = results.Where(r => r.TypeNames[0] == "Deserialized.Vmi.PowerShell.VmiVcpuRegisters").ToList();
        Assert.Equal(["127.0.0.1", "localhost"], registers.Select(r => r.Properties["PSComputerName"].Value.ToString()).Order(StringComparer.Ordinal));
        Assert.All(registers, r => Assert.Equal(0x100000UL, Convert.ToUInt64(r.Properties["Cr3"].Value, CultureInfo.InvariantCulture)));

        // The endpoint is vmi itself (its module auto-loads there), once per host.
        Assert.Equal(["vmi", "vmi"], results.Where(r => r.BaseObject is string).Select(r => (string)r.BaseObject));
    }

    [Fact]
    public void DeserializedRecordsRenderWithTheModulesViewsLocally()
    {
        using var host = new PowerShellHost();
        string local = string.Concat(host.Run("$null = Connect-VmiDomain -Mock; Get-VmiRegister -Vcpu 0 | Format-Table -HideTableHeaders | Out-String -Width 200"));
        string remote = string.Concat(host.Run(FanOut + "Invoke-Command @ssh { $null = Connect-VmiDomain -Mock; Get-VmiRegister -Vcpu 0 } | Sort-Object PSComputerName | Select-Object -First 1 | Format-Table -HideTableHeaders | Out-String -Width 200"));
        Assert.True(host.LastErrors.Count == 0, string.Join("\n", host.LastErrors));

        // The hex columns of the local view, on the deserialized record too (plus its PSComputerName column).
        Assert.Contains("0xffffffff81000100", local, StringComparison.Ordinal);
        string localRow = local.Trim();
        Assert.StartsWith(localRow, remote.Trim(), StringComparison.Ordinal);
    }

    [Fact]
    public void AnErrorOnAnEndpointArrivesWithItsIdAndComputerName()
    {
        using var host = new PowerShellHost();
        host.Run(FanOut + "Invoke-Command @ssh { $null = Connect-VmiDomain -Mock; Read-VmiMemory 0xffffffff82005000 -Length 4 }");
        Assert.Equal(2, host.LastErrors.Count);
        Assert.All(host.LastErrors, e => Assert.StartsWith("Vmi.PageFault", e.FullyQualifiedErrorId, StringComparison.Ordinal));
        Assert.Equal(["127.0.0.1", "localhost"], host.LastErrors.Select(e => ((System.Management.Automation.Runspaces.RemotingErrorRecord)e).OriginInfo.PSComputerName).Order(StringComparer.Ordinal));
    }

    public void Dispose()
    {
        try
        {
            if (!_sshd.HasExited)
            {
                _sshd.Kill(entireProcessTree: true);
                _sshd.WaitForExit(10_000);
            }
        }
        finally
        {
            _sshd.Dispose();
            Directory.Delete(_dir, recursive: true);
        }
    }

    private static int SparePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static bool Listening(int port)
    {
        try
        {
            using var client = new TcpClient();
            client.Connect(IPAddress.Loopback, port);
            return true;
        }
        catch (SocketException)
        {
            Thread.Sleep(100);
            return false;
        }
    }

    private static void Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true };
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using Process p = Process.Start(psi)!;
        p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(30_000) && p.ExitCode == 0, $"{file} failed");
    }
}
