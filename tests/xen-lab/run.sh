#!/bin/bash
# The Xen lab: a real Xen 4.17 (Debian 12's xen-hypervisor-4.17-amd64) under QEMU TCG, a PV dom0 (Debian 12), an HVM
# domU on HAP over QEMU's emulated AMD SVM, and this checkout's vmi (published ReadyToRun) inside dom0. dom0 runs
# payload/dom0-test.sh, which checks every step from outside the driver and writes one result per line.
#
#   sudo tests/xen-lab/run.sh
#
# Cached outside the clone, keyed by the hash of the scripts that make each piece (a change rebuilds only that):
#   $VMI_XENLAB_CACHE (/var/cache/vmi-tests/xenlab)/rootfs-<hash>   dom0's root file system (4-16 min once, network)
#                                                 /dom0-<hash>     its disk image, Xen and dom0's kernel and initrd
# Every run: the guest's initramfs, vmi (dotnet publish -r linux-x64 ReadyToRun), the lab disk, one boot of QEMU.
# Results: $VMI_XENLAB_OUT (artifacts/xen-lab)/results.txt ("R <step> PASS|FAIL|ENV <detail>"), serial.log, logs.
#
# Exit: 0 every result PASS | 1 a FAIL (the driver: never retried) | 2 the environment failed (ENV results, or the
# lab never reached its tests: the serial log's tail is printed) | 3 this machine cannot run it (the reason is printed).
# Knobs: VMI_XENLAB_STRESS=N (only measure the environment: N vmi runs and N gzip|md5sum round trips in dom0),
#        VMI_XENLAB_DUMPCORE (1: compare with xl dump-core this run; 0: not; default once per cached lab),
#        VMI_XENLAB_NICE (QEMU's nice level, 0), VMI_XENLAB_TIMEOUT (QEMU's hard limit, s; default 3600), VMI_XENLAB_ACCEL (tcg,thread=single),
#        VMI_XENLAB_CPU (max,la57=off,avx=off,avx2=off,xsave=off,fsgsbase=off: docs/xen.md says why), VMI_XENLAB_MEM (3G), VMI_XENLAB_WXE (.NET's W^X in dom0: 0),
#        VMI_XENLAB_ONLY=boot (only the monitored boot of a second guest and the PVH guest: a quicker run for that part),
#        MIRROR (the Debian mirror for the root file system).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${VMI_XENLAB_CACHE:-/var/cache/vmi-tests/xenlab}
OUT=${VMI_XENLAB_OUT:-$REPO/artifacts/xen-lab}
QEMU_TIMEOUT=${VMI_XENLAB_TIMEOUT:-3600}
ACCEL=${VMI_XENLAB_ACCEL:-tcg,thread=single}
CPU=${VMI_XENLAB_CPU:-max,la57=off,avx=off,avx2=off,xsave=off,fsgsbase=off}
MEM=${VMI_XENLAB_MEM:-3G}
start=$(date +%s)
say() { echo "xen-lab: $*"; }
cannot() { say "cannot run here: $*"; exit 3; }
envfail() { say "ENVIRONMENT: $*"; exit 2; }

# ---- can this machine run it?
[ "$(id -u)" -eq 0 ] || cannot "needs root (debootstrap, chroot, mkfs)"
for tool in qemu-system-x86_64 debootstrap mkfs.ext4 debugfs cpio gzip dotnet timeout flock; do
  command -v $tool >/dev/null || cannot "$tool is missing (tests/deps.sh installs the lab's packages unless VMI_XENLAB=0)"
done
mkdir -p "$CACHE" "$OUT" || cannot "cannot create $CACHE or $OUT"
free_gb=$(df --output=avail -BG "$CACHE" | tail -1 | tr -dc 0-9)
[ "${free_gb:-0}" -ge 6 ] || [ -f "$CACHE/rootfs-$(sha256sum "$HERE/rootfs.sh" | cut -c1-16)/.vmi-rootfs-complete" ] ||
  cannot "needs ~6 GB free under $CACHE (has ${free_gb} GB)"

# ---- dom0's root file system (cached)
exec 9>"$CACHE/.lock"
flock -w 3600 9 || envfail "another lab run holds $CACHE/.lock"
RKEY=$(sha256sum "$HERE/rootfs.sh" | cut -c1-16)
R=$CACHE/rootfs-$RKEY
if [ ! -f "$R/.vmi-rootfs-complete" ]; then
  say "building dom0's root file system in $R (once; 4-16 min)"
  nice -n 10 timeout 2700 "$HERE/rootfs.sh" "$R" > "$OUT/rootfs.log" 2>&1 || { tail -20 "$OUT/rootfs.log"; envfail "the root file system did not build (log: $OUT/rootfs.log)"; }
fi

