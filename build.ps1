#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Builds, tests and documents Vmi.PowerShell. The tasks live in build.psm1.
.EXAMPLE
    ./build.ps1                       # build, then test (dotnet test, then the Pester suites), then help
.EXAMPLE
    vmi -File ./build.ps1 -Task Test -Suite Pester    # the Pester suites, in the vmi shell instead of pwsh
.EXAMPLE
    ./build.ps1 -Publish -Runtime linux-x64    # one self-contained vmi file for a dom0
.NOTES
    Without pwsh, run it in vmi (src/Shell/bin/<Configuration>/net10.0/vmi -File build.ps1 ...), or take the same
    steps by hand: dotnet build; dotnet test tests/Vmi.PowerShell.Tests; vmi -File tests/pester/Invoke-VmiPester.ps1
#>
[CmdletBinding(DefaultParameterSetName = 'Tasks')]
param(
    [Parameter(ParameterSetName = 'Tasks', Position = 0)]
    [ValidateSet('Build', 'Test', 'Help', 'Analyze', 'All')]
    [string[]] $Task = 'All',

    [Parameter(ParameterSetName = 'Publish', Mandatory)]
    [switch] $Publish,

    [Parameter(ParameterSetName = 'Publish')]
    [string] $Runtime = 'linux-x64',

    [ValidateSet('Debug', 'Release')]
    [string] $Configuration = 'Debug',

    # With -Task Test: the xunit tests, the Pester suites, or both.
    [Parameter(ParameterSetName = 'Tasks')]
    [ValidateSet('Xunit', 'Pester')]
    [string[]] $Suite = @('Xunit', 'Pester')
)

$ErrorActionPreference = 'Stop'
Import-Module (Join-Path $PSScriptRoot 'build.psm1') -Force

if ($Publish) {
    Publish-VmiShell -Runtime $Runtime -Configuration $Configuration
    return
}

$all = $Task -contains 'All'
if ($all -or $Task -contains 'Build') { Invoke-VmiBuild -Configuration $Configuration }
if ($all -or $Task -contains 'Test') { Invoke-VmiTest -Configuration $Configuration -Suite $Suite }
if ($all -or $Task -contains 'Help') { New-VmiExternalHelp }
if ($all -or $Task -contains 'Analyze') { Invoke-VmiAnalyzer }
