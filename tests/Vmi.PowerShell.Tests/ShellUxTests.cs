using System.Management.Automation;

namespace Vmi.PowerShell.Tests;

/// <summary>What a pwsh user hit with the module, each fixed: -WhatIf, error texts, Import-Module -Force.</summary>
public class ShellUxTests
{
    [Fact]
    public void ClearVmiCacheWhatIfFlushesNothing()
    {
        using var host = new PowerShellHost();
        host.RunClean("$null = Connect-VmiDomain -Mock; $null = Read-VmiMemory 0xffffffff82000100 -Length 64");
        int Entries() => host.Get<int>("[int](Get-VmiCache | Measure-Object Count -Sum).Sum");
        int before = Entries();
        Assert.True(before > 0);

        host.RunClean("Clear-VmiCache -WhatIf");
        Assert.Equal(before, Entries());

        host.RunClean("Clear-VmiCache -Confirm:$false");
        Assert.Equal(0, Entries());
    }

    [Fact]
    public void AnErrorsFixIsNotPrintedTwiceAsARecommendation()
    {
        using var host = new PowerShellHost();
        host.RunClean("$null = Connect-VmiDomain -Mock");
        host.Run("Get-VmiRegister -Vcpu 99");
        ErrorRecord error = Assert.Single(host.LastErrors);
        Assert.StartsWith("Vmi.VcpuNotFound", error.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Null(error.ErrorDetails?.RecommendedAction);

        string shown = string.Concat(host.Run("$Error[0] | Out-String -Width 200"));
        Assert.DoesNotContain("Recommendation", shown, StringComparison.Ordinal);
    }

    [Fact]
    public void ArgumentErrorsDoNotEndInDotnetsParameterSuffix()
    {
        using var host = new PowerShellHost();
        host.RunClean("$null = Connect-VmiDomain -Mock");
        host.Run("Read-VmiMemory 0xfffffffffffffff0 -Physical -Length 64");
        ErrorRecord error = Assert.Single(host.LastErrors);
        Assert.StartsWith("Vmi.InvalidArgument", error.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.EndsWith("(Parameter 'Length')", error.Exception.Message, StringComparison.Ordinal); // what .NET says
        string shown = string.Concat(host.Run("$Error[0] | Out-String -Width 300"));
        Assert.Contains("runs past the end of the address space. Shorten -Length.", shown, StringComparison.Ordinal);
        Assert.DoesNotContain("(Parameter '", shown, StringComparison.Ordinal); // what the user sees
    }

    [Fact]
    public void ImportModuleForceWarnsAndNamesTheSessionsItCloses()
    {
        using var host = new PowerShellHost();
        host.RunClean("$s = Connect-VmiDomain -Mock -SessionName first; $null = Connect-VmiDomain -Mock -SessionName second");
        host.RunClean($"Import-Module '{PowerShellHost.ModuleManifest}' -Force");
        string warning = Assert.Single(host.LastWarnings);
        Assert.Contains("2 open session(s)", warning, StringComparison.Ordinal);
        Assert.Contains("first (Id ", warning, StringComparison.Ordinal);
        Assert.Contains("second (Id ", warning, StringComparison.Ordinal);
        Assert.Equal("Closed", host.Get<object>("$s.State").ToString());

        // With nothing open, no warning.
        host.RunClean($"Import-Module '{PowerShellHost.ModuleManifest}' -Force");
        Assert.Empty(host.LastWarnings);
    }

    [Theory]
    [InlineData("Read-VmiMemory 0xffffffff82000108 -Length 300")]
    [InlineData("Resolve-VmiAddress 0xffffffff82000100 -Detailed")]
    [InlineData("Resolve-VmiAddress 0x600040 -Vcpu 3 -Detailed")]
    [InlineData("'0xffffffff82000100', '0xffffffff81000100' | Resolve-VmiAddress")]
    [InlineData("Get-VmiRegister")]
    [InlineData("Get-VmiSession")]
    [InlineData("Get-VmiCache")]
    [InlineData("Find-VmiMemory -Pattern '56 4d 49 21' -Physical")]
    public void DefaultViewsFitEightyColumns(string command)
    {
        using var host = new PowerShellHost();
        host.RunClean("$null = Connect-VmiDomain -Mock; $null = Read-VmiMemory 0xffffffff82000100 -Length 64");
        string shown = string.Concat(host.Run(command + " | Out-String -Width 250"));
        Assert.True(host.LastErrors.Count == 0, string.Join("\n", host.LastErrors));
        Assert.True(shown.Trim().Length > 0, command);
        foreach (string line in shown.Split('\n'))
        {
            Assert.True(line.TrimEnd().Length <= 80, $"{command}: a {line.TrimEnd().Length}-column line:\n{line}");
        }
    }

    [Fact]
    public void AHexDumpThatStartsMidLineKeepsItsAsciiUnderItsBytes()
    {
        using var host = new PowerShellHost();
        host.RunClean("$null = Connect-VmiDomain -Mock");
        string[] lines = string.Concat(host.Run("Read-VmiMemory 0xffffffff82000108 -Length 24 | Out-String")).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(l => l.Length > 0).ToArray();
        Assert.Equal("Address           0001 0203 0405 0607 0809 0A0B 0C0D 0E0F  ASCII", lines[0]);

        // Byte 8 of the first line is 'o' (0x6F): its hex under header "0809", its character under ASCII column 8.
        int asciiColumn = lines[0].IndexOf("ASCII", StringComparison.Ordinal);
        Assert.Equal("FFFFFFFF82000100                      6F6D 2074 6865 2056          om the V", lines[1]);
        Assert.Equal(lines[0].IndexOf("0809", StringComparison.Ordinal), lines[1].IndexOf("6F6D", StringComparison.Ordinal));
        Assert.Equal('o', lines[1][asciiColumn + 8]);
        Assert.Equal("FFFFFFFF82000110  6D69 2E50 6F77 6572 5368 656C 6C20 6465  mi.PowerShell de", lines[2]);
    }

    [Fact]
    public void ADeserializedPageWalkRendersLikeTheLiveOne()
    {
        using var host = new PowerShellHost();
        host.RunClean("$null = Connect-VmiDomain -Mock");
        string file = Path.Combine(Path.GetTempPath(), $"vmi-walk-{Guid.NewGuid():N}.xml");
        try
        {
            string live = string.Concat(host.Run("Resolve-VmiAddress 0x600040 -Vcpu 3 -Detailed | Out-String"));
            string deserialized = string.Concat(host.Run($"Resolve-VmiAddress 0x600040 -Vcpu 3 -Detailed | Export-Clixml '{file}'; Import-Clixml '{file}' | Out-String"));
            Assert.True(host.LastErrors.Count == 0, string.Join("\n", host.LastErrors));
            Assert.Contains("=> PA 0x", live, StringComparison.Ordinal);
            Assert.Contains("Pt ", live, StringComparison.Ordinal);
            Assert.Equal(live, deserialized);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Theory]
    [InlineData("Get-VmiRegister -Vcpu 0 | Format-List", "Rip            : 0xffffffff81000100", "Cr3            : 0x100000")]
    [InlineData("Enable-VmiMonitor Cr3; Wait-VmiEvent -Count 1 -Timeout 10 | Format-List", "Rip         : 0xffffffff81000100", "Cr3         : 0x100000")]
    [InlineData("Enable-VmiMonitor Cr3; Wait-VmiEvent -Count 1 -Timeout 10 | Format-List", "Register    : Cr3", "NewValue    : 0x180000")]
    [InlineData("Enable-VmiMonitor 'Msr:0xC0000082'; Wait-VmiEvent -Count 1 -Timeout 10 | Format-List", "Msr         : 0xc0000082", "Reason      : Msr")]
    [InlineData("Enable-VmiMonitor Cr3; Wait-VmiEvent -Count 1 -Timeout 10 | ForEach-Object { [System.Management.Automation.PSSerializer]::Deserialize([System.Management.Automation.PSSerializer]::Serialize($_)) } | Format-List", "NewValue    : 0x180000", "Reason      : ControlRegister")]
    public void ListViewsShowAddressesAndRegistersInHex(string command, string line1, string line2)
    {
        using var host = new PowerShellHost();
        host.RunClean("$null = Connect-VmiDomain -Mock");
        string shown = string.Concat(host.Run(command + " | Out-String -Width 120"));
        Assert.True(host.LastErrors.Count == 0, string.Join("\n", host.LastErrors));
        Assert.Contains(line1, shown, StringComparison.Ordinal);
        Assert.Contains(line2, shown, StringComparison.Ordinal);
        Assert.DoesNotContain("18446744071578845440", shown, StringComparison.Ordinal); // 0xffffffff81000100 in decimal
    }

    [Fact]
    public void ConnectPathFollowsTheProviderConventions()
    {
        string dir = Directory.CreateTempSubdirectory("vmi-connect-path-").FullName;
        try
        {
            using var host = new PowerShellHost();
            host.RunClean($"$null = Connect-VmiDomain -Mock; Save-VmiMemory '{dir}/a.elf' | Out-Null; Save-VmiMemory '{dir}/b.elf' | Out-Null; " +
                $"Copy-Item -LiteralPath '{dir}/a.elf' -Destination '{dir}/c[1].elf'; Disconnect-VmiDomain -All");

            // -Path expands wildcards: one session per image (c[1].elf matches *.elf too).
            Assert.Equal(3, host.Get<int>($"@(Connect-VmiDomain -Path '{dir}/*.elf').Count"));

            // Get-ChildItem's files bind by PSPath to -LiteralPath, brackets and all.
            Assert.Equal(3, host.Get<int>($"@(Get-ChildItem '{dir}' -Filter *.elf | Connect-VmiDomain -ReadOnly).Count"));
            Assert.Equal("c[1].elf", host.Get<string>($"(Connect-VmiDomain -LiteralPath '{dir}/c[1].elf').Name"));

            // A missing file and a directory: non-terminating (so -ErrorAction works), specific ids, the path as target.
            host.Run($"Connect-VmiDomain -Path '{dir}/missing.elf', '{dir}', '{dir}/a.elf' -ErrorAction SilentlyContinue -ErrorVariable failures | Out-Null; $failures");
            List<ErrorRecord> errors = host.Run("$failures").Select(o => (ErrorRecord)o.BaseObject).ToList();
            Assert.Equal(2, errors.Count);
            Assert.StartsWith("Vmi.PathNotFound,", errors[0].FullyQualifiedErrorId, StringComparison.Ordinal);
            Assert.Equal(ErrorCategory.ObjectNotFound, errors[0].CategoryInfo.Category);
            Assert.Equal($"{dir}/missing.elf", errors[0].TargetObject);
            Assert.StartsWith("Vmi.PathIsDirectory,", errors[1].FullyQualifiedErrorId, StringComparison.Ordinal);
            Assert.Equal(dir, errors[1].TargetObject);
            Assert.Contains("is a directory", errors[1].Exception.Message, StringComparison.Ordinal);
            Assert.Equal(1 + 3 + 3 + 1, host.Get<int>("@(Get-VmiSession | Where-Object Driver -eq 'ELF core').Count")); // a.elf still connected

            // A wildcard that matches nothing.
            host.Run($"Connect-VmiDomain -Path '{dir}/*.nothing' -ErrorAction SilentlyContinue -ErrorVariable none | Out-Null");
            Assert.StartsWith("Vmi.PathNotFound,", host.Get<ErrorRecord>("$none[0]").FullyQualifiedErrorId, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
