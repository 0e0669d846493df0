# Runs inside dom0 under the published vmi (pwsh with the module). Every check prints one line
#   CHECK <id> PASS|FAIL <detail>
# that dom0-test.sh collects. What is checked comes from outside the driver wherever it can: the guest's own view (it
# writes 0xC0FFEE11 at physical 0x1040 and prints on its serial port the value at 0x1030, the CPUID leaf 0x564D4900 its
# kernel sees, and whether CR4.TSD traps its RDTSC: tests/xen-lab/guest.sh), Linux's fixed layout with nokaslr (direct
# map at 0xffff888000000000, kernel text at 0xffffffff81000000 = physical 0x1000000), xl (pause and shutdown state),
# xen-hvmctx (Xen's own dump of the registers), xenstore-list (the session records), xl dump-core.
#
# One vmi start costs about a minute of the nested guest's time, so a process does as much as its exit path allows:
#   -Mode live   the live checks on guest1, then it holds the domain and ends by an exception (exit path "exception");
#   -Mode hold   checks what the previous exit path (-Prev) left, holds the domain, and ends the way -Exit says;
#   -Mode final  checks what the last exit path left, then the post-mortem on guest1 and the monitored boot of guest2.
param(
    [Parameter(Mandatory)] [string]$Mode,
    [string]$Name = 'guest1',
    [string]$Serial = '',
    [string]$Flag = '',
    [string]$Prev = '',
    [string]$Exit = '',
    [string]$Name2 = 'guest2',
    [string]$Config2 = '',
    [string]$Serial2 = '',
    [string]$DumpCore = '',
    [string]$ConfigPvh = '',
    [string]$SerialPvh = '')
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

function Stamp([string]$what) { Write-Host ("LAB-T {0} {1}" -f ([IO.File]::ReadAllText('/proc/uptime').Split(' ')[0]), $what) }

function DomainId([string]$n = $Name) { [uint32](Get-VmiDomain -Name $n).Id }

# xl list's state column ("-b----", "--p---"); plain indexing: the published vmi's Select-Object has no -Index.
function XlState([string]$n = $Name) { $lines = @(& xl list $n 2>$null); if ($lines.Count -lt 2) { return '?' } ($lines[$lines.Count - 1] -split '\s+')[4] }

# The vmi session records left in dom0's xenstore for a domain (docs/xen.md, "A vmi that was killed").
function Records([uint32]$id) { @(& xenstore-list "/local/domain/0/vmi/$id" 2>$null | Where-Object { $_ }) }

# xen-hvmctx prints the CPU record's registers as "rip 0x..." pairs; returns a hashtable of them.
function HvmCtx {
    $text = (& /usr/lib/xen-4.17/bin/xen-hvmctx (DomainId) 2>&1) -join "`n"
    $regs = @{}
    foreach ($m in [regex]::Matches($text, '\b(r[a-z0-9]+|cr[0-4])\s*[=:]?\s*(0x[0-9a-fA-F]+)')) {
        if (-not $regs.ContainsKey($m.Groups[1].Value)) { $regs[$m.Groups[1].Value] = [Convert]::ToUInt64($m.Groups[2].Value.Substring(2), 16) }
    }
    $regs
}

# A guest's serial log, read with .NET (the published vmi has no Select-String).
function SerialText([string]$path = $Serial) { if ($path -and [IO.File]::Exists($path)) { [IO.File]::ReadAllText($path) } else { '' } }

function SerialHas([string]$pattern, [int]$seconds, [string]$path = $Serial) {
    $deadline = [DateTime]::UtcNow.AddSeconds($seconds)
    do {
        if ([regex]::IsMatch((SerialText $path), $pattern)) { return $true }
        Start-Sleep -Seconds 2
    } while ([DateTime]::UtcNow -lt $deadline)
    $false
}

function AliveCount([string]$path = $Serial) {
    $m = [regex]::Matches((SerialText $path), 'domU alive (\d+)')
    if ($m.Count -gt 0) { [int]$m[$m.Count - 1].Groups[1].Value } else { -1 }
}

