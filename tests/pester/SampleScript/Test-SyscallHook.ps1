<#
.SYNOPSIS
    An example of a responder's script: is the syscall entry point (IA32_LSTAR) of every vCPU where it should be,
    and does anyone try to move it?
.DESCRIPTION
    It works on any session (a Xen domain, an image, the demo guest); Test-SyscallHook.Tests.ps1 tests it with
    Pester against Connect-VmiDomain -Mock, without a hypervisor.
#>
function Test-SyscallHook {
    [CmdletBinding()]
    param(
        # Where the syscall entry is expected (e.g. from the kernel's symbols).
        [Parameter(Mandatory)]
        [uint64] $ExpectedEntry,

        # Also watch writes to LSTAR for this many seconds, denying them.
        [double] $WatchSeconds = 0,

        [object] $Session
    )

    $common = @{}
    if ($Session) { $common.Session = $Session }

    foreach ($r in Get-VmiRegister @common) {
        [pscustomobject]@{
            Vcpu   = $r.Vcpu
            Lstar  = '0x{0:x}' -f $r.MsrLstar
            Hooked = $r.MsrLstar -ne $ExpectedEntry
            Source = 'register'
        }
    }

    if ($WatchSeconds -gt 0) {
        Enable-VmiMonitor 'Msr:0xC0000082' @common
        try {
            Wait-VmiEvent -Timeout $WatchSeconds -Reason Msr @common | ForEach-Object {
                $_.Deny()
                [pscustomobject]@{
                    Vcpu   = $_.Vcpu
                    Lstar  = '0x{0:x}' -f $_.NewValue
                    Hooked = $_.NewValue -ne $ExpectedEntry
                    Source = 'write (denied)'
                }
            }
        }
        finally {
            Disable-VmiMonitor 'Msr:0xC0000082' @common
        }
    }
}