# ---- dom0's disk image and boot files (cached)
DKEY=$(cat "$HERE/rootfs.sh" "$HERE/payload/lab-init" | sha256sum | cut -c1-16)
D0=$CACHE/dom0-$DKEY
if [ ! -f "$D0/.complete" ]; then
  say "making dom0's disk image in $D0"
  rm -rf "$D0"; mkdir -p "$D0"
  install -m 755 "$HERE/payload/lab-init" "$R/sbin/lab-init"
  KV=$(ls "$R/lib/modules" | head -1)
  cp "$R/boot/vmlinuz-$KV" "$D0/vmlinuz" && cp "$R/boot/initrd.img-$KV" "$D0/initrd" && zcat "$R/boot/xen-4.17-amd64.gz" > "$D0/xen" ||
    envfail "the root file system has no kernel $KV or Xen 4.17"
  SZ=$(( $(du -sm "$R" | cut -f1) + 512 ))
  mkfs.ext4 -q -F -L dom0root -d "$R" "$D0/rootfs.img" ${SZ}M || envfail "mkfs of dom0's disk failed"
  touch "$D0/.complete"
fi
flock -u 9

# ---- this checkout: the guest, vmi, the lab disk
W=$OUT/work; rm -rf "$W" "$OUT"/results.txt "$OUT"/logs "$OUT"/stalled; mkdir -p "$W/lab/guest" "$OUT/logs"
KV=$(ls "$R/lib/modules" | head -1)
"$HERE/guest.sh" "$W/lab/guest" "$R/lib/modules/$KV" || envfail "the guest's initramfs did not build"
cp "$D0/vmlinuz" "$W/lab/guest/vmlinuz"
# vmi, published ReadyToRun (start-up under TCG 1.5 s -> 0.35 s of CPU); cached by the hash of the sources that make it
# (committed and uncommitted), since a publish takes minutes on a busy machine. VMI_XENLAB_VMI=<file> uses that one.
if [ -n "${VMI_XENLAB_VMI:-}" ]; then
  cp "$VMI_XENLAB_VMI" "$W/lab/vmi" || cannot "VMI_XENLAB_VMI=$VMI_XENLAB_VMI is not a file"
else
  VKEY=$( (cd "$REPO" && git ls-files -s src module Directory.Build.props Directory.Packages.props global.json && git diff HEAD -- src module) | sha256sum | cut -c1-16)
  if [ ! -x "$CACHE/vmi-$VKEY/vmi" ]; then
    say "publishing vmi (ReadyToRun, linux-x64)"
    rm -rf "$CACHE/vmi-$VKEY.partial"
    nice -n 10 timeout 2400 dotnet publish "$REPO/src/Shell" -c Release -r linux-x64 -p:PublishReadyToRun=true -o "$CACHE/vmi-$VKEY.partial" -nologo -v q > "$OUT/publish.log" 2>&1 ||
      { tail -20 "$OUT/publish.log"; say "dotnet publish failed (log: $OUT/publish.log)"; exit 1; }
    mv "$CACHE/vmi-$VKEY.partial" "$CACHE/vmi-$VKEY"
    # Every commit publishes its own: keep the newest three.
    ls -1dt "$CACHE"/vmi-*/ 2>/dev/null | grep -v "\.partial/$" | tail -n +4 | xargs -r rm -rf
  fi
  cp "$CACHE/vmi-$VKEY/vmi" "$W/lab/vmi"
fi
# The single-file bundle extracts itself at first start: do it here, not in dom0 under TCG.
(cd /tmp && HOME=/tmp DOTNET_BUNDLE_EXTRACT_BASE_DIR="$W/lab/dotnet-bundle" timeout 300 "$W/lab/vmi" -NoProfile -Command '1+1' > /dev/null 2>&1) ||
  say "warning: the host could not pre-extract vmi; dom0 will"
cp "$HERE/payload/dom0-test.sh" "$HERE/payload/lab.ps1" "$HERE/payload/guest-hvm.cfg" "$HERE/payload/guest-pvh.cfg" "$W/lab/"
echo $(( QEMU_TIMEOUT - 120 )) > "$W/lab/budget"
head -c 16777216 "$W/lab/vmi" | md5sum | cut -d' ' -f1 > "$W/lab/vmi.md5"
[ -n "${VMI_XENLAB_STRESS:-}" ] && echo "$VMI_XENLAB_STRESS" > "$W/lab/stress"
[ "${VMI_XENLAB_ONLY:-}" = boot ] && touch "$W/lab/only-boot"
# The post-mortem comparison with xl dump-core (~12 min under TCG: 128 MB at ~190 KB/s) runs once per cached dom0 image:
# until a run passed it ($D0/dumpcore-passed), or when VMI_XENLAB_DUMPCORE=1; VMI_XENLAB_DUMPCORE=0 skips it.
DUMPCORE_MARK=$D0/dumpcore-passed
case "${VMI_XENLAB_DUMPCORE:-}" in
  1) touch "$W/lab/dumpcore" ;;
  0) ;;
  *) [ -f "$DUMPCORE_MARK" ] || touch "$W/lab/dumpcore" ;;
