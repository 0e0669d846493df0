#!/bin/sh
# Runs inside dom0 (from /lab, the second disk) as the last thing lab-init does. Writes one line per result to
# /lab/out/results.txt:   R <step> PASS|FAIL|ENV <detail>
#   ENV: the environment failed (a process died before vmi's script started, or a tool other than vmi crashed);
#   a vmi that dies after its script started is a FAIL of the driver and is never retried.
OUT=/lab/out; RES=$OUT/results.txt; mkdir -p $OUT /var/log/xen/console /var/lib/xen/dump /run/xen /run/xenstored
: > $RES
ROOT=/usr/lib/xen-4.17
export PATH=$ROOT/bin:$PATH HOME=/tmp DOTNET_BUNDLE_EXTRACT_BASE_DIR=/lab/dotnet-bundle DOTNET_CLI_TELEMETRY_OPTOUT=1
# .NET's W^X double-maps its code pages (a memfd mapped writable at one address, executable at another). In this
# nested QEMU TCG + Xen PV dom0, processes died in those pages (segfaults "in memfd:doublemapper", code bytes that were
# data): 3 of 3 vmi starts of the live checks on 2026-12-01. The same crash is known under other emulators (Rosetta,
# QEMU user mode) with the same cure. run.sh writes /lab/wxe from VMI_XENLAB_WXE (default 0).
export DOTNET_EnableWriteXorExecute=$(cat /lab/wxe 2>/dev/null || echo 0)
# The published single-file vmi extracts pwsh's built-in modules (Utility, Management...) under
# runtimes/unix/lib/net10.0/Modules, not $PSHOME/Modules, so Write-Host and the rest are not found (since vmi became pwsh's
# own console host; reported in docs/xen.md): point PSModulePath at them.
PSM=$(ls -d /lab/dotnet-bundle/vmi/*/runtimes/unix/lib/net10.0/Modules 2>/dev/null | head -1)
[ -n "$PSM" ] && export PSModulePath=$PSM
t() { echo "LAB-T $(cut -d' ' -f1 /proc/uptime) $*"; }
r() { _rid=$1; _rst=$2; shift 2; echo "R $_rid $_rst $*" | tee -a $RES; }

# run_vmi LABEL TIMEOUT ARGS...: runs the payload; retries only a crash before VMI-READY (the runtime's start-up).
run_vmi() {
  label=$1; tmo=$2; shift 2
  for try in 1 2 3; do
    timeout -s KILL $tmo /lab/vmi -NoProfile -NonInteractive -File /lab/lab.ps1 "$@" > $OUT/$label.log 2>&1
    VRC=$?
    grep -q VMI-READY $OUT/$label.log && break
    if [ $VRC -ge 128 ] || [ $VRC -eq 124 ]; then
      r $label-start ENV "vmi died before its script started (exit $VRC, try $try): $(tail -c 300 $OUT/$label.log | tr '\n' ' ')"
      continue
    fi
    break
  done
  grep '^CHECK ' $OUT/$label.log | sed 's/^CHECK /R /' | tee -a $RES
  if ! grep -q VMI-READY $OUT/$label.log && [ $VRC -lt 128 ] && [ $VRC -ne 124 ]; then r $label-process FAIL "vmi ended before its script's first line (exit $VRC, not a crash): $(tail -c 300 $OUT/$label.log | tr '\n' ' ')"
  elif ! grep -q VMI-READY $OUT/$label.log; then r $label-process ENV "vmi never started its script in 3 tries (exit $VRC): the environment, not the driver"
  elif [ $VRC -eq 137 ]; then r $label-process FAIL "vmi did not finish in $tmo s (killed)"
  elif [ $VRC -ge 128 ]; then r $label-process FAIL "vmi crashed after its script started (exit $VRC): $(grep -m3 -E 'Segmentation|Fatal|Unhandled|Aborted' $OUT/$label.log | tr '\n' ' ')"
  fi
  sed 's/^/  | /' $OUT/$label.log | tail -40
}

alive() { sed -n 's/.*domU alive \([0-9]*\).*/\1/p' $1 2>/dev/null | tail -1; }

# grows FILE SECONDS: the guest's counter moves (its vCPU runs)
grows() {
  a=$(alive $1); i=0
  while [ $i -lt $2 ]; do sleep 5; i=$((i+5)); b=$(alive $1); [ -n "$b" ] && [ "$b" != "$a" ] && return 0; done
  return 1
}

state() { xl list $1 2>/dev/null | awk 'NR==2 {print $5}'; }

t test-start
# The heartbeat run.sh's stall watchdog listens for: a dom0 whose timers stopped prints nothing more.
( while sleep 120; do echo "LAB-HB $(cut -d' ' -f1 /proc/uptime)"; done ) &
HB=$!   # killed at the end: it holds lab-init's pipe to tee open, which would keep dom0 from powering off
echo "caps: $(cat /proc/xen/capabilities) version: $(cat /sys/hypervisor/version/major).$(cat /sys/hypervisor/version/minor)$(cat /sys/hypervisor/version/extra)"
XS=$ROOT/bin/xenstored; [ -x $XS ] || XS=$(ls $ROOT/bin/*xenstored* | head -1)
$XS --pid-file=/run/xenstore.pid; t "xenstored started ($XS)"
$ROOT/bin/xen-init-dom0; t xen-init-dom0
$ROOT/bin/xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console; t xenconsoled
xl info > $OUT/xl-info.txt 2>&1
grep -E 'xen_version|virt_caps|xen_commandline|nr_cpus' $OUT/xl-info.txt
vendor=$(sed -n 's/^vendor_id[^:]*: //p' /proc/cpuinfo | head -1)
if grep -q 'xen_version.*4\.17' $OUT/xl-info.txt; then r env-xen PASS "$(grep xen_version $OUT/xl-info.txt | tr -s ' ') cpu=$vendor $(grep virt_caps $OUT/xl-info.txt | tr -s ' ')"
else r env-xen ENV "the toolstack did not come up: $(head -c 300 $OUT/xl-info.txt)"; fi

echo "DOTNET_EnableWriteXorExecute=$DOTNET_EnableWriteXorExecute"

# Stress mode (VMI_XENLAB_STRESS=N): how reliable is this nested environment? N runs of vmi doing some work, and N
# round trips of 16 MB of vmi through gzip and md5sum (libc's SIMD memcpy, the page allocator), checked against the
# host's checksum. No driver involved: every death or wrong sum here is the environment's.
if [ -f /lab/stress ]; then
  n=$(cat /lab/stress); vd=0; td=0; bad=0; want=$(cat /lab/vmi.md5)
  for i in $(seq 1 $n); do
    timeout -s KILL 600 /lab/vmi -NoProfile -NonInteractive -Command '$x = 1..20000 | ForEach-Object { [string]$_ }; Write-Host ("ok " + ($x -join ",").Length)' > $OUT/stress-vmi-$i.log 2>&1
    rc=$?; [ $rc -ne 0 ] && { vd=$((vd+1)); echo "stress vmi $i: exit $rc $(tail -c 200 $OUT/stress-vmi-$i.log | tr '\n' ' ')"; }
    sum=$(head -c 16777216 /lab/vmi | gzip -1 | gunzip | md5sum | cut -d' ' -f1); rc=$?
    [ $rc -ne 0 ] && td=$((td+1)); [ "$sum" != "$want" ] && bad=$((bad+1))
    t "stress round $i: vmi deaths $vd, tool deaths $td, wrong sums $bad"
  done
  r stress-vmi $([ $vd -eq 0 ] && echo PASS || echo ENV) "$vd of $n vmi runs died"
  r stress-tools $([ $td -eq 0 ] && [ $bad -eq 0 ] && echo PASS || echo ENV) "$td of $n gzip|md5sum pipelines died, $bad gave a wrong checksum"
  dmesg | grep -iE 'segfault|general protection|trap' | tail -20
  kill $HB 2>/dev/null
  echo "LAB-RESULTS-END"
  exit 0
fi

if [ ! -f /lab/skip-hvm ]; then
  S=$OUT/guest1-serial.log; S2=$OUT/guest2-serial.log
  # VMI_XENLAB_ONLY=boot (run.sh writes /lab/only-boot): only the monitored boot of guest2 and the PVH guest, the part
  # that takes longest to get right, without the half hour of guest1's live checks and exit paths before it.
  if [ ! -f /lab/only-boot ]; then
  # 1. The guest boots (the monitored boot comes last, on a second guest: the most important checks first).
  t "create guest1"
  xl create /lab/guest-hvm.cfg > $OUT/xl-create.log 2>&1 || r guest-create FAIL "$(tail -c 300 $OUT/xl-create.log)"
  i=0; while ! grep -q DOMU-UP $S 2>/dev/null && [ $i -lt 1200 ]; do sleep 5; i=$((i+5)); done
  grep -q DOMU-UP $S && t "guest1 up: $(grep -m1 DOMU-UP $S)" || r guest-boots FAIL "no DOMU-UP in $i s; state $(state guest1); $(tail -c 300 $S | tr '\n' ' ')"
  domid=$(xl domid guest1)
  # The guest's own probes without vmi: CR4.TSD traps its RDTSC, leaf 0x564D4900 reads zeros (Xen's answer).
  i=0; while ! grep -q 'GUEST-TSD' $S && [ $i -lt 120 ]; do sleep 5; i=$((i+5)); done
  if grep -q 'GUEST-TSD trapped' $S; then r guest-probe-tsd-baseline PASS "$(grep -m1 GUEST-TSD $S)"; else r guest-probe-tsd-baseline FAIL "$(grep -m1 GUEST-TSD $S || echo 'no GUEST-TSD line') (wanted: trapped)"; fi
  if grep -q 'GUEST-CPUID 00000000 00000000 00000000 00000000' $S; then r guest-probe-cpuid-baseline PASS "$(grep -m1 GUEST-CPUID $S)"; else r guest-probe-cpuid-baseline FAIL "$(grep -m1 GUEST-CPUID $S || echo 'no GUEST-CPUID line') (wanted: zeros)"; fi

  # after_exit HOW RC: the process of exit path HOW has ended (exit code RC): dom0 checks the guest.
  after_exit() {
    how=$1; rc=$2
    st=$(state guest1); rec=$(xenstore-list /local/domain/0/vmi/$domid 2>/dev/null | tr '\n' ' ')
    if [ $how = sigkill ]; then
      # The process left everything: its record must be there for the next session, which reclaims (and checks the rest).
      if [ -n "$rec" ]; then r exit-sigkill-record-left PASS "record $rec, state $st"; else r exit-sigkill-record-left FAIL "no record in xenstore"; fi
      return
    fi
    case $how in
      disconnect) ok="0" ;; exception) ok="1" ;; sigint) ok="130 0 1" ;; sigterm) ok="143" ;; sighup) ok="129" ;;
    esac
    if echo " $ok " | grep -q " $rc "; then r exit-$how-exit-code PASS "exit $rc"; else r exit-$how-exit-code FAIL "exit $rc (wanted $ok)"; fi
    if echo "$st" | grep -q p; then r exit-$how-not-paused FAIL "state $st"; else r exit-$how-not-paused PASS "state $st (exit $rc)"; fi
    if grows $S 90; then r exit-$how-not-frozen PASS "domU alive $(alive $S)"; else r exit-$how-not-frozen FAIL "counter stopped at $(alive $S)"; fi
    if [ -z "$rec" ]; then r exit-$how-no-record PASS "no vmi record in xenstore"; else r exit-$how-no-record FAIL "records left: $rec"; fi
    # The breakpoint's INT3 is gone: the guest's own next read of physical 0x1050 is its 0x5A again.
    n=$(grep -c 'GUEST-BYTE' $S); i=0
    while [ "$(grep -c 'GUEST-BYTE' $S)" -le "$n" ] && [ $i -lt 90 ]; do sleep 3; i=$((i+3)); done
    b=$(grep 'GUEST-BYTE' $S | tail -1 | tr -d '\r')
    if [ "$b" = "GUEST-BYTE 0x5A" ]; then r exit-$how-no-int3 PASS "$b"; else r exit-$how-no-int3 FAIL "the guest's next read: '$b' (wanted 0x5A, its own byte)"; fi
  }

  # 2. Reads, translations, registers, writes, pause guard, refusals, CR3 and CPUID monitors on the running guest; then
  #    the process holds the domain and ends by an exception: the first exit path.
  t "live checks (exit path: exception)"
  run_vmi live 1800 -Mode live -Name guest1 -Serial $S
  if grep -q 'holding guest guest1' $OUT/live.log; then after_exit exception $VRC; else r exit-exception-process FAIL "the live process never held the domain (exit $VRC)"; fi

  # 3. Exit paths: each process checks what the previous one left (a SIGKILL's leftovers it reclaims), takes the ring,
  #    two monitors and a pause/resume, and ends the way asked; dom0 checks the guest after it ended.
  prev=exception
  for how in sigkill sigterm sighup sigint disconnect; do
    t "exit path $how"
    rm -f /tmp/hold.flag
    timeout -s KILL 1200 /lab/vmi -NoProfile -NonInteractive -File /lab/lab.ps1 -Mode hold -Name guest1 -Serial $S -Flag /tmp/hold.flag -Prev $prev -Exit $how > $OUT/exit-$how.log 2>&1 &
    vpid=$!
    i=0; while [ ! -f /tmp/hold.flag ] && [ $i -lt 900 ] && kill -0 $vpid 2>/dev/null; do sleep 2; i=$((i+2)); done
    if [ ! -f /tmp/hold.flag ]; then
      wait $vpid; rc=$?
      grep '^CHECK ' $OUT/exit-$how.log | sed 's/^CHECK /R /' | tee -a $RES
      if grep -q VMI-READY $OUT/exit-$how.log; then r exit-$how-process FAIL "vmi ended (exit $rc) before it held the domain: $(tail -c 300 $OUT/exit-$how.log | tr '\n' ' ')"
      else r exit-$how-process ENV "vmi died before its script started (exit $rc)"; fi
      sed 's/^/  | /' $OUT/exit-$how.log | tail -20
      prev=
      break
    fi
    sleep 3
    # The signal goes to vmi itself (its PID is in the flag): a SIGKILL sent to the timeout around it would leave vmi running.
    tpid=$(cat /tmp/hold.flag)
    case $how in
      sigint) kill -INT $tpid ;; sigterm) kill -TERM $tpid ;; sighup) kill -HUP $tpid ;; sigkill) kill -KILL $tpid ;;
    esac
    wait $vpid; rc=$?
    t "exit path $how: vmi ended (exit $rc)"
    grep '^CHECK ' $OUT/exit-$how.log | sed 's/^CHECK /R /' | tee -a $RES
    if kill -0 $tpid 2>/dev/null; then r exit-$how-process FAIL "vmi $tpid still runs after the $how"; kill -KILL $tpid; fi
    [ $rc -eq 137 ] && [ $how != sigkill ] && r exit-$how-process FAIL "vmi did not finish in time (killed)"
    after_exit $how $rc
    sed 's/^/  | /' $OUT/exit-$how.log | tail -20
    prev=$how
  done

  fi
  # 4. What the last exit path left; the post-mortem on guest1 (crashed by xen-hvmcrash, kept by on_crash = "preserve");
  #    then guest2 boots under CR0, CR4, STAR, LSTAR, CPUID and descriptor-access monitors, and a CR4 write is denied.
  sed -e 's/guest1/guest2/g' /lab/guest-hvm.cfg > /tmp/guest2.cfg
  dump=; [ -f /lab/dumpcore ] && dump=/lab/out/guest1.core
  t "final: after $prev, post-mortem, monitored boot"
  pvh=; [ -f /lab/guest-pvh.cfg ] && pvh=/lab/guest-pvh.cfg
  mode=final; [ -f /lab/only-boot ] && mode=boot
  run_vmi final 3000 -Mode $mode -Name guest1 -Serial $S -Prev "${prev:-none}" -Name2 guest2 -Config2 /tmp/guest2.cfg -Serial2 $S2 -DumpCore "$dump" \
    -ConfigPvh "$pvh" -SerialPvh /var/log/xen/console/guest-guest3.log
  rm -f /lab/out/guest1.core
  xl destroy guest1 2>/dev/null
  i=0; while ! grep -q DOMU-UP $S2 2>/dev/null && [ $i -lt 300 ]; do sleep 5; i=$((i+5)); done
  if grep -q DOMU-UP $S2; then r guest-boots-under-monitors PASS "$(grep -m1 DOMU-UP $S2)"; else r guest-boots-under-monitors FAIL "no DOMU-UP after the monitored boot; state $(state guest2); $(tail -c 300 $S2 | tr '\n' ' ')"; fi
  # After the session ended, CR4.TSD traps again (the denial was the session's answer, not a change left behind).
  n2=$(grep -c 'GUEST-TSD' $S2); i=0
  while [ "$(grep -c 'GUEST-TSD' $S2)" -le "$n2" ] && [ $i -lt 90 ]; do sleep 5; i=$((i+5)); done
  last=$(grep 'GUEST-TSD' $S2 | tail -1)
  if echo "$last" | grep -q trapped; then r cr4-deny-ends-with-session PASS "$last"; else r cr4-deny-ends-with-session FAIL "last probe after the session: '$last'"; fi
  xl dmesg | grep -E 'd[0-9]+v|crash|Triple' | tail -20
  xl destroy guest2
fi

# Processes other than vmi that the environment killed (a segfault in libc, the allocator...).
dmesg | grep -iE 'segfault|general protection' | grep -v ' vmi\[' > $OUT/env-segfaults.txt
if [ -s $OUT/env-segfaults.txt ]; then r env-other-processes ENV "$(wc -l < $OUT/env-segfaults.txt) crash(es) outside vmi: $(head -c 300 $OUT/env-segfaults.txt | tr '\n' ' ')"
else r env-other-processes PASS "no process outside vmi crashed"; fi
cp /var/log/xen/console/* /var/log/xen/*.log $OUT/ 2>/dev/null
xl dmesg > $OUT/xl-dmesg.txt
dmesg > $OUT/dom0-dmesg.txt
t test-end
kill $HB 2>/dev/null
echo "LAB-RESULTS-END"
