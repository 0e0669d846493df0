using System.Management.Automation;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;
using Vmi.Mock;
using L = Vmi.Mock.DemoGuestLayout;

namespace Vmi.PowerShell.Tests;

public class EventTests : MockSessionTest
{
    private ulong Cr3Of(int vcpu) => Guest.GetRegistersUnlogged(new VcpuId((ushort)vcpu)).Cr3;

    [Fact]
    public void AnEventIsATypedRecordAndContinuesByDefault()
    {
        VmiEventRecord e = Host.Get<VmiEventRecord>("Enable-VmiMonitor Cr3; Wait-VmiEvent -Timeout 5 -Count 1");
        Assert.Equal(new ControlRegisterWriteReason(ControlRegister.Cr3, L.ProcessACr3, L.KernelCr3), e.Reason); // the engine's reason itself
        Assert.Equal("ControlRegister", e.Reason.Name);
        Assert.Equal((ushort)L.Cr3WriteVcpu, e.Vcpu);
        Assert.Equal(1, e.Sequence);
        Assert.Equal(L.VcpuRip[L.Cr3WriteVcpu], e.Rip);

        MockEventAnswer answer = Assert.Single(Guest.Responses);
        Assert.Equal(MockAnswerSource.Handler, answer.Source);
        Assert.Equal(VmiEventResponseFlags.Continue, answer.Response.Flags);
        Assert.Equal(L.ProcessACr3, Cr3Of(L.Cr3WriteVcpu)); // the write went through
    }

    [Fact]
    public void TheResponseIsWhatThePipelineSetsOnTheRecord()
    {
        Host.RunClean("""
            Enable-VmiMonitor Cr3
            Wait-VmiEvent -Timeout 5 -Count 1 | ForEach-Object { if ($_.NewValue -ne 0) { $_.Response = 'Deny' } }
            """);
        MockEventAnswer answer = Assert.Single(Guest.Responses);
        Assert.Equal(VmiEventResponseFlags.Deny, answer.Response.Flags);
        Assert.Equal(L.KernelCr3, Cr3Of(L.Cr3WriteVcpu)); // denied: CR3 unchanged
    }

    [Fact]
    public void ContinueIsAResponseNameAndTheDefaultDisplaysAsContinue()
    {
        // The default, as the Response column of the table view shows it, then set by name.
        string[] shown = Host.RunClean("""
            Enable-VmiMonitor Cr3
            Wait-VmiEvent -Timeout 5 -Count 1 | ForEach-Object { "$($_.Response)"; $_.Response = 'Deny'; $_.Response = 'Continue'; "$($_.Response)" }
            """).Select(o => o.ToString()).ToArray();
        Assert.Equal(["Continue", "Continue"], shown);
        MockEventAnswer answer = Assert.Single(Guest.Responses);
        Assert.Equal(VmiEventResponseFlags.Continue, answer.Response.Flags);
        Assert.Equal(L.ProcessACr3, Cr3Of(L.Cr3WriteVcpu)); // continued: the write went through
    }

    [Fact]
    public void ResponseRegistersAreSetBeforeTheVcpuResumes()
    {
        Host.RunClean("""
            Enable-VmiMonitor Breakpoint
            Wait-VmiEvent -Timeout 5 -Count 1 | ForEach-Object {
                $_.ResponseRegisters = $_.Registers.With('Rax', 0x42); $_.Response = 'ReinjectInterrupt'
            }
            """);
        Assert.Equal(0x42UL, Guest.GetRegistersUnlogged(new VcpuId((ushort)L.BreakpointVcpu)).Rax);
        Interrupt reinjected = Assert.Single(Guest.GetInjectedInterrupts(new VcpuId((ushort)L.BreakpointVcpu)));
        Assert.Equal(Interrupt.BreakpointVector, reinjected.Vector);
    }

