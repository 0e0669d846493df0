#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0.0' }
<#
    Pester 5 suites for the Vmi module, against the built-in demo guest (Connect-VmiDomain -Mock).
    Run:  Invoke-Pester ./tests/pester    (after `dotnet build`; build.ps1 -Task Test runs them too)
    They double as examples of what the cmdlets do; the addresses are those of Vmi.Mock.DemoGuestLayout.
#>

BeforeAll {
    # The module `dotnet build` lays out; in vmi it is already loaded (vmi imports its own copy at start).
    if (-not (Get-Module Vmi)) { Import-Module (Join-Path $PSScriptRoot '../../artifacts/module/Vmi/Vmi.psd1') }

    # Addresses of the demo guest (Vmi.Mock.DemoGuestLayout).
    $Layout = [Vmi.Mock.DemoGuestLayout]
    $AsciiStringVa = $Layout::AsciiStringVa
    $UnmappedVa = $Layout::UnmappedVa
}

Describe 'Connect-VmiDomain -Mock' {
    BeforeEach { $session = Connect-VmiDomain -Mock }
    AfterEach { Disconnect-VmiDomain -All }

    It 'returns an open session that becomes the default' {
        $session.State | Should -Be 'Open'
        $session.Driver | Should -Be 'Mock'
        (Get-VmiSession -Default).Id | Should -Be $session.Id
    }

    It 'has four vCPUs' {
        @(Get-VmiRegister).Count | Should -Be 4
    }

    It 'refuses changes when read-only' {
        $ro = Connect-VmiDomain -Mock -ReadOnly
        { Write-VmiMemory 0x1000 -Physical -Bytes 1 -Session $ro -Confirm:$false } |
            Should -Throw -ErrorId 'Vmi.ReadOnly,Vmi.PowerShell.Commands.WriteVmiMemoryCommand'
    }
}

Describe 'Read-VmiMemory' {
    BeforeAll { $null = Connect-VmiDomain -Mock }
    AfterAll { Disconnect-VmiDomain }

    # Test cases are built at discovery, before the module is imported: they name the layout's constants.
    It 'reads the demo string <Address> as <As>' -TestCases @(
        @{ As = 'String'; Address = 'AsciiStringVa'; Expected = 'AsciiString' }
        @{ As = 'WString'; Address = 'WideStringVa'; Expected = 'WideString' }
        @{ As = 'String'; Address = 'CrossPageStringVa'; Expected = 'CrossPageString' }
    ) {
        Read-VmiMemory $Layout::$Address -As $As | Should -BeExactly $Layout::$Expected
    }

    It 'reads bytes as records with the address' {
        $r = Read-VmiMemory $AsciiStringVa -Length 5
        $r.Address | Should -Be $AsciiStringVa
        [System.Text.Encoding]::ASCII.GetString($r.Bytes) | Should -Be 'Hello'
    }

    It 'follows a pointer through the pipeline' {
        Read-VmiMemory $Layout::PointerVa -As Pointer | Read-VmiMemory -As String | Should -Be $Layout::AsciiString
    }

    It 'reports an unmapped page as a non-terminating Vmi.PageFault' {
        $out = Read-VmiMemory $UnmappedVa -Length 4 -ErrorVariable err -ErrorAction SilentlyContinue
        $out | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'Vmi.PageFault,*'
    }

    It 'reads through the hole with -ZeroFill and warns' {
        $r = Read-VmiMemory $UnmappedVa -Length 16 -ZeroFill -WarningVariable warn -WarningAction SilentlyContinue
        $r.Bytes | Should -Be ([byte[]]::new(16))
        $warn | Should -Not -BeNullOrEmpty
    }
}

