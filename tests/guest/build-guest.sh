#!/usr/bin/env bash
# Builds a real Linux guest memory image and QEMU's own answers about it.
#
#   tests/guest/build-guest.sh <output-dir> <variant>
#
# variant: "kaslr"  - qemu64 CPU, 4-level paging, KASLR on (the Debian default), 1 vCPU
#          "la57"   - "-cpu max" (offers LA57), 5-level paging, KASLR on, 2 vCPUs
#
# Boots the Debian kernel under TCG with a tiny busybox initramfs whose init starts busy user
# processes (so that the vCPU is caught with a user CR3), waits for a marker on the serial console,
# stops the VM, asks QEMU's monitor (gva2gpa, x, xp) about hundreds of kernel and user addresses
# taken from "info mem", writes the answers to answers.txt, then writes the memory with
# dump-guest-memory (ELF), dump-guest-memory kdump-zlib and pmemsave (raw), and quits.
#
# Needs (Debian packages): qemu-system-x86, busybox-static, cpio, linux-image-amd64.
# Writes <output-dir>/<variant>/{guest.elf,guest.kdump,guest.raw,answers.txt,serial.log,DONE}.
# serial.log also holds the guest's own truth between markers: VMI-TRUTH-KALLSYMS-BEGIN/END
# (/proc/kallsyms), VMI-TRUTH-MODULES-BEGIN/END (/proc/modules), VMI-TRUTH-PS-BEGIN/END (every
# /proc/PID/stat line) and VMI-TRUTH-SELF <pid> (the printing shell, gone by the time of the dump).
set -euo pipefail

out_root=${1:?usage: build-guest.sh <output-dir> <kaslr|la57>}
variant=${2:?usage: build-guest.sh <output-dir> <kaslr|la57>}
out="$out_root/$variant"

die() { echo "build-guest: $*" >&2; exit 2; }

command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing: apt-get install qemu-system-x86"
command -v cpio >/dev/null || die "cpio is missing: apt-get install cpio"
busybox=/bin/busybox
[ -x "$busybox" ] && "$busybox" true || die "busybox is missing: apt-get install busybox-static"
file_out=$(LC_ALL=C ldd "$busybox" 2>&1 || true)
echo "$file_out" | grep -q "not a dynamic" || die "$busybox is not static: apt-get install busybox-static"
kernel=$(ls -1 /boot/vmlinuz-*-amd64 2>/dev/null | sort -V | tail -1 || true)
[ -n "$kernel" ] && [ -r "$kernel" ] || die "no Debian kernel in /boot (vmlinuz-*-amd64): apt-get install linux-image-amd64"
kver=${kernel#/boot/vmlinuz-}
fwcfg=/lib/modules/$kver/kernel/drivers/firmware/qemu_fw_cfg.ko

case "$variant" in
  kaslr) cpu=qemu64; smp=1 ;;
  la57)  cpu=max; smp=2 ;;
  *) die "unknown variant '$variant' (kaslr or la57)" ;;
esac

