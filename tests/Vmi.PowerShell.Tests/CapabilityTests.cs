using System.Diagnostics.CodeAnalysis;
using System.Management.Automation;
using Vmi.Core;

namespace Vmi.PowerShell.Tests;

/// <summary>A session over a driver that can only read physical memory (like a raw image without registers).</summary>
public sealed class CapabilityTests : IDisposable
{
    private readonly PowerShellHost _host = new();

    public CapabilityTests()
    {
        var session = new VmiSession(new VmiGuest(new ReadOnlyDriver()), "bare", "a test driver", _host.Runspace.InstanceId);
        VmiSessionRegistry.Add(session);
        _host.Runspace.SessionStateProxy.SetVariable("s", session);
    }

    private sealed class ReadOnlyDriver : IVmiDriver, IVmiRead
    {
        public string Name => "Bare";

        public VmiInfo Info { get; } = new(4096, 12, new Gfn(15), 1);

        public bool TryMapPage(Gfn gfn, [NotNullWhen(true)] out MappedPage? page)
        {
            byte[] bytes = new byte[4096];
            bytes.AsSpan().Fill((byte)gfn.Value);
            page = new MappedPage(gfn, bytes);
            return true;
        }

        public void Dispose()
        {
        }
    }

    [Fact]
    public void PhysicalReadsWork()
    {
        VmiMemoryRecord r = (VmiMemoryRecord)_host.Run("Read-VmiMemory 0x3000 -Physical -Length 4 -Session $s").Single().BaseObject;
        Assert.Equal(new byte[] { 3, 3, 3, 3 }, r.Bytes);
    }

    [Fact]
    public void AVirtualAddressWithoutACr3SaysWhatToGive()
    {
        _host.Run("Read-VmiMemory 0x3000 -Length 4 -Session $s");
        ErrorRecord e = Assert.Single(_host.LastErrors);
        Assert.StartsWith(VmiErrorIds.RootNotPresent + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Contains("-Cr3", e.Exception.Message, StringComparison.Ordinal);
        Assert.Contains("-Physical", e.Exception.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Get-VmiRegister -Session $s", "reading registers")]
    [InlineData("Write-VmiMemory 0x1000 -Physical -Bytes 1 -Confirm:$false -Session $s", "writing memory")]
    [InlineData("Get-VmiMemoryAccess 1 -Session $s", "querying memory access")]
    [InlineData("Set-VmiMemoryAccess 1 -Access R -Session $s", "setting memory access")]
    [InlineData("New-VmiView -Session $s", "views")]
    [InlineData("Enable-VmiMonitor Cr3 -Session $s", "events")]
    [InlineData("Wait-VmiEvent -Timeout 1 -Session $s", "events")]
    [InlineData("Suspend-VmiDomain -Session $s", "controlling the VM")]
    public void WhatTheDriverCannotDoIsAClearNotSupportedError(string command, string what)
    {
        ErrorRecord? e = null;
        try
        {
            _host.Run(command);
            e = Assert.Single(_host.LastErrors);
        }
        catch (RuntimeException ex)
        {
            e = ex.ErrorRecord;
        }

        Assert.StartsWith(VmiErrorIds.NotSupported + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Equal(ErrorCategory.NotImplemented, e.CategoryInfo.Category);
        Assert.Contains("Bare driver does not support " + what, e.Exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DisconnectWithoutVmControlStillReleasesTheDriver()
    {
        _host.Run("Disconnect-VmiDomain -Session $s");
        Assert.Empty(_host.LastErrors);
        Assert.Empty(_host.Run("Get-VmiSession"));
    }

    public void Dispose() => _host.Dispose();
}
