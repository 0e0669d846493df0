#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Builds, tests and documents Vmi.PowerShell. The tasks live in build.psm1.
.EXAMPLE
    ./build.ps1                       # build, then test (dotnet test, then Pester where installed), then help
.EXAMPLE
    ./build.ps1 -Publish -Runtime linux-x64    # one self-contained vmi file for a dom0
.NOTES
    Without pwsh, the same steps are: dotnet build; dotnet test tests/Vmi.PowerShell.Tests
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
    [string] $Configuration = 'Debug'
)

$ErrorActionPreference = 'Stop'
Import-Module (Join-Path $PSScriptRoot 'build.psm1') -Force

if ($Publish) {
    Publish-VmiShell -Runtime $Runtime -Configuration $Configuration
    return
}

$all = $Task -contains 'All'
if ($all -or $Task -contains 'Build') { Invoke-VmiBuild -Configuration $Configuration }
if ($all -or $Task -contains 'Test') { Invoke-VmiTest -Configuration $Configuration }
if ($all -or $Task -contains 'Help') { New-VmiExternalHelp }
if ($all -or $Task -contains 'Analyze') { Invoke-VmiAnalyzer }