# Whether the guest prints a line matching the pattern after the serial log had $from characters.
function SerialHasAfter([string]$pattern, [int]$from, [int]$seconds, [string]$path = $Serial) {
    $deadline = [DateTime]::UtcNow.AddSeconds($seconds)
    do {
        $text = SerialText $path
        if ($text.Length -gt $from -and [regex]::IsMatch($text.Substring($from), $pattern)) { return $true }
        Start-Sleep -Seconds 2
    } while ([DateTime]::UtcNow -lt $deadline)
    $false
}

# The byte the guest itself reads at physical 0x1050 in its next report (0x5A as it wrote it; 0xCC while an INT3 is there).
function GuestByteNext([int]$seconds = 90, [string]$path = $Serial) {
    $from = (SerialText $path).Length
    $deadline = [DateTime]::UtcNow.AddSeconds($seconds)
    do {
        $text = SerialText $path
        if ($text.Length -gt $from) {
            $m = [regex]::Match($text.Substring($from), 'GUEST-BYTE (0x[0-9A-Fa-f]+)')
            if ($m.Success) { return $m.Groups[1].Value.ToUpperInvariant().Replace('0X', '0x') }
        }
        Start-Sleep -Seconds 2
    } while ([DateTime]::UtcNow -lt $deadline)
    'none'
}

# The guest's vCPU runs: its counter moves within the time given.
function GuestRuns([int]$seconds) { $before = AliveCount; SerialHas ("domU alive {0}\b" -f ($before + 1)) $seconds }

# ---------------------------------------------------------------- steps

