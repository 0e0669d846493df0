# Runs inside dom0 under the published vmi (pwsh with the module). Every check prints one line
#   CHECK <id> PASS|FAIL <detail>
# that dom0-test.sh collects. What is checked comes from outside the driver wherever it can: the guest's own view of
# its memory (it writes 0xC0FFEE11 at physical 0x1040 and prints the value at 0x1030 on its serial port), Linux's fixed
# layout with nokaslr (direct map at 0xffff888000000000, kernel text at 0xffffffff81000000 = physical 0x1000000),
# xl (pause state), xen-hvmctx (Xen's own dump of the registers).
param(
    [Parameter(Mandatory)] [string]$Mode,
    [string]$Name = 'guest1',
    [string]$Serial = '',
    [string]$Flag = '')
$ErrorActionPreference = 'Stop'
$ConfirmPreference = 'None'
Write-Host "VMI-READY mode=$Mode pid=$PID"   # the runtime started: a crash before this line is the environment's

function Check([string]$id, [bool]$ok, [string]$detail) {
    Write-Host ("CHECK {0} {1} {2}" -f $id, $(if ($ok) { 'PASS' } else { 'FAIL' }), ($detail -replace '\s+', ' '))
}

# Runs a block; an exception fails the check with its message instead of ending the script.
function Try-Check([string]$id, [scriptblock]$block) {
    try { & $block }
    catch { Check $id $false ("threw [{0}] {1}" -f $_.Exception.GetType().Name, $_.Exception.Message) }
}

function DomainId { [uint32](Get-VmiDomain -Name $Name).Id }

function XlState { ((& xl list $Name 2>$null) | Select-Object -Last 1) -split '\s+' | Select-Object -Index 4 }

# xen-hvmctx prints the CPU record's registers as "rip 0x..." pairs; returns a hashtable of them.
function HvmCtx {
    $text = (& /usr/lib/xen-4.17/bin/xen-hvmctx (DomainId) 2>&1) -join "`n"
    $regs = @{}
    foreach ($m in [regex]::Matches($text, '\b(r[a-z0-9]+|cr[0-4])\s*[=:]?\s*(0x[0-9a-fA-F]+)')) {
        if (-not $regs.ContainsKey($m.Groups[1].Value)) { $regs[$m.Groups[1].Value] = [Convert]::ToUInt64($m.Groups[2].Value.Substring(2), 16) }
    }
    $regs
}

function SerialHas([string]$pattern, [int]$seconds) {
    $deadline = [DateTime]::UtcNow.AddSeconds($seconds)
    while ([DateTime]::UtcNow -lt $deadline) {
        if ($Serial -and (Test-Path $Serial) -and (Select-String -Path $Serial -Pattern $pattern -Quiet)) { return $true }
        Start-Sleep -Seconds 2
    }
    $false
}

function AliveCount {
    if (-not ($Serial -and (Test-Path $Serial))) { return -1 }
    $last = Select-String -Path $Serial -Pattern 'domU alive (\d+)' | Select-Object -Last 1
    if ($last) { [int]$last.Matches[0].Groups[1].Value } else { -1 }
}

