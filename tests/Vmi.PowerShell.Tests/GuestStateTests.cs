using System.Management.Automation;
using Vmi.Core;
using Vmi.Mock;
using L = Vmi.Mock.DemoGuestLayout;

namespace Vmi.PowerShell.Tests;

public class RegisterTests : MockSessionTest
{
    [Fact]
    public void OneRecordPerVcpu()
    {
        VmiVcpuRegisters[] all = Host.RunClean("Get-VmiRegister").Select(o => (VmiVcpuRegisters)o.BaseObject).ToArray();
        Assert.Equal(L.VcpuCount, all.Length);
        for (int i = 0; i < L.VcpuCount; i++)
        {
            Assert.Equal((ushort)i, all[i].Vcpu);
            Assert.Equal(L.VcpuRip[i], all[i].Rip);
            Assert.Equal(L.VcpuRsp[i], all[i].Rsp);
            Assert.Equal(L.VcpuCr3[i], all[i].Cr3);
            Assert.Equal(L.VcpuRax[i], all[i].Rax);
        }
    }

    [Fact]
    public void TheRecordIsTheEnginesRegistersAndCannotBeChanged()
    {
        // PowerShell sets C# init-only properties unless told otherwise: the record must refuse, not change a copy.
        ErrorRecord e = Host.RunFailing("$r = Get-VmiRegister -Vcpu 0; $r.Rax = 5");
        Assert.Contains("Rax cannot be changed here", e.Exception.Message, StringComparison.Ordinal);
        Assert.Contains("Set-VmiRegister", e.Exception.Message, StringComparison.Ordinal);
        Assert.Equal(L.VcpuRax[0], Host.Get<ulong>("$r = Get-VmiRegister -Vcpu 0; try { $r.Rax = 5 } catch { }; $r.Rax"));
        Assert.Equal(L.VcpuRax[0], Guest.GetRegistersUnlogged(new VcpuId(0)).Rax);

        // It is the engine's record: equal to the driver's, usable where one is expected, changed by copy.
        VmiVcpuRegisters r = Host.Get<VmiVcpuRegisters>("Get-VmiRegister -Vcpu 1");
        Assert.Empty(Guest.GetRegistersUnlogged(new VcpuId(1)).Differences(r));
        Assert.Equal(0x77UL, Host.Get<ulong>("(Get-VmiRegister -Vcpu 1).With('rax', 0x77).Rax"));
        Assert.Equal(["Vcpu", "PagingMode", "TranslationRoot", "PagingFeatures", "Rax"],
            Host.RunClean("(Get-VmiRegister -Vcpu 1).PSObject.Properties.Name | Select-Object -First 5").Select(o => o.ToString()));
        Assert.Equal("mock", Host.Get<string>("(Get-VmiRegister -Vcpu 1).Session.Name"));
    }

    [Fact]
    public void NamedRegistersOfChosenVcpus()
    {
        VmiRegisterValue[] values = Host.RunClean("Get-VmiRegister -Vcpu 2,3 -Name rip, CR3").Select(o => (VmiRegisterValue)o.BaseObject).ToArray();
        Assert.Equal(["Rip", "Cr3", "Rip", "Cr3"], values.Select(v => v.Name));
        Assert.Equal([L.VcpuRip[2], L.VcpuCr3[2], L.VcpuRip[3], L.VcpuCr3[3]], values.Select(v => (ulong)v.Value));
    }

