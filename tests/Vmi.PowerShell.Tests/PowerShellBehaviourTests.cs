using System.Management.Automation;
using System.Reflection;
using L = Vmi.Mock.DemoGuestLayout;

namespace Vmi.PowerShell.Tests;

/// <summary>What PowerShell users rely on beyond results: OutputType, remoting serialization, tab completion, progress.</summary>
public class PowerShellBehaviourTests : MockSessionTest
{
    public static TheoryData<string, string> Commands => new()
    {
        { "Connect-VmiDomain", "Connect-VmiDomain -Mock" },
        { "Get-VmiSession", "Get-VmiSession" },
        { "Read-VmiMemory", $"Read-VmiMemory {Hex(L.AsciiStringVa)} -Length 8" },
        { "Read-VmiMemory", $"Read-VmiMemory {Hex(L.AsciiStringVa)} -As String" },
        { "Read-VmiMemory", $"Read-VmiMemory {Hex(L.AsciiStringVa)} -As WString" },
        { "Read-VmiMemory", $"Read-VmiMemory {Hex(L.MagicValueVa)} -As UInt8" },
        { "Read-VmiMemory", $"Read-VmiMemory {Hex(L.MagicValueVa)} -As UInt16" },
        { "Read-VmiMemory", $"Read-VmiMemory {Hex(L.MagicValueVa)} -As UInt32" },
        { "Read-VmiMemory", $"Read-VmiMemory {Hex(L.MagicValueVa)} -As UInt64" },
        { "Read-VmiMemory", $"Read-VmiMemory {Hex(L.PointerVa)} -As Pointer" },
        { "Write-VmiMemory", $"Write-VmiMemory {Hex(L.KernelDataPa)} -Physical -Bytes 1 -Confirm:$false -PassThru" },
        { "Resolve-VmiAddress", $"Resolve-VmiAddress {Hex(L.AsciiStringVa)}" },
        { "Resolve-VmiAddress", $"Resolve-VmiAddress {Hex(L.AsciiStringVa)} -Detailed" },
        { "Find-VmiMemory", "Find-VmiMemory -Pattern '56 4d 49 21' -Physical" },
        { "Get-VmiRegister", "Get-VmiRegister -Vcpu 0" },
        { "Get-VmiRegister", "Get-VmiRegister -Vcpu 0 -Name Rip, Cs" },
        { "Set-VmiRegister", "Set-VmiRegister -Vcpu 0 -Name Rax -Value 1 -Confirm:$false -PassThru" },
        { "Get-VmiMemoryAccess", "Get-VmiMemoryAccess 0x1200" },
        { "Set-VmiMemoryAccess", "Set-VmiMemoryAccess 0x1200 -Access RX -PassThru" },
        { "New-VmiView", "New-VmiView" },
        { "Enable-VmiMonitor", "Enable-VmiMonitor Cpuid -PassThru" },
        { "Disable-VmiMonitor", "Enable-VmiMonitor Cpuid; Disable-VmiMonitor Cpuid -PassThru" },
        { "Wait-VmiEvent", "Enable-VmiMonitor Cr3, Breakpoint; Wait-VmiEvent -Timeout 5 -Count 2" },
        { "Suspend-VmiDomain", "Suspend-VmiDomain -PassThru" },
        { "Resume-VmiDomain", "Suspend-VmiDomain; Resume-VmiDomain -PassThru" },
        { "Get-VmiCache", "Get-VmiCache" },
        { "Clear-VmiCache", "Clear-VmiCache -PassThru" },
    };

    [Theory]
    [MemberData(nameof(Commands))]
    public void OutputTypeListsWhatIsWritten(string cmdlet, string script)
    {
        Type[] declared = typeof(VmiSession).Assembly.GetExportedTypes()
            .Where(t => t.GetCustomAttribute<CmdletAttribute>() is { } a && a.VerbName + "-" + a.NounName == cmdlet)
            .SelectMany(t => t.GetCustomAttributes<OutputTypeAttribute>())
            .SelectMany(a => a.Type.Select(p => p.Type!))
            .ToArray();
        PSObject[] output = Host.RunClean(script).ToArray();
        Assert.NotEmpty(output);
        foreach (PSObject o in output)
        {
            Assert.True(declared.Any(t => t.IsInstanceOfType(o.BaseObject)), $"{cmdlet} wrote a {o.BaseObject.GetType()}, which its OutputType does not list");
        }
    }

