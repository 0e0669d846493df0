#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0.0' }
<#
    How to test your own VMI automation: run it against the demo guest (Connect-VmiDomain -Mock), whose every
    address and scripted event is a constant in [Vmi.Mock.DemoGuestLayout], and assert on what it returns and on
    what it did to the guest (the mock driver's Calls, Responses and PauseCount).
#>

BeforeAll {
    if (-not (Get-Module Vmi)) { Import-Module (Join-Path $PSScriptRoot '../../../artifacts/module/Vmi/Vmi.psd1') }
    . (Join-Path $PSScriptRoot 'Test-SyscallHook.ps1')
    $Layout = [Vmi.Mock.DemoGuestLayout]
}

Describe 'Test-SyscallHook' {
    BeforeEach {
        $session = Connect-VmiDomain -Mock
        $guest = $session.Core.Driver   # the Vmi.Mock.MockGuest behind the session
    }
    AfterEach { Disconnect-VmiDomain -Session $session }

    Context 'a clean guest' {
        It 'reports every vCPU as not hooked' {
            $result = Test-SyscallHook -ExpectedEntry $Layout::SyscallEntryVa
            $result.Count | Should -Be $Layout::VcpuCount
            $result.Hooked | Should -Not -Contain $true
        }

        It 'flags a vCPU whose LSTAR was changed' {
            Set-VmiRegister -Vcpu 2 -Name MsrLstar -Value $Layout::HookedSyscallEntryVa -Confirm:$false
            $hooked = Test-SyscallHook -ExpectedEntry $Layout::SyscallEntryVa | Where-Object Hooked
            $hooked.Vcpu | Should -Be 2
        }
    }

    Context 'watching for a hook being installed' {
        It 'reports and denies the write' {
            $writes = Test-SyscallHook -ExpectedEntry $Layout::SyscallEntryVa -WatchSeconds 2 | Where-Object Source -like 'write*'
            $writes.Vcpu | Should -Be $Layout::LstarWriteVcpu
            $writes.Hooked | Should -BeTrue

            # What the script did to the guest: the write was denied, and the monitor is off again.
            $guest.Responses[-1].Response.Flags | Should -Be 'Deny'
            $guest.EnabledMonitors | Should -BeNullOrEmpty
            (Get-VmiRegister -Vcpu $Layout::LstarWriteVcpu).MsrLstar | Should -Be $Layout::SyscallEntryVa
        }

        It 'leaves no vCPU waiting when it is stopped early' {
            Test-SyscallHook -ExpectedEntry $Layout::SyscallEntryVa -WatchSeconds 2 | Select-Object -First 1 | Out-Null
            $guest.EventsPending | Should -Be 0
        }
    }
}