esac
echo "${VMI_XENLAB_WXE:-0}" > "$W/lab/wxe"   # DOTNET_EnableWriteXorExecute in dom0 (payload/dom0-test.sh says why 0)
mkfs.ext4 -q -F -L lab -d "$W/lab" "$W/lab.img" 2G || envfail "mkfs of the lab disk failed"

# ---- boot
XENARGS="console=com1 com1=115200,8n1 dom0_mem=1024M,max:1024M dom0_max_vcpus=1 loglvl=all guest_loglvl=all smap=0 smep=0 ${VMI_XENLAB_XENARGS:-}"
DOM0ARGS="console=hvc0 earlyprintk=xen root=/dev/vda rw rootfstype=ext4 init=/sbin/lab-init panic=-1"
say "booting Xen + dom0 under QEMU ($ACCEL, -cpu $CPU; hard limit ${QEMU_TIMEOUT}s)"
boot=$(date +%s)
: > "$OUT/serial.log"
# QEMU in a session of its own, so that its CPU share can be set: with the kernel's autogroup scheduling (on by default),
# nice only orders processes within a session and every session gets an equal share, so a nice'd build elsewhere takes
# as much as the lab. VMI_XENLAB_AUTOGROUP_NICE (-19; "" leaves it) is that session's nice; QEMU runs one TCG thread, so
# it can take one core at most.
setsid nice -n "${VMI_XENLAB_NICE:-0}" timeout -s KILL "$QEMU_TIMEOUT" qemu-system-x86_64 -machine q35 -accel "$ACCEL" -cpu "$CPU" -m "$MEM" -smp 1 \
  -kernel "$D0/xen" -append "$XENARGS" -initrd "$D0/vmlinuz $DOM0ARGS,$D0/initrd" \
  -drive file="$D0/rootfs.img",if=virtio,format=raw,snapshot=on \
  -drive file="$W/lab.img",if=virtio,format=raw,cache=unsafe \
  -display none -monitor unix:"$OUT/qemu-monitor.sock",server=on,wait=off -serial file:"$OUT/serial.log" -no-reboot &
qpid=$!
# setsid makes the new session (and autogroup) when it runs: wait until it has, or the old session gets the nice.
i=0; while [ "$(ps -o sid= -p $qpid 2>/dev/null | tr -d ' ')" != "$qpid" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
if [ -n "${VMI_XENLAB_AUTOGROUP_NICE--19}" ] && [ -w /proc/$qpid/autogroup ]; then
  echo "${VMI_XENLAB_AUTOGROUP_NICE--19}" > /proc/$qpid/autogroup 2>/dev/null || say "warning: could not set the lab's autogroup nice"
fi
# A stall watchdog: dom0 prints a heartbeat every 120 s (payload/dom0-test.sh), so a serial log that stops growing for
# VMI_XENLAB_STALL seconds (900) means the nested machine stopped (seen once: every vCPU halted for good while a domU
# booted, QEMU idle): QEMU is killed and the run is an environment failure, not a wait for the hard limit.
# Seen twice (2026-12-01, the second time while a vmi process started in dom0): QEMU idle, its one TCG vCPU asleep, no
# timer ever firing again. After VMI_XENLAB_KICK seconds (300) of silence the watchdog saves the machine's state from
# QEMU's monitor (stall-state.txt: registers, local APIC) and sends it one NMI, which wakes a halted CPU; whether that
# revived the machine is reported (revived), never counted as a pass of anything.
STALL=${VMI_XENLAB_STALL:-900}; KICK=${VMI_XENLAB_KICK:-300}
hmp() { python3 - "$OUT/qemu-monitor.sock" "$@" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1]); time.sleep(0.5); s.recv(1 << 16)
for c in sys.argv[2:]:
    try:
        s.sendall((c + "\n").encode()); time.sleep(1.5)
        print("(qemu) " + c + "\n" + s.recv(1 << 20).decode(errors="replace"))
    except OSError as e: print("(qemu) " + c + ": " + str(e))