    [Fact]
    public void AnUnknownRegisterListsTheKnownOnes()
    {
        ErrorRecord e = Host.RunFailing("Get-VmiRegister -Name Rpi");
        Assert.StartsWith(VmiErrorIds.InvalidArgument + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Contains("Rip", e.Exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AMissingVcpuIsANonTerminatingError()
    {
        Assert.Single(Host.Run("Get-VmiRegister -Vcpu 0, 7"));
        ErrorRecord e = Assert.Single(Host.LastErrors);
        Assert.StartsWith(VmiErrorIds.VcpuNotFound + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Equal(new VcpuId(7), e.TargetObject);
    }

    [Fact]
    public void SetChangesOnlyTheNamedRegisters()
    {
        Vmi.Core.Arch.Amd64.Registers before = Guest.GetRegistersUnlogged(new VcpuId(1));
        VmiVcpuRegisters after = Host.Get<VmiVcpuRegisters>("Set-VmiRegister -Vcpu 1 -Values @{ Rax = 0x1234; R15 = 0xffffffffffffffff } -Confirm:$false -PassThru");
        Assert.Equal(0x1234UL, after.Rax);
        Assert.Equal(ulong.MaxValue, after.R15);
        Assert.Equal(before with { Rax = 0x1234, R15 = ulong.MaxValue }, Guest.GetRegistersUnlogged(new VcpuId(1)));

        Host.RunClean("Set-VmiRegister -Vcpu 1 -Name Rip -Value 0xffffffff81000200 -Confirm:$false");
        Assert.Equal(0xffffffff81000200UL, Guest.GetRegistersUnlogged(new VcpuId(1)).Rip);
    }

    [Fact]
    public void SetWhatIfChangesNothing()
    {
        Host.RunClean("Set-VmiRegister -Vcpu 0 -Name Rip -Value 0 -WhatIf");
        Assert.Equal(L.VcpuRip[0], Guest.GetRegistersUnlogged(new VcpuId(0)).Rip);
        Assert.Equal(0, Guest.CallCount(MockOperation.SetRegisters));
    }

    [Fact]
    public void SetRefusesUnknownRegistersBeforeChangingAnything()
    {
        ErrorRecord e = Host.RunFailing("Set-VmiRegister -Vcpu 0 -Values @{ Rax = 1; Foo = 2 } -Confirm:$false");
        Assert.StartsWith(VmiErrorIds.InvalidArgument + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Equal(0, Guest.CallCount(MockOperation.SetRegisters));
    }
}

public class MemoryAccessTests : MockSessionTest
{
    private const ulong Gfn = L.WatchedPa >> 12;

    [Fact]
    public void OneFrameARangeAndFramesFromThePipeline()
    {
        Host.RunClean($"Set-VmiMemoryAccess {Hex(Gfn)} -Access R");
        Assert.Equal(MemoryAccess.R, Guest.GetMemoryAccess(new Gfn(Gfn), View.Default));

        Host.RunClean($"Set-VmiMemoryAccess {Hex(Gfn + 1)} -Count 3 -Access RX");
        Assert.All(new ulong[] { 1, 2, 3 }, i => Assert.Equal(MemoryAccess.RX, Guest.GetMemoryAccess(new Gfn(Gfn + i), View.Default)));

        Host.RunClean($"{Hex(Gfn + 10)}, {Hex(Gfn + 12)} | Set-VmiMemoryAccess -Access None");
        Assert.Equal(MemoryAccess.None, Guest.GetMemoryAccess(new Gfn(Gfn + 10), View.Default));
        Assert.Equal(MemoryAccess.RWX, Guest.GetMemoryAccess(new Gfn(Gfn + 11), View.Default));
        Assert.Equal(MemoryAccess.None, Guest.GetMemoryAccess(new Gfn(Gfn + 12), View.Default));

        VmiPageAccess[] read = Host.RunClean($"Get-VmiMemoryAccess {Hex(Gfn)} -Count 4").Select(o => (VmiPageAccess)o.BaseObject).ToArray();
        Assert.Equal([MemoryAccess.R, MemoryAccess.RX, MemoryAccess.RX, MemoryAccess.RX], read.Select(r => r.Access));
        Assert.Equal(Gfn + 3, read[3].Gfn);
    }

    [Fact]
    public void AccessRecordsPipeIntoReadAsPhysicalMemory()
    {
        VmiMemoryRecord r = Host.Get<VmiMemoryRecord>($"Get-VmiMemoryAccess {Hex(L.KernelDataPa >> 12)} | Read-VmiMemory -Length 16");
        Assert.True(r.Physical);
        Assert.Equal(L.KernelDataPa, r.Address);
    }

    [Fact]
    public void GfnsBindFromTranslations()
    {
        Host.RunClean($"Resolve-VmiAddress {Hex(L.WatchedVa)} | Set-VmiMemoryAccess -Access RX");
        Assert.Equal(MemoryAccess.RX, Guest.GetMemoryAccess(new Gfn(Gfn), View.Default));
    }

    [Fact]
    public void PerView()
    {
        VmiViewInfo v = Host.Get<VmiViewInfo>("New-VmiView");
        Host.RunClean($"Set-VmiMemoryAccess {Hex(Gfn)} -Access R -View {v.View}");
        Assert.Equal(MemoryAccess.R, Guest.GetMemoryAccess(new Gfn(Gfn), new View(v.View)));
        Assert.Equal(MemoryAccess.RWX, Guest.GetMemoryAccess(new Gfn(Gfn), View.Default));
        Assert.Equal(MemoryAccess.R, Host.Get<VmiPageAccess>($"Get-VmiMemoryAccess {Hex(Gfn)} -View {v.View}").Access);
    }

    [Fact]
    public void WhatIfChangesNothing()
    {
        Host.RunClean($"Set-VmiMemoryAccess {Hex(Gfn)} -Count 16 -Access None -WhatIf");
        Assert.Equal(0, Guest.CallCount(MockOperation.SetMemoryAccess));
    }

    [Fact]
    public void AViewThatDoesNotExistIsNamed()
    {
        Host.Run($"Set-VmiMemoryAccess {Hex(Gfn)} -Access R -View 7");
        ErrorRecord e = Assert.Single(Host.LastErrors);
        Assert.StartsWith(VmiErrorIds.ViewNotFound + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
    }

    [Fact]
    public void ARangePastTheLastFrameIsRefused()
    {
        Host.Run($"Set-VmiMemoryAccess {Hex(L.MaxGfn)} -Count 2 -Access R");
        ErrorRecord e = Assert.Single(Host.LastErrors);
        Assert.StartsWith(VmiErrorIds.InvalidArgument + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
    }
}

public class ViewTests : MockSessionTest
{
    [Fact]
    public void CreateSwitchRemapResetRemove()
    {
        VmiViewInfo v = Host.Get<VmiViewInfo>("New-VmiView -DefaultAccess RX");
        Assert.Contains(new View(v.View), Guest.Views);
        Assert.Equal(MemoryAccess.RX, v.DefaultAccess);

        Host.RunClean($"Switch-VmiView {v.View}");
        Assert.All(Enumerable.Range(0, L.VcpuCount), i => Assert.Equal(new View(v.View), Guest.GetVcpuView(new VcpuId((ushort)i))));

        ulong gfn = L.KernelDataPa >> 12;
        Host.RunClean($"Set-VmiViewGfn -View {v.View} -Gfn {Hex(gfn)} -NewGfn {Hex(gfn + 1)}");
        Assert.Equal(new Gfn(gfn + 1), Guest.ResolveViewGfn(new View(v.View), new Gfn(gfn)));

        Host.RunClean($"Set-VmiViewGfn -View {v.View} -Gfn {Hex(gfn)} -Reset");
        Assert.Equal(new Gfn(gfn), Guest.ResolveViewGfn(new View(v.View), new Gfn(gfn)));

        Host.RunClean("Switch-VmiView 0");
        Host.RunClean($"$v = Get-VmiSession -Default; Remove-VmiView {v.View}");
        Assert.Empty(Guest.Views);
    }

    [Fact]
    public void ViewsPipeIntoRemove()
    {
        Host.RunClean("New-VmiView; New-VmiView | Remove-VmiView");
        Assert.Single(Guest.Views);
    }

    [Fact]
    public void WhatIfCreatesNothing()
    {
        Assert.Empty(Host.RunClean("New-VmiView -WhatIf"));
        Assert.Empty(Guest.Views);
    }

    [Fact]
    public void RemovingAViewThatDoesNotExistIsNonTerminating()
    {
        Host.Run("Remove-VmiView 5");
        ErrorRecord e = Assert.Single(Host.LastErrors);
        Assert.StartsWith(VmiErrorIds.ViewNotFound + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
    }
}

public class DomainAndCacheTests : MockSessionTest
{
    [Fact]
    public void SuspendAndResumeNest()
    {
        Host.RunClean("Suspend-VmiDomain; Suspend-VmiDomain");
        Assert.Equal(2, Guest.PauseCount);
        Host.RunClean("Resume-VmiDomain");
        Assert.Equal(1, Guest.PauseCount);
        Host.RunClean("Resume-VmiDomain -WhatIf");
        Assert.Equal(1, Guest.PauseCount);
        Host.RunClean("Resume-VmiDomain");
        Assert.Equal(0, Guest.PauseCount);
    }

    [Fact]
    public void ResumingARunningGuestIsAnError()
    {
        Host.Run("Resume-VmiDomain");
        Assert.Single(Host.LastErrors);
        Assert.Equal(0, Guest.PauseCount);
    }

    [Fact]
    public void CachesShowTheirMetricsAndClear()
    {
        Host.RunClean($"$null = Read-VmiMemory {Hex(L.AsciiStringVa)} -Length 8; $null = Read-VmiMemory {Hex(L.AsciiStringVa)} -Length 8");
        VmiCacheInfo[] caches = Host.RunClean("Get-VmiCache").Select(o => (VmiCacheInfo)o.BaseObject).ToArray();
        Assert.Equal(["Gfn", "V2P"], caches.Select(c => c.Cache));
        Assert.True(caches[0].Count > 0);
        Assert.True(caches[1].Hits > 0);
        Assert.Equal(Vmi.Core.VmiCore.DefaultCacheCapacity, caches[0].Capacity);

        VmiCacheInfo[] cleared = Host.RunClean("Clear-VmiCache -ResetStatistics -PassThru").Select(o => (VmiCacheInfo)o.BaseObject).ToArray();
        Assert.All(cleared, c => Assert.Equal(0, c.Count));
        Assert.All(cleared, c => Assert.Equal(0, c.Hits + c.Misses));
    }

    [Fact]
    public void CacheSizeIsChosenAtConnect()
    {
        Host.RunClean("$null = Connect-VmiDomain -Mock -CacheSize 16");
        Assert.All(Host.RunClean("Get-VmiCache").Select(o => (VmiCacheInfo)o.BaseObject), c => Assert.Equal(16, c.Capacity));
    }
}
