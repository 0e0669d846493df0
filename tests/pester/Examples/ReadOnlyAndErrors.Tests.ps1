#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0.0' }
<#
    How to test what a script does when things go wrong: a read-only session refuses every change, and each error
    carries a stable id (Vmi.ReadOnly, Vmi.PageFault, ...), a category and the object that caused it. Match on
    the id ("Vmi.ReadOnly,<cmdlet class>": match 'Vmi.ReadOnly,*'), never on the message text.
#>

BeforeAll {
    if (-not (Get-Module Vmi)) { Import-Module (Join-Path $PSScriptRoot '../../../artifacts/module/Vmi/Vmi.psd1') }
    $Layout = [Vmi.Mock.DemoGuestLayout]
}

Describe 'A read-only session' {
    BeforeAll { $ro = Connect-VmiDomain -Mock -ReadOnly }
    AfterAll { Disconnect-VmiDomain -Session $ro }

    It 'reads as any session does' {
        Read-VmiMemory $Layout::AsciiStringVa -As String -Session $ro | Should -Be $Layout::AsciiString
    }

    It 'refuses <Name> with Vmi.ReadOnly' -TestCases @(
        @{ Name = 'a memory write'; Change = { Write-VmiMemory $Layout::AsciiStringVa -Bytes 0 -Session $ro -Confirm:$false } }
        @{ Name = 'a register write'; Change = { Set-VmiRegister -Vcpu 0 -Name Rax -Value 1 -Session $ro -Confirm:$false } }
        @{ Name = 'a monitor'; Change = { Enable-VmiMonitor Cr3 -Session $ro } }
    ) {
        { & $Change } | Should -Throw -ErrorId 'Vmi.ReadOnly,*'
    }

    It 'leaves the memory as it was' {
        { Write-VmiMemory $Layout::AsciiStringVa -Bytes 0 -Session $ro -Confirm:$false } | Should -Throw
        Read-VmiMemory $Layout::AsciiStringVa -As String -Session $ro | Should -Be $Layout::AsciiString
    }
}

Describe 'Errors a script can handle' {
    BeforeAll { $null = Connect-VmiDomain -Mock }
    AfterAll { Disconnect-VmiDomain }

    It 'a page fault is non-terminating: the script goes on, and -ErrorVariable has it' {
        $out = Read-VmiMemory $Layout::UnmappedVa -Length 4 -ErrorVariable failures -ErrorAction SilentlyContinue
        $out | Should -BeNullOrEmpty
        $failures.Count | Should -Be 1
        $failures[0].FullyQualifiedErrorId | Should -BeLike 'Vmi.PageFault,*'
        $failures[0].CategoryInfo.Category | Should -Be 'ReadError'
    }

    It 'a page fault stops a script that asked for -ErrorAction Stop, and try/catch sees the id' {
        $caught = try { Read-VmiMemory $Layout::UnmappedVa -Length 4 -ErrorAction Stop; 'not thrown' } catch { $_.FullyQualifiedErrorId }
        $caught | Should -BeLike 'Vmi.PageFault,*'
    }

    It 'an unknown vCPU is Vmi.VcpuNotFound with the vCPU as target' {
        $null = Get-VmiRegister -Vcpu 99 -ErrorVariable failures -ErrorAction SilentlyContinue
        $failures[0].FullyQualifiedErrorId | Should -BeLike 'Vmi.VcpuNotFound,*'
        "$($failures[0].TargetObject)" | Should -Be '99'   # a vCPU number (UInt16)
    }

    It 'a closed session is Vmi.SessionClosed' {
        $gone = Connect-VmiDomain -Mock
        Disconnect-VmiDomain -Session $gone
        { Get-VmiRegister -Session $gone } | Should -Throw -ErrorId 'Vmi.SessionClosed,*'
    }
}