    [Fact]
    public void TheEventsRegistersCannotBeChangedInPlaceAndAResponseChangesGeneralPurposeOnes()
    {
        ulong cr3 = Guest.GetRegistersUnlogged(new VcpuId((ushort)L.BreakpointVcpu)).Cr3;
        Host.Run("""
            Enable-VmiMonitor Breakpoint
            Wait-VmiEvent -Timeout 5 -Count 1 | ForEach-Object {
                $_.Registers.Rax = 0x42
                $_.ResponseRegisters = $_.Registers.With('Cr3', 0x5000).With('Rax', 0x43)
            }
            """);
        Assert.Equal(2, Host.LastErrors.Count);
        Assert.Contains("cannot be changed here", Host.LastErrors[0].Exception.Message, StringComparison.Ordinal);
        Assert.StartsWith(VmiErrorIds.InvalidResponse, Host.LastErrors[1].FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Contains("Cr3 differ", Host.LastErrors[1].Exception.Message, StringComparison.Ordinal);

        // Refused as a whole and answered with Continue: neither register changed.
        Vmi.Core.Arch.Amd64.Registers after = Guest.GetRegistersUnlogged(new VcpuId((ushort)L.BreakpointVcpu));
        Assert.Equal((cr3, L.VcpuRax[L.BreakpointVcpu]), (after.Cr3, after.Rax));
        Assert.Equal(VmiEventResponseFlags.Continue, Assert.Single(Guest.Responses).Response.Flags);
    }

    [Fact]
    public void OneRecordTypeCarriesTheEnginesReasonAndItsFields()
    {
        Host.RunClean($"Enable-VmiMonitor Breakpoint, 'Msr:0xC0000082'; Set-VmiMemoryAccess {Hex(L.WatchedPa >> 12)} -Access R");
        PSObject[] output = Host.Run("Wait-VmiEvent -Timeout 5 -Count 3").ToArray();
        Assert.Empty(Host.LastErrors);
        VmiEventRecord[] events = output.Select(o => (VmiEventRecord)o.BaseObject).ToArray();
        Assert.Equal(3, events.Length);
        SoftwareBreakpointReason bp = Assert.Single(events.Select(e => e.Reason).OfType<SoftwareBreakpointReason>());
        Assert.Equal(L.BreakpointVa, bp.Va.Value);
        MsrWriteReason msr = Assert.Single(events.Select(e => e.Reason).OfType<MsrWriteReason>());
        Assert.Equal((L.LstarMsr, L.HookedSyscallEntryVa), (msr.Msr, msr.NewValue));
        VmiEventRecord mem = Assert.Single(events, e => e.Reason is MemoryAccessReason);
        Assert.Equal(new MemoryAccessReason(new Pa(L.WatchedWritePa), new Va(L.WatchedWriteVa), MemoryAccess.W), mem.Reason);
        Assert.Equal((L.WatchedWriteVa, false), (mem.Address, mem.Physical));
        Assert.Equal([1L, 2L, 3L], events.Select(e => e.Sequence));

        // The reason's fields are on the record for scripts ($_.NewValue), the record's own names first.
        PSObject msrRecord = Assert.Single(output, o => o.BaseObject is VmiEventRecord { Reason: MsrWriteReason });
        Assert.Equal(L.HookedSyscallEntryVa, (ulong)msrRecord.Properties["NewValue"].Value);
        Assert.Equal(L.LstarMsr, (uint)msrRecord.Properties["Msr"].Value);
        Assert.Null(msrRecord.Properties["Name"]);
        PSObject memRecord = Assert.Single(output, o => o.BaseObject is VmiEventRecord { Reason: MemoryAccessReason });
        Assert.Equal(MemoryAccess.W, memRecord.Properties["Access"].Value);
        Assert.Equal(new Gfn(L.WatchedWritePa >> 12), memRecord.Properties["Gfn"].Value);
    }

    [Fact]
    public void ReasonFiltersAndAnswersTheOthersUnseen()
    {
        Host.RunClean("Enable-VmiMonitor Cr3, Breakpoint");
        PSObject[] output = Host.RunClean("Wait-VmiEvent -Timeout 5 -Count 1 -Reason breakpoint").ToArray();
        Assert.Equal("Breakpoint", ((VmiEventRecord)Assert.Single(output).BaseObject).Reason.Name);
        Assert.Equal(1, ((VmiEventRecord)output[0].BaseObject).Sequence); // the CR3 write was not counted
        Assert.Equal([MockAnswerSource.Handler, MockAnswerSource.Fallback], Guest.Responses.Select(r => r.Source).Order());

        ErrorRecord e = Host.RunFailing("Wait-VmiEvent -Timeout 1 -Reason Msr, Nope");
        Assert.StartsWith(VmiErrorIds.InvalidArgument + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Contains("'Nope' is not an event reason", e.Exception.Message, StringComparison.Ordinal);
        Assert.Contains("Watchpoint", e.Exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ATimeoutWithoutEventsWritesNothing()
    {
        Assert.Empty(Host.RunClean("Wait-VmiEvent -Timeout 0.3"));
        Assert.True(Guest.CallCount(MockOperation.WaitForEvents) >= 1);
    }

    [Fact]
    public void CountTakesNoMoreEventsThanItWritesAndLeavesTheRestForTheNextWait()
    {
        Host.RunClean("Enable-VmiMonitor Cr3, Breakpoint, 'Msr:0xC0000082'");
        Assert.Equal(2, Guest.EventsPending); // vCPU 0's CR3 write and vCPU 1's breakpoint; vCPU 0's LSTAR write waits behind its CR3 write
        Assert.Single(Host.RunClean("Wait-VmiEvent -Timeout 5 -Count 1"));

        // Only the written event was answered; the others wait, unanswered, for the next Wait-VmiEvent.
        MockEventAnswer first = Assert.Single(Guest.Responses);
        Assert.Equal(MockAnswerSource.Handler, first.Source);
        Assert.Equal(2, Guest.EventsPending); // the breakpoint, and vCPU 0's LSTAR write now that its CR3 write was answered
        Assert.DoesNotContain(Host.LastVerbose, v => v.Contains("not written", StringComparison.Ordinal));

        object[] rest = Host.RunClean("Wait-VmiEvent -Timeout 5 -Count 2 | ForEach-Object { $_.Response = 'Deny'; $_ }").Select(o => o.BaseObject).ToArray();
        Assert.Equal(2, rest.Length);
        Assert.Equal(3, Guest.Responses.Count);
        Assert.All(Guest.Responses, a => Assert.Equal(MockAnswerSource.Handler, a.Source));
        Assert.Equal(2, Guest.Responses.Count(a => a.Response.Flags == VmiEventResponseFlags.Deny));

        Host.RunClean("Disconnect-VmiDomain");
        Assert.Equal(0, Guest.EventsPending);
    }

    [Fact]
    public void ADownstreamErrorAnswersEveryPendingEvent()
    {
        Host.RunClean("Enable-VmiMonitor Cr3, Breakpoint");
        ErrorRecord e = Host.RunFailing("Wait-VmiEvent -Timeout 5 | ForEach-Object { throw 'the script broke' }");
        Assert.Contains("the script broke", e.Exception.Message, StringComparison.Ordinal);
        Assert.Equal(0, Guest.EventsPending);
        Assert.NotEmpty(Guest.Responses);
        Assert.All(Guest.Responses, a => Assert.Equal(VmiEventResponseFlags.Continue, a.Response.Flags));
        Assert.Contains(Guest.Responses, a => a.Source == MockAnswerSource.Fallback);
    }

    [Fact]
    public void AnInvalidResponseIsReportedAndTheEventContinues()
    {
        Host.Run("Enable-VmiMonitor Cr3; Wait-VmiEvent -Timeout 5 -Count 1 | ForEach-Object { $_.Response = 'ToggleFastSinglestep' }");
        ErrorRecord e = Assert.Single(Host.LastErrors);
        Assert.StartsWith(VmiErrorIds.InvalidResponse + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
        MockEventAnswer answer = Assert.Single(Guest.Responses);
        Assert.Equal(VmiEventResponseFlags.Continue, answer.Response.Flags);
    }

    [Fact]
    public void AParallelBlockCanUseTheSessionWhileAnEventIsInThePipeline()
    {
        // The record is in the pipeline while its event waits for an answer; the session must be free meanwhile,
        // or the parallel block (another thread) waits for the session and Wait-VmiEvent waits for the block.
        Host.Runspace.SessionStateProxy.SetVariable("module", PowerShellHost.ModuleManifest);
        using var ps = System.Management.Automation.PowerShell.Create();
        ps.Runspace = Host.Runspace;
        ps.AddScript($$"""
            Enable-VmiMonitor Cr3
            Wait-VmiEvent -Timeout 10 -Count 1 | ForEach-Object {
                1 | ForEach-Object -TimeoutSeconds 20 -Parallel {
                    Import-Module $using:module
                    Read-VmiMemory {{Hex(L.AsciiStringVa)}} -As String -Session $using:s
                }
            }
            """);
        IAsyncResult run = ps.BeginInvoke();
        bool finished = run.AsyncWaitHandle.WaitOne(TimeSpan.FromSeconds(60));
        if (!finished)
        {
            ps.BeginStop(null, null); // and -TimeoutSeconds ends the parallel block
        }

        Assert.True(finished, "Wait-VmiEvent | ForEach-Object -Parallel { Read-VmiMemory } deadlocked on the session");
        object[] output = ps.EndInvoke(run).Select(o => o.BaseObject).ToArray();
        Assert.Empty(ps.Streams.Error);
        Assert.Equal([L.AsciiString], output);
        Assert.Equal(MockAnswerSource.Handler, Assert.Single(Guest.Responses).Source);
    }

    [Fact]
    public void AViewThatDoesNotExistIsAnInvalidResponseAndTheWaitGoesOn()
    {
        object[] written = Host.Run("""
            Enable-VmiMonitor Cr3, Breakpoint
            Wait-VmiEvent -Timeout 5 -Count 2 | ForEach-Object { $_.ResponseView = 9; $_ }
            """).Select(o => o.BaseObject).ToArray();
        Assert.Equal(2, written.Length); // the first bad answer did not end the wait
        Assert.Equal(2, Host.LastErrors.Count);
        Assert.All(Host.LastErrors, e =>
        {
            Assert.StartsWith(VmiErrorIds.InvalidResponse + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
            Assert.Contains("View 9", e.Exception.Message, StringComparison.Ordinal);
            Assert.IsAssignableFrom<VmiEventRecord>(e.TargetObject);
        });
        Assert.Equal(2, Guest.Responses.Count);
        Assert.All(Guest.Responses, a => Assert.Equal(VmiEventResponse.Continue, a.Response));
    }

    [Fact]
    public void StoppingAnIdleWaitEndsItPromptly()
    {
        using var ps = System.Management.Automation.PowerShell.Create();
        ps.Runspace = Host.Runspace;
        ps.AddScript("Wait-VmiEvent");
        IAsyncResult run = ps.BeginInvoke();
        Assert.True(SpinWait.SpinUntil(() => Guest.CallCount(MockOperation.WaitForEvents) > 0, TimeSpan.FromSeconds(30)));
        ps.Stop();
        Assert.True(run.AsyncWaitHandle.WaitOne(TimeSpan.FromSeconds(30)));
        Assert.Equal(PSInvocationState.Stopped, ps.InvocationStateInfo.State);
    }

    [Fact]
    public void StoppingWhileTheScriptHoldsAnEventAnswersIt()
    {
        using var ps = System.Management.Automation.PowerShell.Create();
        ps.Runspace = Host.Runspace;
        ps.AddScript("Enable-VmiMonitor Cr3, Breakpoint; Wait-VmiEvent | ForEach-Object { $global:held = $_; while ($true) { $null = 1 } }");
        IAsyncResult run = ps.BeginInvoke();
        Assert.True(SpinWait.SpinUntil(() => Guest.EventsPending == 0 && Guest.CallCount(MockOperation.WaitForEvents) > 0 && Guest.EnabledMonitors.Count == 2, TimeSpan.FromSeconds(30)));
        Thread.Sleep(200); // the loop is now holding the first event
        Assert.DoesNotContain(Guest.Responses, a => a.Source == MockAnswerSource.Handler);

        ps.Stop();
        Assert.True(run.AsyncWaitHandle.WaitOne(TimeSpan.FromSeconds(30)));
        Assert.Equal(PSInvocationState.Stopped, ps.InvocationStateInfo.State);
        Assert.Equal(0, Guest.EventsPending);
        Assert.NotEmpty(Guest.Responses);
        Assert.All(Guest.Responses, a => Assert.Equal(MockAnswerSource.Fallback, a.Source));
        Assert.Equal(VmiSessionState.Open, Session.State); // the session survives a stopped pipeline
    }

    [Fact]
    public void MonitorsEnableAndDisable()
    {
        VmiMonitorInfo m = Host.Get<VmiMonitorInfo>("Enable-VmiMonitor 'Msr:0xC0000082' -PassThru");
        Assert.Equal("Msr:0xC0000082", m.Monitor);
        Assert.True(m.Enabled);
        Assert.Contains(EventMonitor.MsrWrite(L.LstarMsr), Guest.EnabledMonitors);
        Host.RunClean("Enable-VmiMonitor Cpuid; Disable-VmiMonitor 'Msr:0xC0000082'");
        Assert.Equal([EventMonitor.Cpuid], Guest.EnabledMonitors);
        Host.RunClean("Disable-VmiMonitor -All");
        Assert.Empty(Guest.EnabledMonitors);
    }

    [Fact]
    public void AnUnknownMonitorListsTheKnownOnes()
    {
        Host.Run("Enable-VmiMonitor Cr9, Cpuid");
        ErrorRecord e = Assert.Single(Host.LastErrors);
        Assert.StartsWith(VmiErrorIds.InvalidArgument + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Contains("Breakpoint", e.Exception.Message, StringComparison.Ordinal);
        Assert.Equal([EventMonitor.Cpuid], Guest.EnabledMonitors); // the good one was still enabled
    }

    [Fact]
    public void EnableMonitorWhatIfChangesNothing()
    {
        Host.RunClean("Enable-VmiMonitor Cr3 -WhatIf");
        Assert.Empty(Guest.EnabledMonitors);
    }

    [Fact]
    public void AMemoryAccessEventPipesIntoReadAtTheAccessedAddress()
    {
        VmiMemoryRecord r = Host.Get<VmiMemoryRecord>($"Set-VmiMemoryAccess {Hex(L.WatchedPa >> 12)} -Access R; Wait-VmiEvent -Timeout 5 -Count 1 | Read-VmiMemory -Length 8");
        Assert.Equal(L.WatchedWriteVa, r.Address);
        Assert.False(r.Physical);
        byte[] expected = new byte[8];
        Guest.ReadPhysical(new Pa(L.WatchedWritePa), expected);
        Assert.Equal(expected, r.Bytes);
    }
}
