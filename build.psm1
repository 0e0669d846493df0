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

function Get-VmiReadableTypeName {
    # How platyPS names a parameter type: the short name, the underlying type of a Nullable, [] for arrays.
    param([Parameter(Mandatory)] [type] $Type)
    $t = [Nullable]::GetUnderlyingType($Type) ?? $Type
    if ($t.IsArray) { return (Get-VmiReadableTypeName $t.GetElementType()) + '[]' }
    $t.Name
}

function Get-VmiParameterFacts {
    # The yaml block of one parameter in the parameter sets whose facts are the same, as platyPS writes it.
    param(
        [Parameter(Mandatory)] [System.Management.Automation.ParameterMetadata] $Parameter,
        [Parameter(Mandatory)] [string[]] $Sets,
        [Parameter(Mandatory)] [System.Management.Automation.ParameterSetMetadata] $Facts,
        [Parameter(Mandatory)] [bool] $AllSets,
        [string] $DefaultValue = 'None',
        # Kept from the page where the cmdlet validates the values itself (an enum of which only some are allowed).
        [string] $AcceptedValues
    )

    $pipeline = @(
        if ($Facts.ValueFromPipeline) { 'ByValue' }
        if ($Facts.ValueFromPipelineByPropertyName) { 'ByPropertyName' }
    )
    $wildcards = [bool] ($Parameter.Attributes | Where-Object { $_ -is [System.Management.Automation.SupportsWildcardsAttribute] })
    $lines = @(
        '```yaml'
        "Type: $(Get-VmiReadableTypeName $Parameter.ParameterType)"
        "Parameter Sets: $(if ($AllSets) { '(All)' } else { $Sets -join ', ' })"
        "Aliases: $($Parameter.Aliases -join ',')".TrimEnd()
        $validateSet = $Parameter.Attributes | Where-Object { $_ -is [System.Management.Automation.ValidateSetAttribute] } | Select-Object -First 1
        if ($validateSet) { "Accepted values: $($validateSet.ValidValues -join ', ')" } elseif ($AcceptedValues) { "Accepted values: $AcceptedValues" }
        ''
        "Required: $($Facts.IsMandatory)"
        "Position: $(if ($Facts.Position -eq [int]::MinValue) { 'Named' } else { $Facts.Position })"
        "Default value: $DefaultValue"
        "Accept pipeline input: $(if ($pipeline) { 'True (' + ($pipeline -join ', ') + ')' } else { 'False' })"
        "Accept wildcard characters: $wildcards"
        '```'
    )
    $lines -join "`n"
}

function Update-VmiMarkdownHelp {
    <#
    .SYNOPSIS
        Rewrites the facts of docs/cmdlets from the cmdlets themselves, as platyPS's Update-MarkdownHelp does: the
        SYNTAX section (one block per parameter set) and each parameter's yaml (type, sets, aliases, required,
        position, pipeline input, wildcards). The prose, examples, inputs, outputs and links stay as written.
    #>
    [CmdletBinding(SupportsShouldProcess)]
    param([string] $DocsDirectory = (Join-Path $RepoRoot 'docs/cmdlets'))

    if (-not (Get-Module Vmi)) { Import-Module (Join-Path $ModuleDir 'Vmi.psd1') }
    $common = [System.Management.Automation.Cmdlet]::CommonParameters + [System.Management.Automation.Cmdlet]::OptionalCommonParameters
    foreach ($command in Get-Command -Module Vmi -CommandType Cmdlet) {
        $path = Join-Path $DocsDirectory "$($command.Name).md"
        if (-not (Test-Path $path)) { Write-Warning "$($command.Name) has no page at $path."; continue }
        $page = (Get-Content -Raw $path) -replace "`r`n", "`n"

        # SYNTAX: one block per parameter set, the default marked, in the cmdlet's order.
        $syntax = foreach ($set in $command.ParameterSets) {
            $title = if ($command.ParameterSets.Count -eq 1) { '__AllParameterSets' } elseif ($set.IsDefault) { "$($set.Name) (Default)" } else { $set.Name }
            "### $title`n" + '```' + "`n$($command.Name) $set`n" + '```' + "`n"
        }
        $page = [regex]::Replace($page, '(?s)(## SYNTAX\n).*?(?=## DESCRIPTION)', { param($m) $m.Groups[1].Value + "`n" + ($syntax -join "`n") + "`n" })

        # Each parameter's yaml: one block per group of sets with the same facts.
        $setNames = @($command.ParameterSets.Name)
        foreach ($parameter in $command.Parameters.Values | Where-Object Name -notin $common) {
            $heading = "### -$($parameter.Name)"
            $match = [regex]::Match($page, "(?s)(?<=\n)$([regex]::Escape($heading))\n(?<text>.*?)(?<yaml>(?:``````yaml\n.*?``````\s*)+)(?=\n### |\n## |\z)")
            if (-not $match.Success) { Write-Warning "$($command.Name): -$($parameter.Name) is not documented."; continue }
            $default = [regex]::Match($match.Groups['yaml'].Value, '(?m)^Default value: *(.*)$').Groups[1].Value.Trim()
            if (-not $default) { $default = 'None' }
            $accepted = [regex]::Match($match.Groups['yaml'].Value, '(?m)^Accepted values: *(.*)$').Groups[1].Value.Trim()
            $inSets = if ($parameter.ParameterSets.ContainsKey('__AllParameterSets')) { $setNames } else { @($parameter.ParameterSets.Keys | Sort-Object { $setNames.IndexOf($_) }) }
            $groups = $inSets | Group-Object {
                $f = if ($parameter.ParameterSets.ContainsKey($_)) { $parameter.ParameterSets[$_] } else { $parameter.ParameterSets['__AllParameterSets'] }
                "$($f.IsMandatory)|$($f.Position)|$($f.ValueFromPipeline)|$($f.ValueFromPipelineByPropertyName)"
            }
            $yaml = foreach ($g in $groups) {
                $first = $g.Group[0]
                $facts = if ($parameter.ParameterSets.ContainsKey($first)) { $parameter.ParameterSets[$first] } else { $parameter.ParameterSets['__AllParameterSets'] }
                Get-VmiParameterFacts -Parameter $parameter -Sets $g.Group -Facts $facts -AllSets (@($groups).Count -eq 1 -and $g.Group.Count -eq $setNames.Count) -DefaultValue $default -AcceptedValues $accepted
            }
            $replacement = $heading + "`n" + $match.Groups['text'].Value + ($yaml -join "`n`n") + "`n"
            $page = $page.Remove($match.Index, $match.Length).Insert($match.Index, $replacement)
        }

        if ($PSCmdlet.ShouldProcess($path, 'Update the syntax and parameter facts')) {
            [System.IO.File]::WriteAllText($path, $page)
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

Export-ModuleMember -Function Invoke-VmiBuild, Invoke-VmiTest, Update-VmiMarkdownHelp, New-VmiExternalHelp, Invoke-VmiAnalyzer, Publish-VmiShell