Describe 'Resolve-VmiAddress' {
    BeforeAll { $null = Connect-VmiDomain -Mock }
    AfterAll { Disconnect-VmiDomain }

    It 'translates a kernel address' {
        (Resolve-VmiAddress $AsciiStringVa).Pa | Should -Be ($Layout::KernelDataPa + 0x100)
    }

    It 'shows four levels with -Detailed' {
        (Resolve-VmiAddress $AsciiStringVa -Detailed).Levels.Count | Should -Be 4
    }

    It 'translates the same address differently per process' {
        (Resolve-VmiAddress $Layout::UserSecretVa -Vcpu 2 | Read-VmiMemory -As String) | Should -Be $Layout::ProcessBSecret
        (Resolve-VmiAddress $Layout::UserSecretVa -Vcpu 3 | Read-VmiMemory -As String) | Should -Be $Layout::ProcessASecret
    }
}

Describe 'Find-VmiMemory' {
    BeforeAll { $null = Connect-VmiDomain -Mock }
    AfterAll { Disconnect-VmiDomain }

    It 'finds the demo pattern once in physical memory' {
        $hits = @(Find-VmiMemory -Pattern '56 4d 49 21 de ad be ef' -Physical)
        $hits.Count | Should -Be 1
        $hits[0].Address | Should -Be ($Layout::KernelDataPa + 0x3456)
    }
}

Describe 'Wait-VmiEvent' {
    BeforeEach { $null = Connect-VmiDomain -Mock }
    AfterEach { Disconnect-VmiDomain }

    It 'denies a CR3 write when the pipeline says so' {
        Enable-VmiMonitor Cr3
        Wait-VmiEvent -Timeout 5 -Count 1 | ForEach-Object { $_.Response = 'Deny' }
        (Get-VmiRegister -Vcpu 0).Cr3 | Should -Be $Layout::KernelCr3
    }

    It 'lets a CR3 write through by default' {
        Enable-VmiMonitor Cr3
        $e = Wait-VmiEvent -Timeout 5 -Count 1
        $e | Should -BeOfType ([Vmi.PowerShell.VmiEventRecord])
        $e.Reason | Should -BeOfType ([Vmi.Core.ControlRegisterWriteReason])
        $e.NewValue | Should -Be $Layout::ProcessACr3
        (Get-VmiRegister -Vcpu 0).Cr3 | Should -Be $Layout::ProcessACr3
    }

    It 'answers every event when the pipeline fails' {
        Enable-VmiMonitor Cr3, Breakpoint
        { Wait-VmiEvent -Timeout 5 | ForEach-Object { throw 'boom' } } | Should -Throw 'boom'
        (Get-VmiSession -Default).Guest.EventsPending | Should -Be 0
    }
}

Describe 'Disconnect-VmiDomain' {
    It 'restores the guest' {
        $s = Connect-VmiDomain -Mock
        $guest = $s.Guest.GetDriver[Vmi.Mock.MockGuest]()
        Suspend-VmiDomain
        Enable-VmiMonitor Cr3
        Disconnect-VmiDomain
        $guest.PauseCount | Should -Be 0
        $s.State | Should -Be 'Closed'
    }
}

