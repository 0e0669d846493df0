#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0.0' }
<#
    Linux awareness on the demo guest's small Linux-like kernel (Vmi.Mock.Linux.DemoLinuxLayout):
    kallsyms and BTF found in guest memory, no profile. Run: Invoke-Pester ./tests/pester
#>

BeforeAll {
    if (-not (Get-Module Vmi)) { Import-Module (Join-Path $PSScriptRoot '../../artifacts/module/Vmi/Vmi.psd1') }
    $Linux = [Vmi.Mock.Linux.DemoLinuxLayout]
    $Layout = [Vmi.Mock.DemoGuestLayout]
}

Describe 'Get-VmiKernel' {
    BeforeAll { $null = Connect-VmiDomain -Mock }
    AfterAll { Disconnect-VmiDomain -All }

    It 'finds the kernel from the system-call entry point, with its banner' {
        $k = Get-VmiKernel
        $k.Release | Should -Be '6.6.0-vmi-demo'
        $k.TextBase | Should -Be $Layout::KernelTextVa
        $k.TextFoundBy | Should -Be 'IA32_LSTAR'
        $k.TypeSource | Should -Match '^BTF in guest memory'
    }
}

Describe 'Get-VmiSymbol' {
    BeforeAll { $null = Connect-VmiDomain -Mock }
    AfterAll { Disconnect-VmiDomain -All }

    It 'resolves <Name>' -TestCases @(
        # Test cases are built at discovery, before BeforeAll runs: name the layout field, read it in the test.
        @{ Name = '__x64_sys_openat'; Field = 'SysOpenatVa'; Expected = 0xffffffff81001000u }
        @{ Name = 'init_task'; Field = 'InitTaskVa' }
    ) {
        if ($null -eq $Expected) { $Expected = $Linux::$Field }
        (Get-VmiSymbol $Name).Address | Should -Be $Expected
    }

    It 'names an address as symbol+offset' {
        (Get-VmiSymbol -Address 0xffffffff81001021).ToString() | Should -Be '__x64_sys_openat+0x21'
    }

    It 'pipes into Read-VmiMemory as an address' {
        Get-VmiSymbol linux_banner | Read-VmiMemory -As String | Should -Be $Layout::KernelBanner
    }

    It 'reports an unknown name as an error with its id' {
        { Get-VmiSymbol no_such_symbol -ErrorAction Stop } | Should -Throw -ErrorId 'Vmi.SymbolNotFound,Vmi.PowerShell.Commands.GetVmiSymbolCommand'
    }
}

Describe 'Get-VmiProcess' {
    BeforeAll { $null = Connect-VmiDomain -Mock }
    AfterAll { Disconnect-VmiDomain -All }

    It 'lists every task with its parent' {
        $p = Get-VmiProcess
        $p.Pid | Should -Be @(0, 1, 2, 3, 412, 1337)
        ($p | Where-Object Pid -eq 1337).Ppid | Should -Be 412
    }

    It 'reads a process''s memory through its own Cr3' {
        Get-VmiProcess -Name sshd | Read-VmiMemory $Layout::UserSecretVa -As String | Should -Be $Layout::ProcessASecret
    }

    It 'shows kernel threads without a Cr3' {
        (Get-VmiProcess -Id 2).Cr3 | Should -BeNullOrEmpty
    }
}

Describe 'Get-VmiModule' {
    BeforeAll { $null = Connect-VmiDomain -Mock }
    AfterAll { Disconnect-VmiDomain -All }

    It 'lists the modules with base and size' {
        $m = Get-VmiModule
        $m.Name | Should -Be @('vmi_demo', 'nls_ascii', 'qemu_fw_cfg')
        ($m | Where-Object Name -eq 'qemu_fw_cfg').Size | Should -Be 20480
    }

    It 'says which modules carry their own BTF' {
        Get-VmiModule | Where-Object HasBtf | ForEach-Object Name | Should -Be @('vmi_demo', 'qemu_fw_cfg')
        (Get-VmiModule nls_ascii).BtfTypeCount | Should -BeNullOrEmpty
    }

    It 'resolves a struct the module defines through its BTF' {
        $btf = (Get-VmiModule vmi_demo).GetBtf()
        $btf.GetField('vmi_demo_ctx', 'tag').Offset | Should -Be 24
        $btf.GetField('vmi_demo_ctx', 'list.prev').Offset | Should -Be 8
        $btf.Count | Should -Be (Get-VmiModule vmi_demo).BtfTypeCount
    }

    It 'fails clearly for a module without BTF' {
        { (Get-VmiModule nls_ascii).GetBtf() } | Should -Throw '*no BTF*'
    }
}
