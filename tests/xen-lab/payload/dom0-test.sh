#!/bin/sh
# Runs inside dom0 (from /lab, the second disk) as the last thing lab-init does. Writes one line per result to
# /lab/out/results.txt:   R <step> PASS|FAIL|ENV <detail>
#   ENV: the environment failed (a process died before vmi's script started, or a tool other than vmi crashed);
#   a vmi that dies after its script started is a FAIL of the driver and is never retried.
OUT=/lab/out; RES=$OUT/results.txt; mkdir -p $OUT /var/log/xen/console /var/lib/xen/dump /run/xen /run/xenstored
: > $RES
ROOT=/usr/lib/xen-4.17
export PATH=$ROOT/bin:$PATH HOME=/tmp DOTNET_BUNDLE_EXTRACT_BASE_DIR=/lab/dotnet-bundle DOTNET_CLI_TELEMETRY_OPTOUT=1
t() { echo "LAB-T $(cut -d' ' -f1 /proc/uptime) $*"; }
r() { id=$1; st=$2; shift 2; echo "R $id $st $*" | tee -a $RES; }

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
  if [ $VRC -eq 137 ]; then r $label-process FAIL "vmi did not finish in $tmo s (killed)"
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

# The runtime alone, five times: how often the environment kills a process that does nothing with Xen.
crashes=0
for i in 1 2; do
  timeout -s KILL 300 /lab/vmi -NoProfile -NonInteractive -Command 'Write-Host VMI-READY' > $OUT/startup-$i.log 2>&1 || crashes=$((crashes+1))
done
if [ $crashes -eq 0 ]; then r env-vmi-startup PASS "2 of 2 plain vmi starts finished"; else r env-vmi-startup ENV "$crashes of 2 plain vmi starts died"; fi

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
  echo "LAB-RESULTS-END"
  exit 0
fi

