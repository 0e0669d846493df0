#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0.0' }
<#
    The common cmdlets, one suite for every kind of target: the same It blocks run against the built-in demo guest (the
    default) and against a live QEMU guest when VMI_PESTER_QMP names its QMP socket. The QEMU live lane of
    tests/Vmi.Qemu.Tests runs this file both ways under the built vmi and compares the counts; it passes the live guest's
    own kallsyms addresses in VMI_PESTER_CODE (a kernel function its loop calls) and VMI_PESTER_DATA (jiffies).

    Each target brings the addresses to use and a reference that is not the engine: the demo guest's layout constants
    and its memory read directly; for QEMU, QEMU's own monitor (gva2gpa, xp, info registers, query-status).
#>

BeforeDiscovery {
    $TargetName = if ($env:VMI_PESTER_QMP) { 'QEMU' } else { 'Mock' }
}

BeforeAll {
    if (-not (Get-Module Vmi)) { Import-Module (Join-Path $PSScriptRoot '../../artifacts/module/Vmi/Vmi.psd1') }

    function Get-Hex([string] $text) { [ulong]::Parse(($text -replace '^0x', ''), 'HexNumber') }

    if ($env:VMI_PESTER_QMP) {
        # A live QEMU guest. Reference: QEMU's own monitor, through the session's QMP connection (QMP serves one client).
        $Target = @{
            Driver  = 'QEMU'
            Connect = { Connect-VmiDomain -Qmp $env:VMI_PESTER_QMP }
            CodeVa  = Get-Hex $env:VMI_PESTER_CODE
            DataVa  = Get-Hex $env:VMI_PESTER_DATA
            ScratchPa = [ulong] 0x3000200 # a frame in the middle of RAM, restored before the guest runs again
            VcpuCount = { ($script:Qmp.Execute('query-cpus-fast')).Count }
            Pa      = { param([ulong] $va)
                $text = $script:Qmp.Hmp(('gva2gpa 0x{0:x}' -f $va), 0)
                if ($text -notmatch 'gpa: 0x([0-9a-f]+)') { throw "QEMU cannot translate 0x{0:x}: $text" -f $va }
                Get-Hex $Matches[1] }
            U64     = { param([ulong] $pa)
                $text = $script:Qmp.Hmp(('xp /1gx 0x{0:x}' -f $pa))
                if ($text -notmatch ':\s*0x([0-9a-f]{16})') { throw "QEMU cannot read 0x{0:x}: $text" -f $pa }
                Get-Hex $Matches[1] }
            Cr3     = { param([int] $vcpu)
                if ($script:Qmp.Hmp('info registers', $vcpu) -notmatch 'CR3=([0-9a-f]+)') { throw 'no CR3 in info registers' }
                Get-Hex $Matches[1] }
            IsPaused = { $script:Qmp.Status() -ne 'running' }
            Execute = { } # the guest's loop calls the function by itself
            Write   = { } # ...and its timer writes jiffies
        }
    }
    else {
        # The demo guest. Reference: its layout constants and its memory read directly, not through the engine.
        $L = [Vmi.Mock.DemoGuestLayout]
        $Target = @{
            Driver  = 'Mock'
            Connect = { Connect-VmiDomain -Mock }
            CodeVa  = $L::BreakpointVa
            DataVa  = $L::WatchedWriteVa
            ScratchPa = $L::WatchedPa + 0x200
            VcpuCount = { $L::VcpuCount }
            Pa      = { param([ulong] $va)
                switch ($va) {
                    $L::BreakpointVa { $L::KernelTextPa + ($L::BreakpointVa - $L::KernelTextVa) }
                    $L::WatchedWriteVa { $L::WatchedWritePa }
                    default { throw 'no reference for 0x{0:x}' -f $va }
                } }
            U64     = { param([ulong] $pa) $script:Mock.Memory.ReadU64([Vmi.Core.Pa]::new($pa)) }
            Cr3     = { param([int] $vcpu) @($L::VcpuCr3)[$vcpu] }
            IsPaused = { $script:Mock.PauseCount -gt 0 }
            Execute = { $null = $script:Mock.ExecuteAt([ushort] 0, [Vmi.Core.Va]::new($Target.CodeVa)) }
            Write   = { $null = $script:Mock.AccessAt([ushort] 1, [Vmi.Core.Va]::new($Target.DataVa), 8, 'W') }
        }
    }

    function Connect-Target {
        $s = & $Target.Connect
        $script:Qmp = if ($Target.Driver -eq 'QEMU') { $s.Guest.GetDriver[Vmi.Qemu.QemuDriver]().Qmp }
        $script:Mock = if ($Target.Driver -eq 'Mock') { $s.Guest.GetDriver[Vmi.Mock.MockGuest]() }
        $s
    }
}

