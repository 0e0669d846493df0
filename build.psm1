# Build tasks of Vmi.PowerShell. build.ps1 is the thin entry point; each task here is usable on its own:
#   Import-Module ./build.psm1; Invoke-VmiBuild; Invoke-VmiTest
# Everything goes through the dotnet CLI, so a machine with only the .NET SDK can build and test; the vmi shell
# (pwsh's console host with the module) runs this file as pwsh does: vmi -File build.ps1 -Task Test -Suite Pester.

$script:RepoRoot = $PSScriptRoot
$script:ModuleDir = Join-Path $PSScriptRoot 'artifacts/module/Vmi'

function Invoke-Dotnet {
    param([Parameter(Mandatory, ValueFromRemainingArguments)] [string[]] $Arguments)
    Write-Verbose "dotnet $Arguments"
    & dotnet @Arguments
    if ($LASTEXITCODE -ne 0) {
        throw "dotnet $($Arguments -join ' ') failed with exit code $LASTEXITCODE."
    }
}

function Invoke-VmiBuild {
    <#
    .SYNOPSIS
        Builds the module (laid out in artifacts/module/Vmi) and the vmi shell.
    #>
    [CmdletBinding()]
    param([ValidateSet('Debug', 'Release')] [string] $Configuration = 'Debug')

    Invoke-Dotnet build (Join-Path $RepoRoot 'src/Shell/Vmi.Shell.csproj') -c $Configuration
    if (-not (Test-Path (Join-Path $ModuleDir 'Vmi.psd1'))) {
        throw "The build did not lay out $ModuleDir."
    }

    Get-Item $ModuleDir
}

function Invoke-VmiTest {
    <#
    .SYNOPSIS
        Runs the xunit tests of the module (dotnet test), then the Pester suites of tests/pester.
    .DESCRIPTION
        Pester 5 is taken from the module path or from the Pester NuGet package that tests/Vmi.PowerShell.Tests
        restores (tests/pester/Invoke-VmiPester.ps1 finds it). Works in pwsh and in vmi.
    #>
    [CmdletBinding()]
    param(
        [ValidateSet('Debug', 'Release')] [string] $Configuration = 'Debug',
        # Run every test project of the solution, not only the module's.
        [switch] $All,
        # Which suites: the xunit tests (dotnet test), the Pester suites, or both.
        [ValidateSet('Xunit', 'Pester')] [string[]] $Suite = @('Xunit', 'Pester')
    )

    if ($Suite -contains 'Xunit') {
        $target = if ($All) { Join-Path $RepoRoot 'Vmi.PowerShell.sln' } else { Join-Path $RepoRoot 'tests/Vmi.PowerShell.Tests' }
        Invoke-Dotnet test $target -c $Configuration
    }

    if ($Suite -contains 'Pester') {
        if (-not (Get-Module Vmi)) {
            Import-Module (Join-Path $ModuleDir 'Vmi.psd1')
        }

        & (Join-Path $RepoRoot 'tests/pester/Invoke-VmiPester.ps1') -Output Detailed
        if ($LASTEXITCODE -ne 0) {
            throw "The Pester suites failed (exit code $LASTEXITCODE)."
        }
    }
}

function New-VmiExternalHelp {
    <#
    .SYNOPSIS
        Makes the module's external help (en-US/Vmi.PowerShell.dll-Help.xml) from docs/cmdlets with platyPS, where installed.
    #>
    [CmdletBinding()]
    param()

    $platyPS = Get-Module -ListAvailable platyPS | Sort-Object Version -Descending | Select-Object -First 1
    if (-not $platyPS) {
        Write-Warning 'platyPS is not installed: no external help was made (Install-Module platyPS). docs/cmdlets is the help source either way.'
        return
    }

    Import-Module $platyPS
    # `dotnet build` already makes en-US/Vmi.PowerShell.dll-Help.xml from docs/cmdlets; platyPS remakes it its own way.
    $out = Join-Path $ModuleDir 'en-US'
    New-ExternalHelp -Path (Join-Path $RepoRoot 'docs/cmdlets') -OutputPath $out -Force
}

function Invoke-VmiAnalyzer {
    <#
    .SYNOPSIS
        Runs PSScriptAnalyzer over the repository's scripts, where installed.
    #>
    [CmdletBinding()]
    param()

    if (-not (Get-Module -ListAvailable PSScriptAnalyzer)) {
        Write-Warning 'PSScriptAnalyzer is not installed: scripts were not analysed.'
        return
    }

    $paths = 'examples', 'tests/pester', 'build.ps1', 'build.psm1' | ForEach-Object { Join-Path $RepoRoot $_ }
    $findings = $paths | ForEach-Object { Invoke-ScriptAnalyzer -Path $_ -Recurse -Severity Warning, Error }
    $findings
    if ($findings | Where-Object Severity -eq 'Error') {
        throw 'PSScriptAnalyzer reported errors.'
    }
}

function Publish-VmiShell {
    <#
    .SYNOPSIS
        Publishes vmi as one self-contained file for a dom0 without pwsh (artifacts/publish/<rid>/vmi).
    #>
    [CmdletBinding()]
    param(
        [string] $Runtime = 'linux-x64',
        [ValidateSet('Debug', 'Release')] [string] $Configuration = 'Release'
    )

    $out = Join-Path $RepoRoot "artifacts/publish/$Runtime"
    Invoke-Dotnet publish (Join-Path $RepoRoot 'src/Shell/Vmi.Shell.csproj') -c $Configuration -r $Runtime -o $out
    Get-Item (Join-Path $out 'vmi*') | Where-Object Extension -in '', '.exe'
}

Export-ModuleMember -Function Invoke-VmiBuild, Invoke-VmiTest, New-VmiExternalHelp, Invoke-VmiAnalyzer, Publish-VmiShell
