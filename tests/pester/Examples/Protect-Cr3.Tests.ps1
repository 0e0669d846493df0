#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0.0' }
<#
    How to test a script that answers events: the demo guest (Connect-VmiDomain -Mock) raises scripted events
    when a monitor is enabled; assert on the records the script writes and on the guest afterwards (the CR3 the
    vCPU ended with, and the answers the mock driver recorded).
#>

BeforeAll {
    if (-not (Get-Module Vmi)) { Import-Module (Join-Path $PSScriptRoot '../../../artifacts/module/Vmi/Vmi.psd1') }
    . (Join-Path $PSScriptRoot 'Protect-Cr3.ps1')
    $Layout = [Vmi.Mock.DemoGuestLayout]
}

Describe 'Protect-Cr3' {
    BeforeEach { $session = Connect-VmiDomain -Mock }
    AfterEach { Disconnect-VmiDomain -Session $session }

    It 'denies a switch to a root that is not allowed, and the vCPU keeps its CR3' {
        $seen = Protect-Cr3 -Allowed $Layout::KernelCr3
        $seen.Denied | Should -BeTrue
        $seen.NewCr3 | Should -Be $Layout::ProcessACr3
        (Get-VmiRegister -Vcpu $seen.Vcpu).Cr3 | Should -Be $Layout::KernelCr3
    }

    It 'lets an allowed switch through' {
        $seen = Protect-Cr3 -Allowed $Layout::KernelCr3, $Layout::ProcessACr3
        $seen.Denied | Should -BeFalse
        (Get-VmiRegister -Vcpu $seen.Vcpu).Cr3 | Should -Be $Layout::ProcessACr3
    }

    It 'answers every event it took and leaves no monitor on' {
        $null = Protect-Cr3 -Allowed $Layout::KernelCr3
        $guest = $session.Core.Driver          # the Vmi.Mock.MockGuest behind the session
        $guest.EventsPending | Should -Be 0
        $guest.Responses[-1].Response.Flags | Should -Be 'Deny'
        Get-VmiSession -Default | ForEach-Object { $_.Core.Driver.EnabledMonitors } | Should -BeNullOrEmpty
    }
}