rm -rf "$out"
mkdir -p "$out"
work=$(mktemp -d)
qemu_pid=
cleanup() {
  if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then kill "$qemu_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# ---------------------------------------------------------------- initramfs
root="$work/root"
mkdir -p "$root"/{bin,proc,sys,dev,lib}
cp "$busybox" "$root/bin/busybox"
if [ -r "$fwcfg" ]; then cp "$fwcfg" "$root/lib/qemu_fw_cfg.ko"; fi
# A few more modules without dependencies, so that the guest's module list has several entries.
for m in fs/nls/nls_ascii fs/nls/nls_cp437 fs/nls/nls_iso8859-1 fs/quota/quota_tree; do
  ko=/lib/modules/$kver/kernel/$m.ko
  if [ -r "$ko" ]; then cp "$ko" "$root/lib/"; fi
done
cat > "$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
# qemu_fw_cfg hands the kernel's VMCOREINFO to QEMU (-device vmcoreinfo): it lands in the dumps.
[ -f /lib/qemu_fw_cfg.ko ] && insmod /lib/qemu_fw_cfg.ko
for m in /lib/nls_ascii.ko /lib/nls_cp437.ko /lib/nls_iso8859-1.ko /lib/quota_tree.ko; do [ -f $m ] && insmod $m; done
# Busy user processes: the vCPUs are nearly always caught running user code with a user CR3.
export VMI_MARKER=VMI_USER_SPACE_MARKER_0123456789
for i in 1 2; do sh -c 'while :; do :; done' & done
# Addresses for the host to ask QEMU about, independent of "info mem" (which QEMU 7.2 leaves empty
# under LA57): every 97th kernel symbol, and the busy processes' mappings.
echo 0 > /proc/sys/kernel/kptr_restrict
awk 'NR % 97 == 1 { print "KSYM " $1 }' /proc/kallsyms > /dev/ttyS0
grep -wE "page_offset_base|vmemmap_base|vmalloc_base" /proc/kallsyms | awk '{ print "KVAR " $3 " " $1 }' > /dev/ttyS0
for p in $(pidof sh); do sed -n "s/^\([0-9a-f]*\)-\([0-9a-f]*\) .*/UMAP \1 \2/p" /proc/$p/maps; done > /dev/ttyS0
# The guest's own truth for the OS-awareness tests, between clear markers (read as root with
# kptr_restrict=0, so addresses are real): every kernel symbol, every module, and last (so that the
# list is what the images catch) every task's /proc/PID/stat line. One shell prints the task list
# with builtins only; it names itself (TRUTH-SELF) so that the reader can leave it out.
{ echo VMI-TRUTH-KALLSYMS-BEGIN; cat /proc/kallsyms; echo VMI-TRUTH-KALLSYMS-END; } > /dev/ttyS0
{ echo VMI-TRUTH-MODULES-BEGIN; cat /proc/modules; echo VMI-TRUTH-MODULES-END; } > /dev/ttyS0
sh -c 'echo "VMI-TRUTH-SELF $$"; echo VMI-TRUTH-PS-BEGIN; for f in /proc/[0-9]*/stat; do read -r l < $f && echo "$l"; done 2>/dev/null; echo VMI-TRUTH-PS-END' > /dev/ttyS0
echo "VMI-GUEST-UP $(uname -r) la57=$(grep -c la57 /proc/cpuinfo)" > /dev/ttyS0
while :; do sleep 3600; done
EOF
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 > "$work/initrd.gz")

# ---------------------------------------------------------------- boot
port=$(( 20000 + (RANDOM % 20000) ))
serial="$out/serial.log"
qemu-system-x86_64 -accel tcg -cpu "$cpu" -smp "$smp" -m 128M \
  -kernel "$kernel" -initrd "$work/initrd.gz" \
  -append "console=ttyS0 panic=-1 quiet" \
  -device vmcoreinfo \
  -display none -serial "file:$serial" -monitor none \
  -qmp "tcp:127.0.0.1:$port,server=on,wait=off" -no-reboot &
qemu_pid=$!

for _ in $(seq 1 100); do
  # wait for QEMU to listen without connecting (QMP serves one client: a probe connection could race the real one)
  if awk -v p=":$(printf '%04X' "$port")" '$2 ~ p"$" && $4 == "0A" { found = 1 } END { exit !found }' /proc/net/tcp; then
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    break
  fi
  sleep 0.2
done
qmp_log="$work/qmp.log"
cat <&3 > "$qmp_log" &
sent=0
# QMP answers arrive as JSON lines in $qmp_log (read by cat: bash's byte-wise read is far too slow).
send() { # send '<execute json without braces>' ['<id>']
  sent=$((sent + 1))
  printf '{%s, "id": "%s"}\n' "$1" "${2:-c$sent}" >&3
}
wait_answers() {
  local n
  for _ in $(seq 1 3000); do
    n=$(grep -cE '^\{"(return|error)"' "$qmp_log" || true)
    [ "$n" -ge "$sent" ] && return 0
    kill -0 "$qemu_pid" 2>/dev/null || die "QEMU exited"
    sleep 0.1
  done
  die "QEMU did not answer ($n of $sent)"
}
answer() { # answer <id> -> the human monitor's text, unescaped
  grep -F "\"id\": \"$1\"}" "$qmp_log" | tail -1 | tr -d '\r' |
    sed -e 's/^{"return": "//' -e 's/", "id": "[^"]*"}$//' -e 's/\\r//g' -e 's/\\n/\n/g' -e 's/\\"/"/g'
}
qmp() { send "\"execute\": $1" "$2"; wait_answers; answer "$2"; }
hmp() { # hmp '<command>' <id>
  send "\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": \"$1\"}" "$2"
}