function Step-Live {
    $null = Connect-VmiDomain -Name $Name -ReadOnly
    Try-Check 'read-guest-mark-physical' {
        $v = [uint32](Read-VmiMemory 0x1040 -Physical -As UInt32)
        Check 'read-guest-mark-physical' ($v -eq 0xC0FFEE11L) ('0x{0:x8} at physical 0x1040 (the guest wrote 0xc0ffee11)' -f $v)
    }
    Try-Check 'translate-direct-map' {
        $t = Resolve-VmiAddress 0xffff888000001040
        $v = [uint32](Read-VmiMemory 0xffff888000001040 -As UInt32)
        Check 'translate-direct-map' ($t.Pa -eq 0x1040 -and $v -eq 0xC0FFEE11L) ('0xffff888000001040 -> 0x{0:x}, reads 0x{1:x8}' -f $t.Pa, $v)
    }
    Try-Check 'translate-kernel-text' {
        $pa = (Resolve-VmiAddress 0xffffffff81000000).Pa
        $viaVa = Read-VmiMemory 0xffffffff81000000 -Length 16
        $viaPa = Read-VmiMemory 0x1000000 -Length 16 -Physical
        Check 'translate-kernel-text' ($pa -eq 0x1000000 -and (($viaVa.Bytes -join ',') -eq ($viaPa.Bytes -join ','))) ('0xffffffff81000000 -> 0x{0:x}; bytes equal physical 0x1000000' -f $pa)
    }
    Try-Check 'read-only-refuses-writes' {
        try { Write-VmiMemory 0x1030 -Bytes ([byte[]](1)) -Physical; Check 'read-only-refuses-writes' $false 'the write went through' }
        catch { Check 'read-only-refuses-writes' ($_.Exception.Message -match 'read-only') $_.Exception.Message }
    }
    Try-Check 'read-only-refuses-pause' {
        try { Suspend-VmiDomain; Resume-VmiDomain; Check 'read-only-refuses-pause' $false 'a read-only session paused the guest' }
        catch { Check 'read-only-refuses-pause' ($_.Exception.Message -match 'read-only' -and (XlState) -notmatch 'p') ("$($_.Exception.Message) (xl state '$(XlState)')") }
    }
    Disconnect-VmiDomain

    $null = Connect-VmiDomain -Name $Name
    Try-Check 'pause-guard' {
        Suspend-VmiDomain
        try {
            $paused = XlState
            $ctx = HvmCtx
            $r = Get-VmiRegister -Vcpu 0
            Check 'registers-equal-xen-hvmctx' ($ctx['rip'] -eq $r.Rip -and $ctx['cr3'] -eq $r.Cr3 -and $ctx['rsp'] -eq $r.Rsp) ('vmi rip=0x{0:x} cr3=0x{1:x} rsp=0x{2:x}; xen-hvmctx rip=0x{3:x} cr3=0x{4:x} rsp=0x{5:x}' -f $r.Rip, $r.Cr3, $r.Rsp, $ctx['rip'], $ctx['cr3'], $ctx['rsp'])
        } finally { Resume-VmiDomain }   # a failed check must not leave the guest paused for the checks after it
        $running = XlState
        Check 'pause-guard' ($paused -match 'p' -and $running -notmatch 'p') "xl state paused '$paused', resumed '$running'"
    }
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
    # The guest runs on after the register writes (a whole-context write once dropped an upcall raised while paused
    # and the guest waited forever: LabFindingsTests).
    Try-Check 'set-register-guest-runs' {
        $n = AliveCount
        Check 'set-register-guest-runs' (GuestRuns 90) "domU alive $n before, $(AliveCount) after"
    }
    Try-Check 'refusal-singlestep' {
        try { Enable-VmiMonitor Singlestep; Check 'refusal-singlestep' $true 'single-stepping is available here (an Intel host)'; Disable-VmiMonitor Singlestep }
        catch { Check 'refusal-singlestep' ($_.Exception.Message -match 'monitor trap flag' -and $_.Exception.Message -match 'Xen 4\.17') $_.Exception.Message }
    }
    Try-Check 'refusal-efer-monitor' {
        try { $null = Enable-VmiMonitor 'Msr:0xC0000080'; Disable-VmiMonitor 'Msr:0xC0000080'; Check 'refusal-efer-monitor' $true 'the EFER monitor is allowed here (an Intel host)' }
        catch { Check 'refusal-efer-monitor' ($_.Exception.Message -match 'SVME' -and $_.Exception.Message -match 'AMD') $_.Exception.Message }
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
    # CPUID: every answer steps past the instruction (else the guest repeats it forever), and registers set in the
    # answer are what the guest's kernel sees: leaf 0x564D4900 (Xen: zeros) is answered 564d4921 11 22 33.
    Try-Check 'monitor-cpuid-set-registers' {
        $before = AliveCount
        $null = Enable-VmiMonitor Cpuid
        $script:cpuidEvents = 0; $script:cpuidSet = 0; $leaves = [Collections.Generic.HashSet[uint32]]::new()
        $deadline = [DateTime]::UtcNow.AddSeconds(240)
        while ([DateTime]::UtcNow -lt $deadline -and -not ($script:cpuidSet -gt 0 -and [regex]::IsMatch((SerialText), 'GUEST-CPUID 564d4921 00000011 00000022 00000033'))) {
            Wait-VmiEvent -Count 50 -Timeout 10 | ForEach-Object {
                $script:cpuidEvents++
                $null = $leaves.Add($_.Leaf)
                if ($_.Leaf -eq 0x564D4900) {
                    $_.ResponseRegisters = $_.Registers.With('Rax', 0x564d4921).With('Rbx', 0x11).With('Rcx', 0x22).With('Rdx', 0x33)
                    $script:cpuidSet++
                }
            }
        }
        Disable-VmiMonitor Cpuid
        $grew = SerialHas ("domU alive {0}\b" -f ($before + 3)) 120
        $leafList = ($leaves | Sort-Object | ForEach-Object { '0x{0:x}' -f $_ }) -join ','
        Check 'monitor-cpuid-steps-past' ($script:cpuidEvents -ge 1 -and $grew) "$($script:cpuidEvents) CPUID events answered (leaves $leafList); the guest kept running: $grew"
        $line = [regex]::Match((SerialText), 'GUEST-CPUID 564d4921[^\r\n]*').Value
        Check 'monitor-cpuid-set-registers' ($script:cpuidSet -gt 0 -and $line -eq 'GUEST-CPUID 564d4921 00000011 00000022 00000033') "$($script:cpuidSet) answers set RAX..RDX; the guest's kernel printed '$line'"
    }
}

# Checks what the previous exit path left (the process has ended) with this process's read-write connect.
function Step-AfterExit {
    $w = @()
    $null = Connect-VmiDomain -Name $Name -WarningVariable w -WarningAction SilentlyContinue
    $warned = ($w | ForEach-Object { "$_" }) -join ' '
    if ($warned) { Write-Host "connect warned: $warned" }
    $id = DomainId
    if ($Prev -eq 'sigkill') {
        # SIGKILL ran no restore: this connect found the dead process's record and reclaimed the domain.
        Check 'exit-sigkill-reclaimed' ($warned -match 'Reclaimed:' -and $warned -notmatch 'Failed:') $warned
        $st = XlState
        Check 'exit-sigkill-not-paused' ($st -notmatch 'p') "xl state '$st' after the reclaim"
        $ok = GuestRuns 90
        Check 'exit-sigkill-not-frozen' $ok "domU alive $(AliveCount) after the reclaim"
        $recs = Records $id
        Check 'exit-sigkill-no-record' ($recs.Count -eq 0) "xenstore records after the reclaim: '$($recs -join ' ')'"
        $b = GuestByteNext
        Check 'exit-sigkill-no-int3' ($b -eq '0x5A') "the guest reads $b at physical 0x1050 after the reclaim (its own 0x5A; 0xCC is the killed session's INT3)"
    }
    elseif ($warned -match 'left changed') {
        Check "exit-$Prev-nothing-left" $false "the next connect found something to reclaim: $warned"
    }
    # A new session gets the ring: nothing is left holding it.
    Try-Check "exit-$Prev-ring-free" {
        $null = Enable-VmiMonitor Cpuid
        $e = @(Wait-VmiEvent -Count 2 -Timeout 60)
        Disable-VmiMonitor Cpuid
        Check "exit-$Prev-ring-free" ($e.Count -ge 1) "a new session took the ring and saw $($e.Count) events"
    }
}

# Takes everything an exit must undo (the ring, two monitors, a breakpoint's INT3, a pause and resume), then ends as -Exit says.
function Step-Hold {
    # A breakpoint on physical 0x1050, which the guest never runs (nested QEMU's SVM does not deliver INT3 to Xen, so no hit
    # could be answered: docs/xen.md). The guest reads the INT3 itself; reads through vmi show its own byte.
    Try-Check "exit-$Exit-int3-set" {
        $null = Set-VmiBreakpoint 0x1050 -Physical
        $b = GuestByteNext
        $via = [byte](Read-VmiMemory 0x1050 -Physical -As UInt8)
        Check "exit-$Exit-int3-set" ($b -eq '0xCC' -and $via -eq 0x5A) ('the guest reads {0} at physical 0x1050 (the INT3); vmi reads 0x{1:X2} (the original byte)' -f $b, $via)
    }
    # The monitors after the breakpoint check: from here on the guest runs only as far as its events are answered.
    $null = Enable-VmiMonitor Cr3, Cpuid
    Suspend-VmiDomain
    Resume-VmiDomain
    if ($Flag) { Set-Content -Path $Flag -Value $PID }   # dom0-test.sh signals this process (not the timeout around it)
    Stamp "holding guest $Name; exit by $Exit"
    switch ($Exit) {
        'disconnect' {
            $null = @(Wait-VmiEvent -Count 5 -Timeout 60)
            Disconnect-VmiDomain
            # Before the process ends: Disconnect alone restored the domain (dom0-test.sh checks again after the exit).
            $st = XlState; $recs = Records (DomainId); $b = GuestByteNext
            Check 'exit-disconnect-restored-before-exit' ($st -notmatch 'p' -and $recs.Count -eq 0 -and $b -eq '0x5A') "xl state '$st', xenstore records '$($recs -join ' ')', the guest reads $b at physical 0x1050"
        }
        'exception' { $null = @(Wait-VmiEvent -Count 5 -Timeout 60); throw 'the script fails on purpose (exit path: exception)' }
        default { Wait-VmiEvent -Timeout 900 | ForEach-Object { } }   # until a signal ends the process
    }
}

# The guest crashes (xen-hvmcrash, Xen's own tool), Xen keeps it (on_crash/on_reboot = "preserve"): read-only post-mortem.
function Step-Postmortem {
    $id = DomainId
    Stamp "crash $Name"
    $out = (& xen-hvmcrash $id 2>&1) -join ' '
    # A triple fault shuts an HVM domain down with reason "reboot" (---sr-), "crash" otherwise (---sc-). Wanted: 4th column 's'.
    $deadline = [DateTime]::UtcNow.AddSeconds(300)
    while ((XlState) -notmatch '^...s' -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Seconds 3 }
    $st = XlState
    Check 'guest-crashed-preserved' ($st -match '^...s') "xl state '$st' after xen-hvmcrash ($out)"
    if ($st -notmatch '^...s') { return }
    Try-Check 'postmortem-read-only' {
        $null = Connect-VmiDomain -Name $Name -ReadOnly
        $v = [uint32](Read-VmiMemory 0x1040 -Physical -As UInt32)
        $r = Get-VmiRegister -Vcpu 0
        $text = Read-VmiMemory 0x1000000 -Length 4096 -Physical
        $script:live = @{ Mark = $v; Rip = $r.Rip; Cr3 = $r.Cr3; Rsp = $r.Rsp; Text = ($text.Bytes -join ',') }
        Check 'postmortem-read-only' ($v -eq 0xC0FFEE11L) ('crashed domain: physical 0x1040 = 0x{0:x8}, rip=0x{1:x} cr3=0x{2:x}' -f $v, $r.Rip, $r.Cr3)
        Disconnect-VmiDomain
    }
    Try-Check 'postmortem-read-write-refused' {
        try { $null = Connect-VmiDomain -Name $Name; Check 'postmortem-read-write-refused' $false 'connected read-write'; Disconnect-VmiDomain }
        catch { Check 'postmortem-read-write-refused' ($_.Exception.Message -match 'ReadOnly') $_.Exception.Message }
    }
    if ($DumpCore -and $script:live) {
        # xl dump-core (Xen's own dump, ~190 KB/s here) of the same preserved domain, opened by the image driver.
        Try-Check 'postmortem-equals-xl-dump-core' {
            Stamp "xl dump-core $Name"
            & xl dump-core $Name $DumpCore 2>&1 | Out-Host
            Stamp 'dump-core done'
            $s = Connect-VmiDomain -Path $DumpCore
            $v = [uint32](Read-VmiMemory 0x1040 -Physical -As UInt32)
            $r = Get-VmiRegister -Vcpu 0
            $text = (Read-VmiMemory 0x1000000 -Length 4096 -Physical).Bytes -join ','
            Disconnect-VmiDomain
            $ok = $v -eq $script:live.Mark -and $r.Rip -eq $script:live.Rip -and $r.Cr3 -eq $script:live.Cr3 -and $r.Rsp -eq $script:live.Rsp -and $text -eq $script:live.Text
            Check 'postmortem-equals-xl-dump-core' $ok ('dump: mark 0x{0:x8} rip=0x{1:x} cr3=0x{2:x} rsp=0x{3:x}, kernel text page equal: {4}; live read-only: rip=0x{5:x} cr3=0x{6:x}' -f $v, $r.Rip, $r.Cr3, $r.Rsp, ($text -eq $script:live.Text), $script:live.Rip, $script:live.Cr3)
            Remove-Item $DumpCore
        }
    }
    & xl destroy $Name 2>&1 | Out-Host
}

# guest2 is created paused (xl create -p) and the monitors go on before its first instruction; then it boots. Every kind
# must be seen; once it is up, the CR4 writes that set CR4.TSD are denied, which the guest sees (its RDTSC runs).
function Step-Boot {
    & xl create -p $Config2 2>&1 | Out-Host
    if ($LASTEXITCODE -ne 0) { Check 'guest2-create' $false "xl create -p $Config2 failed (exit $LASTEXITCODE)"; return }
    $null = Connect-VmiDomain -Name $Name2
    # Not EFER (0xC0000080) on AMD: the driver refuses it there (Xen then let the guest read EFER.SVME and killed it);
    # STAR (0xC0000081) is written next to LSTAR by syscall_init.
    $monitors = 'Cr0', 'Cr4', 'Msr:0xC0000081', 'Msr:0xC0000082', 'Cpuid', 'DescriptorAccess'
    foreach ($m in $monitors) { Try-Check "boot-enable-$m" { $null = Enable-VmiMonitor $m } }
    Stamp "unpause $Name2 (monitors on)"
    & xl unpause $Name2
    $script:seen = @{}; $script:n = 0; $script:denied = 0
    $leaves = [Collections.Generic.HashSet[uint32]]::new()
    $narrowed = $false
    $deadline = [DateTime]::UtcNow.AddSeconds(1200)
    while ([DateTime]::UtcNow -lt $deadline) {
        $missing = @($monitors | Where-Object { -not $script:seen.ContainsKey($_) })
        if ($missing.Count -eq 0 -and -not $narrowed) {
            # Every kind seen: only CR4 from here on, for the denial.
            foreach ($m in $monitors) { if ($m -ne 'Cr4') { Disable-VmiMonitor $m } }
            $narrowed = $true
            Stamp "every kind seen after $($script:n) events"
        }
        if ($narrowed -and $script:denied -gt 0 -and [regex]::IsMatch((SerialText $Serial2), 'GUEST-TSD allowed')) { break }
        $before = $script:n
        Wait-VmiEvent -Count 200 -Timeout 10 | ForEach-Object {
            $ev = $_   # inside the switch below, $_ is the switch's value
            $script:n++
            $script:last = $ev
            $key = switch ($ev.Reason.Name) {
                'ControlRegister' { "$($ev.Register)" }
                'Msr' { 'Msr:0x{0:X}' -f $ev.Msr }
                default { $ev.Reason.Name }
            }
            if (-not $script:seen.ContainsKey($key)) { $script:seen[$key] = $ev.Details; Write-Host "first $key event: $($ev.Details)" }
            if ($ev.Reason.Name -eq 'Cpuid') { $null = $leaves.Add($ev.Leaf) }
            if ($key -eq 'Cr4' -and ($ev.NewValue -band 4) -and -not ($ev.OldValue -band 4)) { $ev.Response = 'Deny'; $script:denied++ }
        }
        # A quiet 10 s: say where the guest is (a boot that stops under monitors is this lab's open question).
        if ($script:n -eq $before) {
            $rip = try { '0x{0:x}' -f (Get-VmiRegister -Vcpu 0).Rip } catch { "? ($($_.Exception.Message))" }
            $lastText = if ($script:last) { $script:last.Reason.Name + ' at rip ' + ('0x{0:x}' -f $script:last.Registers.Rip) + ': ' + $script:last.Details } else { 'none' }
            Stamp ("boot quiet 10 s after $($script:n) events: xl '{0}', rip {1}, serial {2} bytes, last event {3}" -f (XlState $Name2), $rip, (SerialText $Serial2).Length, $lastText)
        }
    }
    Disconnect-VmiDomain
    Write-Host "boot events: $($script:n); kinds: $($script:seen.Keys -join ', '); CR4.TSD writes denied: $($script:denied)"
    foreach ($k in $monitors) {
        Check "boot-event-$k" $script:seen.ContainsKey($k) $(if ($script:seen.ContainsKey($k)) { $script:seen[$k] } else { "none in $($script:n) events" })
    }
    Check 'boot-cpuid-leaves' ($leaves.Contains(0) -and $leaves.Contains(1)) ("leaves: " + (($leaves | Sort-Object | ForEach-Object { '0x{0:x}' -f $_ }) -join ','))
    $tsd = [regex]::Match((SerialText $Serial2), 'GUEST-TSD [a-z]+').Value
    Check 'cr4-write-denied-seen-by-guest' ($script:denied -gt 0 -and [regex]::IsMatch((SerialText $Serial2), 'GUEST-TSD allowed')) "$($script:denied) CR4 writes setting TSD denied; the guest's RDTSC under prctl(PR_TSC_SIGSEGV): first '$tsd', allowed seen: $([regex]::IsMatch((SerialText $Serial2), 'GUEST-TSD allowed'))"
}

# A PVH guest (type = "pvh", no device model): read-only reads and translation, then a read-write session with a CR3
# monitor, a breakpoint's INT3 and a pause, restored by Disconnect (the guest's own reads and xl say so).
function Step-Pvh {
    $log = $SerialPvh
    & xl create $ConfigPvh 2>&1 | Out-Host
    if ($LASTEXITCODE -ne 0) { Check 'pvh-boots' $false "xl create $ConfigPvh failed (exit $LASTEXITCODE)"; return }
    $up = SerialHas 'DOMU-UP' 900 $log
    Check 'pvh-boots' $up $(if ($up) { [regex]::Match((SerialText $log), 'DOMU-UP[^\r\n]*').Value } else { "no DOMU-UP on its console in 900 s; xl state '$(XlState guest3)'" })
    if (-not $up) { & xl destroy guest3 2>&1 | Out-Host; return }
    Try-Check 'pvh-read-only' {
        $null = Connect-VmiDomain -Name guest3 -ReadOnly
        $v = [uint32](Read-VmiMemory 0x1040 -Physical -As UInt32)
        $t = Resolve-VmiAddress 0xffff888000001040
        $r = Get-VmiRegister -Vcpu 0
        Disconnect-VmiDomain
        Check 'pvh-read-only' ($v -eq 0xC0FFEE11L -and $t.Pa -eq 0x1040) ('PVH guest: physical 0x1040 = 0x{0:x8}; 0xffff888000001040 -> 0x{1:x}; rip=0x{2:x} cr3=0x{3:x}' -f $v, $t.Pa, $r.Rip, $r.Cr3)
    }
    Try-Check 'pvh-monitor-and-restore' {
        $null = Connect-VmiDomain -Name guest3
        $null = Set-VmiBreakpoint 0x1050 -Physical
        $held = GuestByteNext 90 $log
        $null = Enable-VmiMonitor Cr3
        $e = @(Wait-VmiEvent -Count 5 -Timeout 120)
        Disable-VmiMonitor Cr3
        Suspend-VmiDomain
        $paused = XlState guest3
        Resume-VmiDomain
        Disconnect-VmiDomain
        $after = GuestByteNext 90 $log
        $st = XlState guest3
        $ok = $e.Count -eq 5 -and $held -eq '0xCC' -and $paused -match 'p' -and $after -eq '0x5A' -and $st -notmatch 'p'
        Check 'pvh-monitor-and-restore' $ok "$($e.Count) CR3 events; the guest read $held at 0x1050 under the breakpoint, $after after Disconnect; xl state paused '$paused', after '$st'"
    }
    & xl destroy guest3 2>&1 | Out-Host
}

switch ($Mode) {
    'live' {
        Step-Live
        $Exit = 'exception'
        Step-Hold
    }
    'hold' {
        if ($Prev) { Step-AfterExit } else { $null = Connect-VmiDomain -Name $Name }
        Step-Hold
    }
    'boot' {
        # VMI_XENLAB_ONLY=boot: only the monitored boot and the PVH guest (dom0-test.sh skips guest1 for it).
        Step-Boot
        if ($ConfigPvh) { Step-Pvh }
    }
    'final' {
        Step-AfterExit
        Disconnect-VmiDomain
        Step-Postmortem
        Step-Boot
        if ($ConfigPvh) { Step-Pvh }
    }
    default { throw "unknown mode $Mode" }
}
Write-Host "VMI-DONE mode=$Mode"