Describe 'ConvertTo-Json of records' {
    # Records are exported as JSON (to a SIEM, a ticket): each must carry its own data, not the session and the
    # engine behind it, and name its enums.
    BeforeAll { $session = Connect-VmiDomain -Mock }
    AfterAll { Disconnect-VmiDomain -All }

    It 'leaves the session out of a <Name> record' -TestCases @(
        @{ Name = 'translation'; Make = { Resolve-VmiAddress $AsciiStringVa -Vcpu 0 } }
        @{ Name = 'memory'; Make = { Read-VmiMemory $AsciiStringVa -Length 8 -Vcpu 0 } }
        @{ Name = 'pointer'; Make = { Read-VmiMemory $AsciiStringVa -As Pointer -Vcpu 0 } }
        @{ Name = 'match'; Make = { Find-VmiMemory -String 'Hello' -Physical | Select-Object -First 1 } }
        @{ Name = 'monitor'; Make = { Enable-VmiMonitor Cr3 -PassThru; Disable-VmiMonitor Cr3 } }
        @{ Name = 'registers'; Make = { Get-VmiRegister -Vcpu 0 } }
        @{ Name = 'event'; Make = { Enable-VmiMonitor Cr3; Wait-VmiEvent -Timeout 5 -Count 1; Disable-VmiMonitor Cr3 } }
    ) {
        $record = & $Make | Select-Object -First 1
        $record | Should -Not -BeNullOrEmpty
        $record.Session.Id | Should -Be $session.Id   # still there for scripts and pipelines
        $json = $record | ConvertTo-Json -Depth 6 | ConvertFrom-Json
        $json.PSObject.Properties.Name | Should -Not -Contain 'Session'
        $json.PSObject.Properties.Name | Should -Not -Contain 'Guest'
    }

    It 'writes enums as their names' {
        $json = Resolve-VmiAddress $AsciiStringVa -Vcpu 0 | ConvertTo-Json | ConvertFrom-Json
        $json.PagingMode | Should -Be 'Ia32e'
        $json.PageSize | Should -BeIn @('Size4K', 'Size2M', 'Size1G')
        (Get-VmiRegister -Vcpu 0 | ConvertTo-Json | ConvertFrom-Json).PagingMode | Should -Be 'Ia32e'
    }

    It 'writes a session without its guest object' {
        $json = Get-VmiSession -Default | ConvertTo-Json -Depth 6 | ConvertFrom-Json
        $json.Name | Should -Be 'mock'
        $json.State | Should -Be 'Open'
        $json.PSObject.Properties.Name | Should -Not -Contain 'Guest'
        $json.Capabilities | Should -Contain 'Read'
    }
}

Describe 'Find-VmiMemory -Pattern given text' {
    BeforeAll { $null = Connect-VmiDomain -Mock }
    AfterAll { Disconnect-VmiDomain -All }

    It 'says to use -String, with no .NET parameter suffix' {
        { Find-VmiMemory -Pattern 'Hello' -Physical -ErrorAction Stop } | Should -Throw -ErrorId 'Vmi.InvalidArgument,*'
        $err = $null
        try { Find-VmiMemory -Pattern 'Hello' -Physical -ErrorAction Stop } catch { $err = $_ }
        $err.Exception.Message | Should -Match "-String 'Hello'"
        $err.Exception.Message | Should -Not -Match "\(Parameter '"
    }
}

Describe 'Typed addresses keep their meaning' {
    BeforeAll {
        $null = Connect-VmiDomain -Mock
        $Pa = [Vmi.Core.Pa]::new($Layout::KernelDataPa + 0x100)   # where the demo string lies in physical memory
        $Va = [Vmi.Core.Va]::new($AsciiStringVa)
    }
    AfterAll { Disconnect-VmiDomain -All }

    It 'reads a [Vmi.Core.Pa] as physical without -Physical' {
        $r = Read-VmiMemory $Pa -Length 5
        $r.Physical | Should -BeTrue
        [System.Text.Encoding]::ASCII.GetString($r.Bytes) | Should -Be 'Hello'
        Read-VmiMemory $Pa -As String | Should -BeExactly $Layout::AsciiString
    }

    It 'refuses a [Vmi.Core.Va] with -Physical, naming both' {
        { Read-VmiMemory $Va -Physical -Length 5 -ErrorAction Stop } | Should -Throw -ErrorId 'Vmi.AddressKindMismatch,*'
    }

    It 'refuses a [Vmi.Core.Pa] where only a virtual address means anything' {
        { Resolve-VmiAddress $Pa -ErrorAction Stop } | Should -Throw '*is a physical address*'
    }

    It 'never takes a [Vmi.Core.Gfn] as a byte address' {
        { Read-VmiMemory ([Vmi.Core.Gfn]::new(0x1200)) -Physical -ErrorAction Stop } | Should -Throw '*is a frame number, not a byte address*'
    }

    It 'refuses a range that would wrap past 2^64' {
        { Read-VmiMemory ([ulong]::MaxValue) -Length 2 -Physical -ErrorAction Stop } | Should -Throw -ErrorId 'Vmi.InvalidArgument,*'
        { Read-VmiMemory 0xfffffffffffffff8u -As UInt64 -Count 2 -Physical -ErrorAction Stop } | Should -Throw '*runs past the end of the address space*'
    }
}