qmp '"qmp_capabilities"' caps >/dev/null


up=
for _ in $(seq 1 1800); do
  if grep -q "VMI-GUEST-UP" "$serial" 2>/dev/null; then up=1; break; fi
  kill -0 "$qemu_pid" 2>/dev/null || die "QEMU exited before the guest came up (see $serial)"
  sleep 0.5
done
[ -n "$up" ] || die "the guest did not reach its marker in 900 s (see $serial)"
sleep 2

# Stop with vCPU 0 in a user process (its CR3 maps user space as well as the kernel).
found=
for attempt in $(seq 1 40); do
  qmp '"stop"' "stop$attempt" >/dev/null
  hmp 'cpu 0' "cpu$attempt"
  hmp 'info registers' "regs$attempt"
  hmp 'info mem' "mem$attempt"
  wait_answers
  mem=$(answer "mem$attempt")
  # CPL=3: vCPU 0 is running user code, so its CR3 maps that process as well as the kernel
  if answer "regs$attempt" | grep -q 'CPL=3'; then found=1; break; fi
  qmp '"cont"' "cont$attempt" >/dev/null
  sleep 0.3
done
[ -n "$found" ] || die "could not catch vCPU 0 in user space"

hmp 'info registers' regs; wait_answers
regs=$(answer regs)
printf '%s\n' "$regs" > "$out/registers.txt"
printf '%s\n' "$mem" > "$out/mem.txt"

# ---------------------------------------------------------------- answers
answers="$out/answers.txt"
{
  echo "# QEMU's answers for $variant guest, kernel $kver, cpu $cpu"
  cr3=$(printf '%s\n' "$regs" | sed -n 's/.*CR3=\([0-9a-f]*\).*/\1/p' | head -1)
  cr4=$(printf '%s\n' "$regs" | sed -n 's/.*CR4=\([0-9a-f]*\).*/\1/p' | head -1)
  echo "cr3 0x$cr3"
  echo "cr4 0x$cr4"
} > "$answers"

# The direct map, vmemmap and vmalloc bases (randomised by KASLR): read the kernel's variables through QEMU.
kvars=$(tr -d '\r' < "$serial" | sed -n 's/^KVAR \([a-z_]*\) \([0-9a-f]\{16\}\)$/\1 \2/p')
extra=
while read -r name addr; do
  [ -n "$name" ] || continue
  hmp "x /1gx 0x$addr" "kvar_$name"; wait_answers
  base=$(answer "kvar_$name" | sed -n 's/^[0-9a-f]*: *0x\([0-9a-f]*\).*/\1/p' | head -1)
  [ -n "$base" ] || continue
  echo "kvar $name 0x$base" >> "$answers"
  case "$name" in
    # the direct map and vmemmap as many sub-ranges, so that each is sampled densely (on LA57 they lie above the 48-bit range)
    page_offset_base) for ((k = 0; k < 32; k++)); do extra+="$(printf '%016x %016x' $((16#$base + k * 0x400000)) $((16#$base + (k + 1) * 0x400000)))"$'\n'; done ;;
    vmemmap_base) for ((k = 0; k < 8; k++)); do extra+="$(printf '%016x %016x' $((16#$base + k * 0x40000)) $((16#$base + (k + 1) * 0x40000)))"$'\n'; done ;;
    vmalloc_base) extra+="$(printf '%016x %016x' $((16#$base)) $((16#$base + 0x10000000)))"$'\n' ;;
  esac
done <<< "$kvars"

