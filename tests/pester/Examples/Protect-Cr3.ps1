<#
.SYNOPSIS
    An example responder's function to test: watch CR3 writes and deny those to a root that is not allowed.
.DESCRIPTION
    Each event is answered by setting its Response before it leaves the pipeline step; the function writes one
    record per event it saw. Protect-Cr3.Tests.ps1 tests it against the demo guest.
#>
function Protect-Cr3 {
    [CmdletBinding()]
    param(
        # The page-table roots a vCPU may switch to.
        [Parameter(Mandatory)]
        [uint64[]] $Allowed,

        # How many events to look at.
        [int] $Count = 1,

        [object] $Session
    )

    $common = @{}
    if ($Session) { $common.Session = $Session }

    Enable-VmiMonitor Cr3 @common
    try {
        Wait-VmiEvent -Count $Count -Timeout 10 @common | ForEach-Object {
            $denied = $_.NewValue -notin $Allowed
            if ($denied) { $_.Response = 'Deny' }
            [pscustomobject]@{ Vcpu = $_.Vcpu; NewCr3 = $_.NewValue; Denied = $denied }
        }
    }
    finally {
        Disable-VmiMonitor Cr3 @common
    }
}
