using System.Management.Automation;
using Vmi.Core;
using Vmi.Mock;

namespace Vmi.PowerShell.Tests;

public class SessionTests : MockSessionTest
{
    [Fact]
    public void ConnectReturnsAnOpenSessionThatBecomesTheDefault()
    {
        Assert.Equal(VmiSessionState.Open, Session.State);
        Assert.Equal("Mock", Session.Driver);
        Assert.Equal(DemoGuestLayout.VcpuCount, Session.VcpuCount);
        Assert.False(Session.ReadOnly);
        Assert.Same(Session, Host.Get<VmiSession>("Get-VmiSession -Default"));

        VmiSession second = Host.Get<VmiSession>("Connect-VmiDomain -Mock -SessionName second");
        Assert.Same(second, Host.Get<VmiSession>("Get-VmiSession -Default"));
        Assert.Equal(2, Host.Run("Get-VmiSession").Count);
        Assert.Same(second, Host.Get<VmiSession>("Get-VmiSession -Name sec*"));
        Assert.Same(Session, Host.Get<VmiSession>($"Get-VmiSession -Id {Session.Id}"));
    }

    [Fact]
    public void SessionParameterTakesASessionItsIdOrItsName()
    {
        Host.RunClean("$t = Connect-VmiDomain -Mock -SessionName other");
        Assert.Equal(DemoGuestLayout.AsciiString, Host.Get<string>($"Read-VmiMemory {Hex(DemoGuestLayout.AsciiStringVa)} -As String -Session $s"));
        Assert.Equal(DemoGuestLayout.AsciiString, Host.Get<string>($"Read-VmiMemory {Hex(DemoGuestLayout.AsciiStringVa)} -As String -Session {Session.Id}"));
        Assert.Equal(DemoGuestLayout.AsciiString, Host.Get<string>($"Read-VmiMemory {Hex(DemoGuestLayout.AsciiStringVa)} -As String -Session mock"));

        ErrorRecord e = Host.RunFailing("Read-VmiMemory 0x1000 -Session nosuchsession");
        Assert.Contains("nosuchsession", e.Exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void WithoutASessionEveryCmdletSaysHowToConnect()
    {
        Host.RunClean("Disconnect-VmiDomain");
        ErrorRecord e = Host.RunFailing("Read-VmiMemory 0x1000");
        Assert.StartsWith(VmiErrorIds.NoSession + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Equal(ErrorCategory.ResourceUnavailable, e.CategoryInfo.Category);
        Assert.Contains("Connect-VmiDomain", e.Exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AClosedSessionIsRefusedWithItsOwnError()
    {
        Host.RunClean("Disconnect-VmiDomain -Session $s");
        ErrorRecord e = Host.RunFailing("Get-VmiRegister -Session $s");
        Assert.StartsWith(VmiErrorIds.SessionClosed + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Same(Session, e.TargetObject);
    }

    [Fact]
    public void DisconnectRestoresTheGuest()
    {
        MockGuest guest = Guest;
        Host.RunClean($"""
            Suspend-VmiDomain
            Enable-VmiMonitor Cr3, Breakpoint
            $v = New-VmiView
            Set-VmiMemoryAccess {Hex(DemoGuestLayout.WatchedPa >> 12)} -Access R
            """);
        Assert.Equal(1, guest.PauseCount);
        Assert.Equal(2, guest.EnabledMonitors.Count);
        Assert.Single(guest.Views);

        Host.RunClean("$s | Disconnect-VmiDomain");

        Assert.Equal(VmiSessionState.Closed, Session.State);
        Assert.Equal(1, guest.CallCount(MockOperation.ResetState));
        Assert.Equal(1, guest.CallCount(MockOperation.Dispose));
        Assert.Equal(0, guest.PauseCount);
        Assert.Empty(guest.EnabledMonitors);
        Assert.Empty(guest.Views);
        // The guest is restored before the driver is released (the mock's ResetState restores access to RWX).
        MockOperation[] ops = guest.Calls.Select(c => c.Operation).ToArray();
        Assert.True(Array.IndexOf(ops, MockOperation.ResetState) < Array.IndexOf(ops, MockOperation.Dispose));
        Assert.Empty(Host.Run("Get-VmiSession"));
    }

    [Fact]
    public void DisconnectWhatIfLeavesTheSessionOpen()
    {
        Host.RunClean("Disconnect-VmiDomain -WhatIf");
        Assert.Equal(VmiSessionState.Open, Session.State);
        Assert.Equal(0, Guest.CallCount(MockOperation.ResetState));
    }

    [Fact]
    public void DisconnectAllClosesEverySessionOfTheRunspace()
    {
        VmiSession other = Host.Get<VmiSession>("Connect-VmiDomain -Mock -SessionName other");
        Host.RunClean("Disconnect-VmiDomain -All");
        Assert.Equal(VmiSessionState.Closed, Session.State);
        Assert.Equal(VmiSessionState.Closed, other.State);
        Assert.Null(Host.Run("Get-VmiSession -Default").SingleOrDefault());
    }

    [Fact]
    public void DisconnectingTheDefaultFallsBackToTheOlderSession()
    {
        Host.RunClean("$t = Connect-VmiDomain -Mock -SessionName newer; Disconnect-VmiDomain -Session $t");
        Assert.Same(Session, Host.Get<VmiSession>("Get-VmiSession -Default"));
    }

    [Fact]
    public void ClosingTheRunspaceRestoresTheGuest()
    {
        MockGuest guest = Guest;
        Host.RunClean("Suspend-VmiDomain; Enable-VmiMonitor Cr3");
        Assert.Equal(1, guest.PauseCount);

        Host.Runspace.Close();

        Assert.Equal(VmiSessionState.Closed, Session.State);
        Assert.Equal(1, guest.CallCount(MockOperation.ResetState));
        Assert.Equal(0, guest.PauseCount);
        Assert.Empty(guest.EnabledMonitors);
        Assert.True(guest.IsDisposed);
        Assert.DoesNotContain(Session, VmiSessionRegistry.All);
    }

    [Fact]
    public void RemovingTheModuleRestoresTheGuest()
    {
        MockGuest guest = Guest;
        Host.RunClean("Suspend-VmiDomain; Remove-Module Vmi");
        Assert.Equal(VmiSessionState.Closed, Session.State);
        Assert.Equal(0, guest.PauseCount);
    }

    [Fact]
    public void AFailedRestoreIsReportedAndTheDriverStillReleased()
    {
        MockGuest guest = Guest;
        guest.FailNext(MockOperation.ResetState, new VmiDriverException("hypervisor said no"));
        Host.Run("Disconnect-VmiDomain");
        ErrorRecord e = Assert.Single(Host.LastErrors);
        Assert.StartsWith(VmiErrorIds.RestoreFailed + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Contains("hypervisor said no", e.Exception.Message, StringComparison.Ordinal);
        Assert.True(guest.IsDisposed);
        Assert.Equal(VmiSessionState.Closed, Session.State);
    }

    [Fact]
    public void AFailedRestoreStillResumesTheGuestAndSaysWhatWasNotRestored()
    {
        MockGuest guest = Guest;
        Host.RunClean("Suspend-VmiDomain; Suspend-VmiDomain");
        Assert.Equal(2, guest.PauseCount);
        guest.FailNext(MockOperation.ResetState, new VmiDriverException("hypervisor said no"));
        Host.Run("Disconnect-VmiDomain");
        ErrorRecord e = Assert.Single(Host.LastErrors);
        Assert.StartsWith(VmiErrorIds.RestoreFailed + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Contains("hypervisor said no", e.Exception.Message, StringComparison.Ordinal);
        Assert.Contains("Monitors, memory access, views", e.Exception.Message, StringComparison.Ordinal);
        Assert.Contains("2 pause(s)", e.Exception.Message, StringComparison.Ordinal);
        Assert.Equal(0, guest.PauseCount);
        Assert.True(guest.IsDisposed);
    }

    [Theory]
    [InlineData("Write-VmiMemory 0x1000 -Bytes 1,2 -Physical -Confirm:$false")]
    [InlineData("Set-VmiRegister -Vcpu 0 -Name Rax -Value 1 -Confirm:$false")]
    [InlineData("Set-VmiMemoryAccess 0x1200 -Access R")]
    [InlineData("New-VmiView")]
    [InlineData("Remove-VmiView 1")]
    [InlineData("Switch-VmiView 0")]
    [InlineData("Set-VmiViewGfn -View 1 -Gfn 0x1200 -NewGfn 0x1201")]
    [InlineData("Set-VmiViewGfn -View 1 -Gfn 0x1200 -Reset")]
    [InlineData("Enable-VmiMonitor Cr3")]
    [InlineData("Disable-VmiMonitor -All")]
    [InlineData("Suspend-VmiDomain")]
    [InlineData("Resume-VmiDomain")]
    public void AReadOnlySessionRefusesEveryChange(string command)
    {
        VmiSession ro = Host.Get<VmiSession>("Connect-VmiDomain -Mock -ReadOnly");
        var guest = ro.Guest.GetDriver<MockGuest>()!;
        guest.ClearCalls();
        ErrorRecord e = Host.RunFailing(command);
        Assert.StartsWith(VmiErrorIds.ReadOnly + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Equal(ErrorCategory.PermissionDenied, e.CategoryInfo.Category);
        Assert.Contains("read-only", e.Exception.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(guest.Calls, c => c.Operation is not (MockOperation.MapPage or MockOperation.GetRegisters or MockOperation.GetMemoryAccess));
    }

    [Fact]
    public void AReadOnlySessionStillReads()
    {
        Host.RunClean("$null = Connect-VmiDomain -Mock -ReadOnly");
        Assert.Equal(DemoGuestLayout.AsciiString, Host.Get<string>($"Read-VmiMemory {Hex(DemoGuestLayout.AsciiStringVa)} -As String"));
    }

    [Fact]
    public void ANameTwoSessionsShareIsAnErrorNamingTheirIds()
    {
        VmiSession b1 = Host.Get<VmiSession>("Connect-VmiDomain -Mock -SessionName b");
        VmiSession b2 = Host.Get<VmiSession>("Connect-VmiDomain -Mock -SessionName b");
        ErrorRecord e = Host.RunFailing("Get-VmiRegister -Vcpu 0 -Session b");
        Assert.Contains("More than one open session is named 'b'", e.Exception.Message, StringComparison.Ordinal);
        Assert.Contains($"Ids {b1.Id}, {b2.Id}", e.Exception.Message, StringComparison.Ordinal);
        Assert.Equal(ErrorCategory.InvalidData, e.CategoryInfo.Category);

        // The Id picks one; a unique name still works.
        Assert.NotEmpty(Host.RunClean($"Get-VmiRegister -Vcpu 0 -Session {b2.Id}"));
        Host.RunClean($"Disconnect-VmiDomain -Session {b1.Id}");
        Assert.NotEmpty(Host.RunClean("Get-VmiRegister -Vcpu 0 -Session b"));
    }

    [Fact]
    public void ParallelRunspacesShareOneSessionSafely()
    {
        // ForEach-Object -Parallel runs each block in its own runspace and thread; the session serialises the engine.
        Host.Runspace.SessionStateProxy.SetVariable("module", PowerShellHost.ModuleManifest);
        object[] results = Host.Run($$"""
            1..8 | ForEach-Object -ThrottleLimit 4 -Parallel {
                Import-Module $using:module
                $s = $using:s
                1..20 | ForEach-Object { Read-VmiMemory {{Hex(DemoGuestLayout.AsciiStringVa)}} -As String -Session $s }
            }
            """).Select(o => o.BaseObject).ToArray();
        Assert.Empty(Host.LastErrors);
        Assert.Equal(160, results.Length);
        Assert.All(results, r => Assert.Equal(DemoGuestLayout.AsciiString, r));
        Assert.Equal(VmiSessionState.Open, Session.State); // other runspaces closing do not close the session they borrowed
    }
}