    [Theory]
    [InlineData("Read-VmiMemory {0} -Length 16", "Address", "Bytes")]
    [InlineData("Resolve-VmiAddress {0}", "Va", "Pa")]
    [InlineData("Resolve-VmiAddress {0} -Detailed", "Va", "Levels")]
    [InlineData("Get-VmiRegister -Vcpu 0", "Rip", "Cr3")]
    [InlineData("Get-VmiMemoryAccess 0x1200", "Gfn", "Access")]
    [InlineData("Get-VmiCache", "Hits", "Misses")]
    [InlineData("Get-VmiSession", "Name", "Driver")]
    [InlineData("Enable-VmiMonitor Cr3; Wait-VmiEvent -Timeout 5 -Count 1", "NewValue", "Registers")]
    public void RecordsSurviveACliXmlRoundTrip(string command, string first, string second)
    {
        PSObject copy = Host.Run($$"""
            $x = @(& { {{string.Format(System.Globalization.CultureInfo.InvariantCulture, command, Hex(L.AsciiStringVa))}} })[0]
            [System.Management.Automation.PSSerializer]::Deserialize([System.Management.Automation.PSSerializer]::Serialize($x))
            """).Single();
        Assert.Empty(Host.LastErrors);
        Assert.StartsWith("Deserialized.Vmi.PowerShell.", copy.TypeNames[0], StringComparison.Ordinal);
        Assert.NotNull(copy.Properties[first]?.Value);
        Assert.NotNull(copy.Properties[second]?.Value);
    }

    [Fact]
    public void DeserialisedRecordsStillBindToTheCmdlets()
    {
        // As after Invoke-Command: the session became its name, addresses stayed numbers.
        string text = Host.Get<string>("""
            $hit = Find-VmiMemory -String 'Hello from' -Physical
            $copy = [System.Management.Automation.PSSerializer]::Deserialize([System.Management.Automation.PSSerializer]::Serialize($hit))
            $copy | Read-VmiMemory -As String
            """);
        Assert.Equal(L.AsciiString, text);
        ulong rip = Host.Get<ulong>("""
            Enable-VmiMonitor Cr3
            $e = Wait-VmiEvent -Timeout 5 -Count 1
            $copy = [System.Management.Automation.PSSerializer]::Deserialize([System.Management.Automation.PSSerializer]::Serialize($e))
            $copy.Registers.Rip
            """);
        Assert.Equal(L.VcpuRip[L.Cr3WriteVcpu], rip);
    }

    private string[] Complete(string line)
    {
        return Host.Run($"(TabExpansion2 -inputScript '{line.Replace("'", "''", StringComparison.Ordinal)}' -cursorColumn {line.Length}).CompletionMatches | ForEach-Object CompletionText")
            .Select(o => o.ToString()).ToArray();
    }

    [Fact]
    public void TabCompletionOfSessionsVcpusViewsMonitorsAndRegisters()
    {
        Host.RunClean("$null = Connect-VmiDomain -Mock -SessionName second; $null = New-VmiView");
        Assert.Equal(["mock", "second"], Complete("Get-VmiRegister -Session "));
        Assert.Equal(["0", "1", "2", "3"], Complete("Get-VmiRegister -Vcpu "));
        Assert.Equal(["0", "1"], Complete("Switch-VmiView -View "));
        Assert.Contains("Msr:0xC0000082", Complete("Enable-VmiMonitor -Monitor "));
        Assert.Equal(["Cr0", "Cr2", "Cr3", "Cr4"], Complete("Get-VmiRegister -Name Cr"));
        Host.RunClean("Enable-VmiMonitor Cpuid");
        Assert.Equal("Cpuid", Complete("Disable-VmiMonitor -Monitor ")[0]);
    }

    [Fact]
    public void LongReadsAndSearchesReportProgress()
    {
        using var ps = System.Management.Automation.PowerShell.Create();
        ps.Runspace = Host.Runspace;
        ps.AddScript("Find-VmiMemory -String 'no such text anywhere' -Physical");
        ps.Invoke();
        Assert.Empty(ps.Streams.Error);
        Assert.Contains(ps.Streams.Progress, p => p.Activity == "Searching memory" && p.PercentComplete >= 0);
        Assert.Contains(ps.Streams.Progress, p => p.RecordType == ProgressRecordType.Completed);
    }

    [Fact]
    public void NonTerminatingErrorsHonourErrorAction()
    {
        Host.Run($"Read-VmiMemory {Hex(L.UnmappedVa)} -ErrorAction SilentlyContinue");
        Assert.Empty(Host.LastErrors);
        ErrorRecord e = Host.RunFailing($"Read-VmiMemory {Hex(L.UnmappedVa)} -ErrorAction Stop");
        Assert.StartsWith(VmiErrorIds.PageFault + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
    }
}
