using Vmi.Core.Drivers;
using System.Management.Automation;

namespace Vmi.PowerShell.Tests;

/// <summary>
/// The Xen wiring of the cmdlets, on a machine without Xen (this one, and CI): Connect-VmiDomain -Name/-Id and
/// Get-VmiDomain stop with the driver's clear error under a stable id; domain-name completion offers nothing, quietly.
/// </summary>
public sealed class XenCmdletTests : IDisposable
{
    private readonly PowerShellHost _host = new();

    /// <summary>True here: the tests below describe a host that is not a Xen dom0.</summary>
    private static bool NoXen => !File.Exists("/dev/xen/privcmd");

    public void Dispose() => _host.Dispose();

    [Theory]
    [InlineData("Connect-VmiDomain -Name win10-07")]
    [InlineData("Connect-VmiDomain win10-07 -ReadOnly")]
    [InlineData("Connect-VmiDomain -Id 7")]
    [InlineData("[pscustomobject]@{ Id = 7; Name = 'win10-07' } | Connect-VmiDomain")]
    [InlineData("Get-VmiDomain")]
    [InlineData("Get-VmiDomain -Name win* -Id 3")]
    public void WithoutXenTheCommandStopsWithTheDriversClearError(string command)
    {
        if (!NoXen)
        {
            return; // a Xen dom0: the live tests cover it
        }

        // Terminating: try/catch catches it, and -ErrorAction SilentlyContinue does not hide it.
        object caught = Assert.Single(_host.Run($"try {{ {command} -ErrorAction SilentlyContinue; 'continued' }} catch {{ $_ }}")).BaseObject;
        ErrorRecord e = Assert.IsType<ErrorRecord>(caught);
        Assert.StartsWith(VmiErrorIds.XenUnavailable + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Equal(ErrorCategory.ResourceUnavailable, e.CategoryInfo.Category);
        Assert.Contains("/dev/xen/privcmd is missing", e.Exception.Message, StringComparison.Ordinal);
        Assert.Equal("Xen", Assert.IsType<VmiDriverUnavailableException>(e.Exception).DriverName);
        Assert.Empty(VmiSessionRegistry.Current);
    }

    [Fact]
    public void ConnectHasNameAndIdParameterSets()
    {
        string[] sets = _host.Run("(Get-Command Connect-VmiDomain).ParameterSets | ForEach-Object { $_.Name + ': ' + $_.ToString() }")
            .Select(o => o.ToString()).ToArray();
        Assert.Contains("Name: [-Name] <string> [-ReadOnly] [-SessionName <string>] [-CacheSize <int>] [<CommonParameters>]", sets);
        Assert.Contains("Id: -Id <uint> [-ReadOnly] [-SessionName <string>] [-CacheSize <int>] [<CommonParameters>]", sets);
        Assert.Contains(sets, s => s.StartsWith("Mock: -Mock", StringComparison.Ordinal));
        Assert.Contains(sets, s => s.StartsWith("Path: -Path <string[]>", StringComparison.Ordinal)); // wildcards, one session per image
        Assert.Contains(sets, s => s.StartsWith("LiteralPath: -LiteralPath <string[]>", StringComparison.Ordinal));
        Assert.Equal("Get-VmiDomain [[-Name] <string[]>] [-Id <uint[]>] [<CommonParameters>]",
            _host.Run("'Get-VmiDomain ' + (Get-Command Get-VmiDomain).ParameterSets[0].ToString()").Single().ToString());

        // A positional name is a domain name; the demo guest and images still connect by their switches.
        Assert.Equal("Name", _host.Run("$c = Get-Command Connect-VmiDomain; $c.ResolveParameter('Name').ParameterSets.Keys").Single().ToString());
        Assert.Equal("Mock", _host.Get<VmiSession>("Connect-VmiDomain -Mock").Driver);
    }

    [Fact]
    public void GetVmiDomainIsExported()
    {
        Assert.Equal("Cmdlet", _host.Run("(Get-Command Get-VmiDomain -Module Vmi).CommandType.ToString()").Single().ToString());
        Assert.Contains("Get-VmiDomain", _host.Run("(Test-ModuleManifest '" + PowerShellHost.ModuleManifest + "').ExportedCmdlets.Keys").Select(o => o.ToString()));
    }

    [Fact]
    public void DomainNameCompletionOffersNothingWithoutXenAndNoError()
    {
        if (!NoXen)
        {
            return;
        }

        Assert.Empty(new VmiDomainNameCompleter().CompleteArgument("Connect-VmiDomain", "Name", "w", null!, new System.Collections.Hashtable()));
        PSObject[] matches = [.. _host.Run("(TabExpansion2 -inputScript 'Connect-VmiDomain -Name w' -cursorColumn 25).CompletionMatches")];
        Assert.Empty(_host.LastErrors);
        Assert.Empty(matches);
    }
}