switch ($Mode) {
    'boot' {
        # The domain was created paused (xl create -p): monitors go on before its first instruction.
        $null = Connect-VmiDomain -Name $Name
        $monitors = 'Cr0', 'Cr4', 'Msr:0xC0000080', 'Msr:0xC0000082', 'Cpuid', 'DescriptorAccess'
        foreach ($m in $monitors) { Try-Check "boot-enable-$m" { $null = Enable-VmiMonitor $m; Check "boot-enable-$m" $true 'enabled' } }
        Set-Content -Path $Flag -Value 'monitors on'   # dom0-test.sh unpauses the domain now
        $seen = @{}
        $cpuidLeaves = [Collections.Generic.HashSet[uint32]]::new()
        $want = 'Cr0', 'Cr4', 'Msr:0xC0000080', 'Msr:0xC0000082', 'Cpuid', 'DescriptorAccess'
        $n = 0
        $deadline = [DateTime]::UtcNow.AddSeconds(400)
        while ([DateTime]::UtcNow -lt $deadline -and @($want | Where-Object { -not $seen.ContainsKey($_) }).Count -gt 0 -and $n -lt 20000) {
            foreach ($ev in @(Wait-VmiEvent -Count 200 -Timeout 20)) {
                $n++
                $key = switch ($ev.Reason) {
                    'ControlRegister' { "$($ev.Register)" }
                    'Msr' { 'Msr:0x{0:X}' -f $ev.Msr }
                    default { $ev.Reason }
                }
                if (-not $seen.ContainsKey($key)) { $seen[$key] = $ev.Details; Write-Host "first $key event: $($ev.Details)" }
                if ($ev.Reason -eq 'Cpuid') { $null = $cpuidLeaves.Add($ev.Leaf) }
            }
        }
        Disconnect-VmiDomain
        Write-Host "boot events: $n; kinds: $($seen.Keys -join ', ')"
        foreach ($k in 'Cr0', 'Cr4', 'Msr:0xC0000080', 'Msr:0xC0000082', 'Cpuid', 'DescriptorAccess') {
            Check "boot-event-$k" $seen.ContainsKey($k) $(if ($seen.ContainsKey($k)) { $seen[$k] } else { "none in $n events" })
        }
        Check 'boot-cpuid-leaves' ($cpuidLeaves.Contains(0) -and $cpuidLeaves.Contains(1)) ("leaves: " + (($cpuidLeaves | Sort-Object | ForEach-Object { '0x{0:x}' -f $_ }) -join ','))
    }
    'live' {
        $null = Connect-VmiDomain -Name $Name -ReadOnly
        Try-Check 'read-guest-mark-physical' {
            $v = [uint32](Read-VmiMemory 0x1040 -Physical -As UInt32)
            Check 'read-guest-mark-physical' ($v -eq 0xC0FFEE11) ('0x{0:x8} at physical 0x1040 (the guest wrote 0xc0ffee11)' -f $v)
        }
        Try-Check 'translate-direct-map' {
            $t = Resolve-VmiAddress 0xffff888000001040
            $v = [uint32](Read-VmiMemory 0xffff888000001040 -As UInt32)
            Check 'translate-direct-map' ($t.Pa -eq 0x1040 -and $v -eq 0xC0FFEE11) ('0xffff888000001040 -> 0x{0:x}, reads 0x{1:x8}' -f $t.Pa, $v)
        }
        Try-Check 'translate-kernel-text' {
            $pa = (Resolve-VmiAddress 0xffffffff81000000).Pa
            $viaVa = Read-VmiMemory 0xffffffff81000000 -Length 16
            $viaPa = Read-VmiMemory 0x1000000 -Length 16 -Physical
            Check 'translate-kernel-text' ($pa -eq 0x1000000 -and (($viaVa.Bytes -join ',') -eq ($viaPa.Bytes -join ','))) ('0xffffffff81000000 -> 0x{0:x}; bytes equal physical 0x1000000' -f $pa)
        }
        Try-Check 'pause-guard' {
            Suspend-VmiDomain
            $paused = XlState
            $ctx = HvmCtx
            $r = Get-VmiRegister -Vcpu 0
            Check 'registers-equal-xen-hvmctx' ($ctx['rip'] -eq $r.Rip -and $ctx['cr3'] -eq $r.Cr3 -and $ctx['rsp'] -eq $r.Rsp) ('vmi rip=0x{0:x} cr3=0x{1:x} rsp=0x{2:x}; xen-hvmctx rip=0x{3:x} cr3=0x{4:x} rsp=0x{5:x}' -f $r.Rip, $r.Cr3, $r.Rsp, $ctx['rip'], $ctx['cr3'], $ctx['rsp'])
            Resume-VmiDomain
            $running = XlState
            Check 'pause-guard' ($paused -match 'p' -and $running -notmatch 'p') "xl state paused '$paused', resumed '$running'"
        }
        Try-Check 'read-only-refuses-writes' {
            try { Write-VmiMemory 0x1030 -Bytes ([byte[]](1)) -Physical; Check 'read-only-refuses-writes' $false 'the write went through' }
            catch { Check 'read-only-refuses-writes' ($_.Exception.Message -match 'read-only') $_.Exception.Message }
        }
        Disconnect-VmiDomain

        $null = Connect-VmiDomain -Name $Name
        Try-Check 'write-seen-by-guest' {
            $orig = [uint32](Read-VmiMemory 0x1030 -Physical -As UInt32)
            Write-VmiMemory 0x1030 -Bytes ([BitConverter]::GetBytes([uint32]0x5A5A5A5A)) -Physical
            $seen = SerialHas 'GUEST-PEEK 0x5A5A5A5A' 90
            Write-VmiMemory 0x1030 -Bytes ([BitConverter]::GetBytes($orig)) -Physical
            Check 'write-seen-by-guest' $seen 'the guest printed GUEST-PEEK 0x5A5A5A5A from its own devmem read of physical 0x1030'
        }
        Try-Check 'set-register-seen-by-xen' {
            Suspend-VmiDomain
            try {
                $o = (Get-VmiRegister -Vcpu 0).R15
                Set-VmiRegister -Vcpu 0 -Name R15 -Value 0x1122334455667788
                $x = (HvmCtx)['r15']
                Set-VmiRegister -Vcpu 0 -Name R15 -Value $o
                $back = (HvmCtx)['r15']
                Check 'set-register-seen-by-xen' ($x -eq 0x1122334455667788 -and $back -eq $o) ('xen-hvmctx r15 after set 0x{0:x}, after restore 0x{1:x} (was 0x{2:x})' -f $x, $back, $o)
            } finally { Resume-VmiDomain }
        }
        Try-Check 'refusal-singlestep' {
            try { Enable-VmiMonitor Singlestep; Check 'refusal-singlestep' $true 'single-stepping is available here (an Intel host)'; Disable-VmiMonitor Singlestep }
            catch { Check 'refusal-singlestep' ($_.Exception.Message -match 'monitor trap flag' -and $_.Exception.Message -match 'Xen 4\.17') $_.Exception.Message }
        }
        Try-Check 'refusal-mem-access' {
            $g = (Resolve-VmiAddress (Get-VmiRegister -Vcpu 0).Rip).Gfn
            try { Set-VmiMemoryAccess $g -Access RX; Check 'refusal-mem-access' $true 'mem_access is available here (an Intel host)' }
            catch { Check 'refusal-mem-access' ($_.Exception.Message -match 'Intel VT-x' -and $_.Exception.Message -match 'Xen 4\.17') $_.Exception.Message }
        }
        Try-Check 'monitor-cr3' {
            $null = Enable-VmiMonitor Cr3
            $e = @(Wait-VmiEvent -Count 20 -Timeout 120)
            Disable-VmiMonitor Cr3
            $distinct = @($e | ForEach-Object NewValue | Sort-Object -Unique).Count
            Check 'monitor-cr3' ($e.Count -eq 20 -and $distinct -ge 2) "$($e.Count) events, $distinct distinct new CR3 values"
        }
        Try-Check 'monitor-cpuid-steps-past' {
            $before = AliveCount
            $null = Enable-VmiMonitor Cpuid
            $e = @(Wait-VmiEvent -Count 20 -Timeout 120)
            Disable-VmiMonitor Cpuid
            $grew = SerialHas ("domU alive {0}\b" -f ($before + 3)) 120
            Check 'monitor-cpuid-steps-past' ($e.Count -ge 1 -and $grew) ("$($e.Count) CPUID events answered (leaves " + (($e | ForEach-Object { '0x{0:x}' -f $_.Leaf } | Select-Object -Unique) -join ',') + "); the guest kept running: $grew")
        }
        Disconnect-VmiDomain
    }
    'hold' {
        # Exit paths: take everything an exit must undo, then end the way dom0-test.sh asks ($Flag says when ready).
        $null = Connect-VmiDomain -Name $Name
        $null = Enable-VmiMonitor Cr3, Cpuid
        Suspend-VmiDomain
        Resume-VmiDomain
        Set-Content -Path $Flag -Value 'holding'
        switch ($env:LAB_EXIT) {
            'disconnect' { $null = @(Wait-VmiEvent -Count 5 -Timeout 60); Disconnect-VmiDomain }
            'exception' { $null = @(Wait-VmiEvent -Count 5 -Timeout 60); throw 'the script fails on purpose' }
            default { Wait-VmiEvent -Timeout 600 | ForEach-Object { } }  # until a signal ends the process
        }
    }
    'check-clean' {
        # After a process ended: a fresh read-write session must get the ring (nothing left holding it).
        $null = Connect-VmiDomain -Name $Name   # a reclaim is reported as a warning
        Try-Check "$Flag-ring-free" {
            $null = Enable-VmiMonitor Cpuid
            $e = @(Wait-VmiEvent -Count 2 -Timeout 60)
            Check "$Flag-ring-free" ($e.Count -ge 1) "a new session took the ring and saw $($e.Count) events"
        }
        Disconnect-VmiDomain
    }
    'postmortem' {
        Try-Check 'postmortem-read-only' {
            $null = Connect-VmiDomain -Name $Name -ReadOnly
            $v = [uint32](Read-VmiMemory 0x1040 -Physical -As UInt32)
            $r = Get-VmiRegister -Vcpu 0
            Check 'postmortem-read-only' ($v -eq 0xC0FFEE11) ('crashed domain: physical 0x1040 = 0x{0:x8}, rip=0x{1:x}' -f $v, $r.Rip)
            Disconnect-VmiDomain
        }
        Try-Check 'postmortem-read-write-refused' {
            try { $null = Connect-VmiDomain -Name $Name; Check 'postmortem-read-write-refused' $false 'connected read-write'; Disconnect-VmiDomain }
            catch { Check 'postmortem-read-write-refused' ($_.Exception.Message -match 'ReadOnly') $_.Exception.Message }
        }
    }
    default { throw "unknown mode $Mode" }
}
Write-Host "VMI-DONE mode=$Mode"