Describe 'The common cmdlets on the <TargetName> target' -ForEach @(@{ TargetName = $TargetName }) {
    Context 'Connect-VmiDomain' {
        AfterAll { Disconnect-VmiDomain -All }

        It 'opens a session of the driver with every vCPU' {
            $s = Connect-Target
            $s.State | Should -Be 'Open'
            $s.Driver | Should -Be $Target.Driver
            @(Get-VmiRegister).Count | Should -Be (& $Target.VcpuCount)
        }
    }

    Context 'with the guest suspended' {
        BeforeAll {
            $null = Connect-Target
            Suspend-VmiDomain
        }

        AfterAll {
            Resume-VmiDomain
            Disconnect-VmiDomain -All
        }

        It 'Suspend-VmiDomain stopped the guest' {
            & $Target.IsPaused | Should -BeTrue
        }

        It 'Get-VmiRegister gives each vCPU''s CR3 as the reference does' {
            for ($v = 0; $v -lt (& $Target.VcpuCount); $v++) {
                (Get-VmiRegister -Vcpu $v).Cr3 | Should -Be (& $Target.Cr3 $v)
            }
        }

        It 'Resolve-VmiAddress translates <Name> as the reference does' -TestCases @(
            @{ Name = 'kernel code'; Key = 'CodeVa' }
            @{ Name = 'kernel data'; Key = 'DataVa' }
        ) {
            $va = $Target[$Key]
            $t = Resolve-VmiAddress $va
            $t.Pa | Should -Be (& $Target.Pa $va)
            $t.Gfn | Should -Be ((& $Target.Pa $va) -shr 12)
        }

        It 'Read-VmiMemory reads <Name> as the reference does' -TestCases @(
            @{ Name = 'kernel code'; Key = 'CodeVa' }
            @{ Name = 'kernel data'; Key = 'DataVa' }
        ) {
            $va = $Target[$Key]
            Read-VmiMemory $va -As UInt64 | Should -Be (& $Target.U64 (& $Target.Pa $va))
            (Read-VmiMemory $va -Length 8).Bytes | Should -Be ([BitConverter]::GetBytes((& $Target.U64 (& $Target.Pa $va))))
        }

        It 'Write-VmiMemory writes what the reference reads back, and restores it' {
            $pa = $Target.ScratchPa
            $original = Read-VmiMemory $pa -Physical -As UInt64
            $original | Should -Be (& $Target.U64 $pa)
            $pattern = $original -bxor [ulong] 0x5a5aa5a50123cdef
            try {
                Write-VmiMemory $pa -Physical -Value $pattern -As UInt64 -Confirm:$false
                & $Target.U64 $pa | Should -Be $pattern
            }
            finally {
                Write-VmiMemory $pa -Physical -Value $original -As UInt64 -Confirm:$false
            }
            & $Target.U64 $pa | Should -Be $original
        }

        It 'Find-VmiMemory finds the code''s own bytes at its address' {
            $bytes = (Read-VmiMemory $Target.CodeVa -Length 12).Bytes
            $hit = Find-VmiMemory -Pattern $bytes -Address $Target.CodeVa -Length 0x1000 -First 1
            $hit.Address | Should -Be $Target.CodeVa
        }
    }

    Context 'breakpoints and watchpoints' {
        BeforeEach { $null = Connect-Target }
        AfterEach { Disconnect-VmiDomain -All }

        It 'a breakpoint on kernel code hits with RIP there and counts' {
            $bp = Set-VmiBreakpoint $Target.CodeVa
            & $Target.Execute
            $e = @(Wait-VmiEvent -Count 1 -Timeout 120)
            $e.Count | Should -Be 1
            $e[0].Reason.Name | Should -Be 'Breakpoint'
            $e[0].Registers.Rip | Should -Be $Target.CodeVa
            (Get-VmiBreakpoint -Id $bp.Id).Hits | Should -Be 1
            Get-VmiBreakpoint | Remove-VmiBreakpoint
            @(Get-VmiBreakpoint).Count | Should -Be 0
        }

        It 'a write watchpoint on kernel data fires with the watched address' {
            $wp = Set-VmiBreakpoint $Target.DataVa -Access Write -Length 8
            $wp.Access | Should -Be 'Write'
            & $Target.Write
            $e = @(Wait-VmiEvent -Count 1 -Timeout 120)
            $e.Count | Should -Be 1
            $e[0].Reason.Name | Should -Be 'Watchpoint'
            $e[0].Address | Should -Be $Target.DataVa
            $e[0].Access | Should -Be 'Write'
            (Get-VmiBreakpoint -Id $wp.Id).Hits | Should -Be 1
            Remove-VmiBreakpoint -Id $wp.Id
        }

        It 'refuses a misaligned watchpoint with the fix' {
            Set-VmiBreakpoint ($Target.DataVa + 4) -Access Write -Length 8 -ErrorVariable err -ErrorAction SilentlyContinue
            "$($err[0])" | Should -BeLike '*multiple of 8*'
            @(Get-VmiBreakpoint).Count | Should -Be 0
        }
    }
}