if [ ! -f /lab/skip-hvm ]; then
  S=$OUT/guest1-serial.log
  # 1. The guest boots (the monitored boot comes last, on a second guest: the most important checks first).
  t "create guest1"
  xl create /lab/guest-hvm.cfg > $OUT/xl-create.log 2>&1 || r guest-create FAIL "$(tail -c 300 $OUT/xl-create.log)"
  i=0; while ! grep -q DOMU-UP $S 2>/dev/null && [ $i -lt 1200 ]; do sleep 5; i=$((i+5)); done
  grep -q DOMU-UP $S && t "guest1 up: $(grep -m1 DOMU-UP $S)" || r guest-boots FAIL "no DOMU-UP in $i s; state $(state guest1); $(tail -c 300 $S | tr '\n' ' ')"

  # 2. Reads, translations, registers, writes, pause guard, refusals, CR3 and CPUID monitors on the running guest.
  t "live checks"
  run_vmi live 1500 -Mode live -Name guest1 -Serial $S
  if grows $S 60; then r live-guest-still-runs PASS "domU alive $(alive $S)"; else r live-guest-still-runs FAIL "the guest's counter stopped at $(alive $S); state $(state guest1)"; fi

  # 3. Exit paths: each ends a process holding a ring, two monitors and a pause/resume; then dom0 checks the guest.
  domid=$(xl domid guest1)
  for how in sigkill disconnect sigterm exception sigint sighup; do
    t "exit path $how"
    rm -f /tmp/hold.flag
    LAB_EXIT=$how timeout -s KILL 900 /lab/vmi -NoProfile -NonInteractive -File /lab/lab.ps1 -Mode hold -Name guest1 -Flag /tmp/hold.flag > $OUT/exit-$how.log 2>&1 &
    vpid=$!
    i=0; while [ ! -f /tmp/hold.flag ] && [ $i -lt 600 ] && kill -0 $vpid 2>/dev/null; do sleep 2; i=$((i+2)); done
    if [ ! -f /tmp/hold.flag ]; then
      wait $vpid; rc=$?
      if grep -q VMI-READY $OUT/exit-$how.log; then r exit-$how FAIL "vmi ended (exit $rc) before it held the domain: $(tail -c 300 $OUT/exit-$how.log | tr '\n' ' ')"
      else r exit-$how ENV "vmi died before its script started (exit $rc)"; fi
      continue
    fi
    sleep 5
    case $how in
      sigint) kill -INT $vpid ;; sigterm) kill -TERM $vpid ;; sighup) kill -HUP $vpid ;; sigkill) kill -KILL $vpid ;;
    esac
    wait $vpid; rc=$?
    st=$(state guest1); rec=$(xenstore-list /local/domain/0/vmi/$domid 2>/dev/null | tr '\n' ' ')
    if [ $how = sigkill ]; then
      # The process left everything: its record must be there for the next session, which reclaims.
      if [ -n "$rec" ]; then r exit-sigkill-record-left PASS "record $rec, state $st"; else r exit-sigkill-record-left FAIL "no record in xenstore"; fi
      run_vmi reclaim 900 -Mode check-clean -Name guest1 -Flag exit-sigkill
      if grep -q 'Reclaimed' $OUT/reclaim.log; then r exit-sigkill-reclaimed PASS "$(grep -m1 -o 'Reclaimed[^|]*' $OUT/reclaim.log | head -c 300)"; else r exit-sigkill-reclaimed FAIL "no reclaim reported"; fi
      st=$(state guest1); rec=$(xenstore-list /local/domain/0/vmi/$domid 2>/dev/null | tr '\n' ' ')
    else
      case $how in disconnect|exception) want="exit 0/1";; sigint) want="exit 130 or 0/1";; sigterm) want="exit 143";; sighup) want="exit 129";; esac
      if [ $rc -ge 128 ] && [ $rc -ne 129 ] && [ $rc -ne 130 ] && [ $rc -ne 143 ]; then r exit-$how-process FAIL "vmi crashed (exit $rc; wanted $want)"; fi
    fi
    if echo "$st" | grep -q p; then r exit-$how-not-paused FAIL "state $st"; else r exit-$how-not-paused PASS "state $st (exit $rc)"; fi
    if grows $S 90; then r exit-$how-not-frozen PASS "domU alive $(alive $S)"; else r exit-$how-not-frozen FAIL "counter stopped at $(alive $S)"; fi
    if [ -z "$rec" ]; then r exit-$how-no-record PASS "no vmi record in xenstore"; else r exit-$how-no-record FAIL "records left: $rec"; fi
    if [ $how != sigkill ]; then run_vmi check-$how 600 -Mode check-clean -Name guest1 -Flag exit-$how; fi
  done

  # 4. Post-mortem: the guest crashes, Xen keeps it (on_crash = "preserve").
  t "crash guest1"
  # xen-hvmcrash (Xen's own tool) makes the domain's vCPUs triple-fault; Xen then crashes the domain.
  xen-hvmcrash $(xl domid guest1) > $OUT/crash.log 2>&1
  i=0; while ! state guest1 | grep -q c && [ $i -lt 300 ]; do sleep 5; i=$((i+5)); done
  if state guest1 | grep -q c; then
    r guest-crashed-preserved PASS "state $(state guest1)"
    run_vmi postmortem 900 -Mode postmortem -Name guest1
  else
    r guest-crashed-preserved FAIL "state $(state guest1) after the crash request: $(tail -c 200 $OUT/crash.log | tr '\n' ' ')"
  fi
  xl dmesg | grep -E 'd[0-9]+v|crash|Triple' | tail -20
  xl destroy guest1

  # 5. Boot under the monitors: the domain is created paused, vmi enables them, then the domain starts.
  S2=$OUT/guest2-serial.log
  sed 's/guest1/guest2/g' /lab/guest-hvm.cfg > /tmp/guest2.cfg
  t "create guest2 paused"
  xl create -p /tmp/guest2.cfg > $OUT/xl-create.log 2>&1 || r guest-create FAIL "$(tail -c 300 $OUT/xl-create.log)"
  rm -f /tmp/boot.flag
  run_vmi boot 1200 -Mode boot -Name guest2 -Flag /tmp/boot.flag &
  bootpid=$!
  i=0; while [ ! -f /tmp/boot.flag ] && [ $i -lt 600 ] && kill -0 $bootpid 2>/dev/null; do sleep 2; i=$((i+2)); done
  t "unpause guest2 (monitors on: $(cat /tmp/boot.flag 2>/dev/null))"
  xl unpause guest2
  wait $bootpid
  i=0; while ! grep -q DOMU-UP $S2 2>/dev/null && [ $i -lt 900 ]; do sleep 5; i=$((i+5)); done
  if grep -q DOMU-UP $S2; then r guest-boots-under-monitors PASS "$(grep -m1 DOMU-UP $S2)"; else r guest-boots-under-monitors FAIL "no DOMU-UP after monitored boot; state $(state guest2); $(tail -c 300 $S2 | tr '\n' ' ')"; fi

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
echo "LAB-RESULTS-END"
