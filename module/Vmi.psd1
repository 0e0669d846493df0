@{
    RootModule           = 'Vmi.PowerShell.dll'
    ModuleVersion        = '0.1.0'
    GUID                 = '48f06f3f-8633-46c0-a847-d4db628b9dfe'
    Author               = 'Vmi.PowerShell contributors'
    CompanyName          = 'Vmi.PowerShell contributors'
    Copyright            = '(c) Vmi.PowerShell contributors.'
    Description          = 'Virtual machine introspection: registers, address translation, memory reads and searches, page-access traps and events of a running Xen guest, a memory image or a built-in mock guest.'
    PowerShellVersion    = '7.6'
    CompatiblePSEditions = @('Core')
    # Loaded at import, so the engine's and the mock's types ([Vmi.Mock.DemoGuestLayout], [Vmi.Core.Va]...) can be
    # used in scripts and Pester tests before the first Connect-VmiDomain.
    RequiredAssemblies   = @('Vmi.Core.dll', 'Vmi.Mock.dll')
    FormatsToProcess     = @('Vmi.Format.ps1xml')
    TypesToProcess       = @('Vmi.Types.ps1xml')
    CmdletsToExport      = @(
        'Clear-VmiCache'
        'Connect-VmiDomain'
        'Disable-VmiMonitor'
        'Disconnect-VmiDomain'
        'Enable-VmiMonitor'
        'Find-VmiMemory'
        'Get-VmiCache'
        'Get-VmiDomain'
        'Get-VmiKernel'
        'Get-VmiMemoryAccess'
        'Get-VmiModule'
        'Get-VmiProcess'
        'Get-VmiRegister'
        'Get-VmiSession'
        'Get-VmiSymbol'
        'New-VmiView'
        'Read-VmiMemory'
        'Remove-VmiView'
        'Resolve-VmiAddress'
        'Resume-VmiDomain'
        'Save-VmiMemory'
        'Set-VmiMemoryAccess'
        'Set-VmiRegister'
        'Set-VmiViewGfn'
        'Set-VmiBreakpoint'
        'Get-VmiBreakpoint'
        'Remove-VmiBreakpoint'
        'Suspend-VmiDomain'
        'Switch-VmiView'
        'Wait-VmiEvent'
        'Write-VmiMemory'
    )
    FunctionsToExport    = @()
    AliasesToExport      = @()
    VariablesToExport    = @()
    PrivateData          = @{
        PSData = @{
            Tags       = @('VMI', 'Introspection', 'Xen', 'Forensics', 'IncidentResponse', 'Memory')
        }
    }
}