# Sample addresses from each mapped range: start, end, and a few spread inside.
addresses=()
ranges=$( { printf '%s\n' "$mem" | sed -n 's/^\([0-9a-f]\{16\}\)-\([0-9a-f]\{16\}\) .*/\1 \2/p'
  # the guest's own list: kernel symbols (as one-page ranges) and user mappings
  tr -d '\r' < "$serial" | sed -n 's/^KSYM \([0-9a-f]\{16\}\)$/\1/p' | sort -u | while read -r k; do printf '%s %016x\n' "$k" $(( (16#$k & ~0xfff) + 0x1000 )); done
  printf '%s' "$extra"
  tr -d '\r' < "$serial" | sed -n 's/^UMAP \([0-9a-f]*\) \([0-9a-f]*\)$/\1 \2/p' | sort -u | while read -r a b; do printf '%016x %016x\n' $((16#$a)) $((16#$b)); done
  } )
nranges=$(printf '%s\n' "$ranges" | grep -c . || true)
nmem=$(printf '%s\n' "$mem" | grep -cE '^[0-9a-f]{16}-' || true)
step=$(( nmem / 100 + 1 ))
i=0
prev_end=
while read -r start end; do
  [ -n "$start" ] || continue
  s=$((16#$start)); e=$((16#$end))
  # every user range and every guest-listed range (symbols, direct map...); a sample of "info mem"
  if (( i % step == 0 )) || (( s >= 0 && s < 0x0000800000000000 )) || (( i >= nmem )); then
    size=$(( e - s ))
    addresses+=("$(( s & ~31 ))" "$(( (e - 32) & ~31 ))")
    for k in 1 2 3 4 5; do
      off=$(( (size / 6) * k + (k * 0x1238) ))
      (( off < size - 32 && off > 0 )) && addresses+=("$(( (s + off) & ~31 ))")
    done
    # a gap right before this range: QEMU must say "unmapped", and so must we
    if [ -n "$prev_end" ] && (( s - prev_end >= 0x2000 )); then addresses+=("$(( s - 0x1000 ))"); fi
  fi
  prev_end=$e
  i=$((i + 1))
done <<< "$ranges"

n=0
for a in "${addresses[@]}"; do
  va=$(printf '%016x' "$a")
  hmp "gva2gpa 0x$va" "g$n"
  hmp "x /4gx 0x$va" "x$n"
  n=$((n + 1))
done
wait_answers
# One pass over QMP's answers (a per-address grep would be quadratic): "va <va> gpa <gpa> x <4 qwords>" or "unmapped".
for ((k = 0; k < n; k++)); do printf '%d %016x\n' "$k" "${addresses[$k]}"; done > "$work/addresses"
tr -d '\r' < "$qmp_log" |
  sed -n 's/^{"return": "\(.*\)", "id": "\([gx]\)\([0-9]*\)"}$/\2 \3 \1/p' |
  awk -v list="$work/addresses" '
    $1 == "g" { if ($3 == "gpa:") { v = $4; sub(/\\r\\n$/, "", v); gpa[$2] = v } else gpa[$2] = "-" ; next }
    $1 == "x" { line = $0; sub(/^x [0-9]+ /, "", line); gsub(/\\r\\n/, " ", line); gsub(/[0-9a-f]+: /, "", line); x[$2] = line; next }
    END {
      while ((getline l < list) > 0) {
        split(l, f, " ")
        if (!(f[1] in gpa)) continue
        if (gpa[f[1]] == "-") print "va 0x" f[2] " unmapped"
        else print "va 0x" f[2] " gpa " gpa[f[1]] " x " x[f[1]]
      }
    }' >> "$answers"

# ---------------------------------------------------------------- images
send "\"execute\": \"dump-guest-memory\", \"arguments\": {\"paging\": false, \"protocol\": \"file:$out/guest.elf\"}" elf
send "\"execute\": \"dump-guest-memory\", \"arguments\": {\"paging\": false, \"protocol\": \"file:$out/guest.kdump\", \"format\": \"kdump-zlib\"}" kdump
send "\"execute\": \"pmemsave\", \"arguments\": {\"val\": 0, \"size\": 134217728, \"filename\": \"$out/guest.raw\"}" raw
wait_answers
for id in elf kdump raw; do
  grep -F "\"id\": \"$id\"}" "$qmp_log" | grep -q '^{"return"' || die "writing the $id image failed: $(grep -F "\"id\": \"$id\"}" "$qmp_log")"
done
send '"execute": "quit"' quit
sleep 1
wait "$qemu_pid" 2>/dev/null || true
qemu_pid=

chmod a+r "$out"/guest.*
n=$(grep -c '^va ' "$answers")
echo "build-guest: $variant: $n addresses, images in $out"
date -u > "$out/DONE"
