#Requires -Modules Vmi
<#
.SYNOPSIS
    The main job of Vmi.PowerShell in one script: connect, look at registers, translate an address, read and
    hex-dump memory, read a string, find a pattern, trap an event and answer it, disconnect.
.DESCRIPTION
    Runs against the built-in demo guest (-Mock) so it works anywhere:
        dotnet run --project src/Shell -- -File examples/demo.ps1
    or, with pwsh:  Import-Module ./artifacts/module/Vmi; ./examples/demo.ps1
    On a Xen dom0, connect with Connect-VmiDomain -Name <domain> instead and use addresses of that guest.
#>
[CmdletBinding()]
param(
    # The address of the demo guest's ASCII string (DemoGuestLayout.AsciiStringVa).
    [string] $StringAddress = '0xffffffff82000100'
)

$ErrorActionPreference = 'Stop'

function Step([string] $Title) { "`n== $Title ==" | Out-Host }

Step 'Connect to the demo guest'
$session = Connect-VmiDomain -Mock
$session | Out-Host

Step 'Registers of every vCPU'
Get-VmiRegister | Out-Host

Step "Translate $StringAddress (vCPU 0's CR3), level by level"
Resolve-VmiAddress $StringAddress -Detailed | Out-Host

Step 'Hex dump of 96 bytes there'
Read-VmiMemory $StringAddress -Length 96 | Out-Host

Step 'The string there'
Read-VmiMemory $StringAddress -As String | Out-Host

Step "Find the pattern 'VMI!' DE AD ?? EF in all physical memory, then read around the hit"
$hit = Find-VmiMemory -Pattern '56 4d 49 21 de ad ?? ef' -Physical -First 1
$hit | Out-Host
$hit | Read-VmiMemory -Length 32 | Out-Host

Step 'Trap writes to CR3, deny the first one'
Enable-VmiMonitor Cr3
Wait-VmiEvent -Timeout 2 -Count 1 | ForEach-Object {
    $_.Response = 'Deny'
    $_
} | Out-Host
"vCPU 0's CR3 after the denied write: 0x{0:x}" -f (Get-VmiRegister -Vcpu 0).Cr3 | Out-Host

Step 'Disconnect: monitors off, access restored, vCPUs resumed'
Disconnect-VmiDomain -Verbose
Get-VmiSession | Out-Host
'done' | Out-Host