PY
}
( last=-1; quiet=0; kicked=0
  while kill -0 $qpid 2>/dev/null; do
    sleep 30; size=$(stat -c %s "$OUT/serial.log" 2>/dev/null || echo 0)
    if [ "$size" = "$last" ]; then quiet=$((quiet + 30)); else
      [ $kicked = 1 ] && [ $quiet -gt 0 ] && echo "serial output again after the NMI (silent $quiet s)" > "$OUT/revived"
      quiet=0; last=$size; kicked=0
    fi
    if [ $quiet -ge "$KICK" ] && [ $kicked = 0 ]; then
      kicked=1; { echo "---- $(date -u +%T) serial silent $quiet s"; hmp 'info registers' 'info lapic' 'info pic' nmi 2>&1; } >> "$OUT/stall-state.txt"
    fi
    if [ $quiet -ge "$STALL" ]; then echo "$quiet" > "$OUT/stalled"; pkill -KILL -s $qpid 2>/dev/null || kill -KILL $qpid; break; fi
  done ) &
wdpid=$!
wait $qpid
qrc=$?
kill $wdpid 2>/dev/null; wait $wdpid 2>/dev/null
say "QEMU ended (exit $qrc) after $(( $(date +%s) - boot )) s"
[ -f "$OUT/stall-state.txt" ] && say "the nested machine went silent for $KICK s: its state and the NMI it was sent are in $OUT/stall-state.txt; $(cat "$OUT/revived" 2>/dev/null || echo 'it did not revive')"
debugfs -R "rdump /out $OUT/logs" "$W/lab.img" > /dev/null 2>&1
[ -f "$OUT/logs/out/results.txt" ] && cp "$OUT/logs/out/results.txt" "$OUT/results.txt"
# Every result is also printed on dom0's console: when the run was cut (watchdog, hard limit) the disk may miss the last
# ones, the serial log has them.
grep -a -E '^R [^ ]+ (PASS|FAIL|ENV) ' "$OUT/serial.log" 2>/dev/null | tr -d '\r' > "$OUT/results.serial"
if [ "$(wc -l < "$OUT/results.serial")" -gt "$(cat "$OUT/results.txt" 2>/dev/null | wc -l)" ]; then cp "$OUT/results.serial" "$OUT/results.txt"; fi

if [ -f "$OUT/stalled" ]; then
  echo "R lab-stalled ENV the nested machine stopped: no serial output for $(cat "$OUT/stalled") s (QEMU killed); see serial.log" >> "$OUT/results.txt"
  echo "---- serial log (last 30 lines)"; tail -30 "$OUT/serial.log"
fi
if [ ! -s "$OUT/results.txt" ] || ! grep -q '^R env-xen PASS' "$OUT/results.txt"; then
  echo "---- serial log (last 60 lines)"; tail -60 "$OUT/serial.log" 2>/dev/null
  envfail "the lab did not reach its tests (QEMU exit $qrc; results: $OUT/results.txt)"
fi
if ! grep -q LAB-RESULTS-END "$OUT/serial.log"; then
  echo "R lab-complete FAIL dom0-test.sh did not finish (QEMU exit $qrc): see serial.log" >> "$OUT/results.txt"
  echo "---- serial log (last 60 lines)"; tail -60 "$OUT/serial.log"
fi

# The dump-core comparison: recorded when it passed; reported from that record when this run did not repeat it.
if grep -q '^R postmortem-equals-xl-dump-core PASS' "$OUT/results.txt"; then
  { date -u +%FT%TZ; grep '^R postmortem-equals-xl-dump-core PASS' "$OUT/results.txt"; } > "$DUMPCORE_MARK"
elif [ ! -f "$W/lab/dumpcore" ] && [ -f "$DUMPCORE_MARK" ] && grep -q '^R guest-crashed-preserved PASS' "$OUT/results.txt"; then
  echo "R postmortem-equals-xl-dump-core PASS checked once per cached lab, on $(head -1 "$DUMPCORE_MARK"): $(tail -1 "$DUMPCORE_MARK" | cut -d' ' -f4-)" >> "$OUT/results.txt"
fi
# How long each phase took (dom0's clock, from the LAB-T lines of dom0-test.sh).
grep -a '^LAB-T ' "$OUT/serial.log" | tr -d '\r' | awk '{ if (n++) printf "%7.0f s  %s\n", $2 - t, p; t = $2; $1 = ""; $2 = ""; p = substr($0, 3) }' > "$OUT/phases.txt"
echo "---- phases (dom0 uptime deltas; full log: $OUT/serial.log)"; cat "$OUT/phases.txt"
pass=$(grep -c '^R [^ ]* PASS' "$OUT/results.txt"); fail=$(grep -c '^R [^ ]* FAIL' "$OUT/results.txt"); envc=$(grep -c '^R [^ ]* ENV' "$OUT/results.txt")
grep -E '^R [^ ]* (FAIL|ENV)' "$OUT/results.txt"
say "$pass passed, $fail failed, $envc environment failures in $(( $(date +%s) - start )) s (results: $OUT/results.txt)"
[ "$fail" -eq 0 ] || exit 1
[ "$envc" -eq 0 ] || exit 2
exit 0
