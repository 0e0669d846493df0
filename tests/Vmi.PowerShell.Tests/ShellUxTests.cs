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
}
