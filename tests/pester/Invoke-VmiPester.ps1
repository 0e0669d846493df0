<#
.SYNOPSIS
    Runs the Pester suites of tests/pester with Pester 5 and prints one line: "pester: P passed, F failed, S skipped".
.DESCRIPTION
    Runs in pwsh or in vmi (./test.sh runs it in vmi: src/Shell/bin/Release/net10.0/vmi -NoProfile -File <this>).
    Pester is the first of: -PesterManifest; Pester 5 from the module path; the Pester NuGet package that
    tests/Vmi.PowerShell.Tests restores (its tools/ folder holds the module). Exit code 1 when a test failed or
    none ran, 2 when Pester or the Vmi module cannot be found.
.EXAMPLE
    vmi -NoProfile -File tests/pester/Invoke-VmiPester.ps1 -Output Detailed
#>
[CmdletBinding()]
param(
    # The suites to run (files or folders).
    [string[]] $Path = $PSScriptRoot,

    # A Pester.psd1 to import instead of looking for one.
    [string] $PesterManifest,

    [ValidateSet('None', 'Normal', 'Detailed', 'Diagnostic')]
    [string] $Output = 'Normal'
)

$ErrorActionPreference = 'Stop'

function Find-Pester {
    if ($PesterManifest) { return $PesterManifest }
    $installed = Get-Module -ListAvailable Pester | Where-Object Version -ge '5.0.0' | Sort-Object Version -Descending | Select-Object -First 1
    if ($installed) { return $installed.Path }
    $packages = if ($env:NUGET_PACKAGES) { $env:NUGET_PACKAGES } else { Join-Path ([Environment]::GetFolderPath('UserProfile')) '.nuget/packages' }
    $fromNuGet = Get-ChildItem (Join-Path $packages 'pester') -Directory -ErrorAction Ignore |
        Where-Object { $_.Name -as [version] -ge [version] '5.0.0' } |
        Sort-Object { [version] $_.Name } -Descending |
        ForEach-Object { Join-Path $_.FullName 'tools/Pester.psd1' } |
        Where-Object { Test-Path $_ } | Select-Object -First 1
    return $fromNuGet
}

$pester = Find-Pester
if (-not $pester) {
    Write-Error 'Pester 5 was not found: restore tests/Vmi.PowerShell.Tests (it downloads the Pester NuGet package), install it (Install-Module Pester), or pass -PesterManifest.' -ErrorAction Continue
    exit 2
}

Import-Module $pester -MinimumVersion 5.0.0
$config = New-PesterConfiguration
$config.Run.Path = $Path
$config.Run.Exit = $false
$config.Run.PassThru = $true
$config.Output.Verbosity = $Output
$result = Invoke-Pester -Configuration $config

"pester: $($result.PassedCount) passed, $($result.FailedCount) failed, $($result.SkippedCount) skipped (Pester $((Get-Module Pester).Version))"
if ($result.FailedCount -gt 0 -or $result.FailedBlocksCount -gt 0 -or $result.FailedContainersCount -gt 0 -or $result.PassedCount -eq 0) {
    exit 1
}
exit 0
