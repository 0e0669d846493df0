#!/usr/bin/env bash
# Boots the tests' Debian guest under QEMU (TCG) for the live QEMU driver tests, and keeps it running.
#
#   tests/guest/live-guest.sh <work-dir> <variant>
#
# variant: "kaslr" - qemu64 CPU, 4-level paging, 1 vCPU
#          "la57"  - "-cpu max" (LA57), 5-level paging, 2 vCPUs
#
# It also prints the guest's own truth (/proc/kallsyms, /proc/modules, /sys/kernel/btf's sizes and SHA-256 sums,
# every /proc/PID/stat, between VMI-TRUTH-*
# markers as build-guest.sh does) for the Linux awareness tests, after loading a few modules.
# QEMU is started with QMP on <work-dir>/qmp.sock, guest RAM in a shared file (<work-dir>/ram, which should be on a
# tmpfs such as /dev/shm), the serial console in <work-dir>/serial.log and no gdbstub (the driver starts one through
# QMP). The initramfs (the recipe of build-guest.sh) prints the guest's own kallsyms lines for the host and then
# loops calling nanosleep ("usleep") and printing "VMI-TICK <n>" to the serial console, so a breakpoint on
# __x64_sys_nanosleep fires again and again and the host can see that the guest still runs.
# The script execs QEMU (under nice and a 1 h hard timeout): its pid is the caller's to kill.
#
# Needs (Debian packages): qemu-system-x86, busybox-static, cpio, linux-image-amd64.
set -euo pipefail

work=${1:?usage: live-guest.sh <work-dir> <kaslr|la57>}
variant=${2:?usage: live-guest.sh <work-dir> <kaslr|la57>}

die() { echo "live-guest: $*" >&2; exit 2; }

command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing: apt-get install qemu-system-x86"
command -v cpio >/dev/null || die "cpio is missing: apt-get install cpio"
busybox=/bin/busybox
[ -x "$busybox" ] && "$busybox" true || die "busybox is missing: apt-get install busybox-static"
kernel=$(ls -1 /boot/vmlinuz-*-amd64 2>/dev/null | sort -V | tail -1 || true)
[ -n "$kernel" ] && [ -r "$kernel" ] || die "no Debian kernel in /boot (vmlinuz-*-amd64): apt-get install linux-image-amd64"

case "$variant" in
  kaslr) cpu=qemu64; smp=1 ;;
  la57)  cpu=max; smp=2 ;;
  *) die "unknown variant '$variant' (kaslr or la57)" ;;
esac

mkdir -p "$work"
root="$work/root"
rm -rf "$root"
mkdir -p "$root"/{bin,proc,sys,dev,lib}
cp "$busybox" "$root/bin/busybox"
# A few modules without dependencies, so that the guest has a module list (and module symbols) to check.
kver=${kernel#/boot/vmlinuz-}
for m in fs/nls/nls_ascii fs/nls/nls_cp437 fs/nls/nls_iso8859-1 fs/quota/quota_tree; do
  ko=/lib/modules/$kver/kernel/$m.ko
  if [ -r "$ko" ]; then cp "$ko" "$root/lib/"; fi
done
cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
echo 0 > /proc/sys/kernel/kptr_restrict
# The guest's own symbol addresses for the host: the functions the tests break on, the variable they watch
# (jiffies, written on every timer tick), and every 97th symbol.
grep -wE "__x64_sys_nanosleep|__x64_sys_clock_nanosleep|hrtimer_nanosleep|ktime_get|jiffies" /proc/kallsyms | awk '{ print "KFUN " $3 " " $1 }' > /dev/ttyS0
awk 'NR % 97 == 1 && $2 ~ /^[tTdDbBrR]$/ { print "KSYM " $1 }' /proc/kallsyms > /dev/ttyS0
# The guest's own truth for the Linux awareness tests, as build-guest.sh prints it: every symbol, every module and
# every task's /proc/PID/stat line, between VMI-TRUTH-* markers; the printing shell names itself (VMI-TRUTH-SELF).
for m in /lib/*.ko; do [ -f "$m" ] && insmod "$m"; done
{ echo VMI-TRUTH-KALLSYMS-BEGIN; cat /proc/kallsyms; echo VMI-TRUTH-KALLSYMS-END; } > /dev/ttyS0
{ echo VMI-TRUTH-MODULES-BEGIN; cat /proc/modules; echo VMI-TRUTH-MODULES-END; } > /dev/ttyS0
# Every file of /sys/kernel/btf (the kernel's BTF and each module's split BTF, as the kernel serves them): name,
# size and SHA-256 of its bytes.
{ echo VMI-TRUTH-BTF-BEGIN; for f in /sys/kernel/btf/*; do echo "${f##*/} $(wc -c < $f) $(sha256sum < $f | cut -d' ' -f1)"; done; echo VMI-TRUTH-BTF-END; } > /dev/ttyS0
sh -c 'echo "VMI-TRUTH-SELF $$"; echo VMI-TRUTH-PS-BEGIN; for f in /proc/[0-9]*/stat; do read -r l < $f && echo "$l"; done 2>/dev/null; echo VMI-TRUTH-PS-END' > /dev/ttyS0
echo "VMI-GUEST-UP $(uname -r) la57=$(grep -c la57 /proc/cpuinfo)" > /dev/ttyS0
i=0
while :; do
  usleep 20000
  i=$((i + 1))
  echo "VMI-TICK $i" > /dev/ttyS0
done
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 > "$work/initrd.gz")
rm -rf "$root"

rm -f "$work/qmp.sock" "$work/serial.log"
exec nice -n 10 timeout 3600 qemu-system-x86_64 -accel tcg -cpu "$cpu" -smp "$smp" -m 256M \
  -object "memory-backend-file,id=ram,size=256M,mem-path=$work/ram,share=on" -machine memory-backend=ram \
  -kernel "$kernel" -initrd "$work/initrd.gz" \
  -append "console=ttyS0 panic=-1 quiet" \
  -display none -serial "file:$work/serial.log" -monitor none \
  -qmp "unix:$work/qmp.sock,server=on,wait=off" -no-reboot
