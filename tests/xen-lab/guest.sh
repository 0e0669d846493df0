#!/bin/bash
# Builds the domU's initramfs into $1/initrd.gz: busybox whose init keeps creating processes (CR3 writes), and
# reports, through its own eyes, what the lab checks from outside the driver:
#   at boot it writes GUEST_MARK (0xC0FFEE11) at physical 0x1040 (Linux never uses the first MiB after boot), and
#   every 2 s prints "domU alive N", whose N must keep growing (a frozen vCPU stops it);
#   "GUEST-PEEK <value at physical 0x1030>", so a write made by vmi shows up on the guest's serial port;
#   "GUEST-CPUID <eax ebx ecx edx>" of CPUID leaf 0x564D4900 run by the kernel (cpuid.ko, /dev/cpu/0/cpuid), so
#   registers set in the answer to a CPUID event show up (Xen answers zeros for this leaf);
#   "GUEST-TSD trapped|allowed": guest-tsd asks Linux to set CR4.TSD and runs RDTSC, so a denied CR4 write shows up;
#   "GUEST-BYTE <byte at physical 0x1050>", which it set to 0x5A at boot: a breakpoint's INT3 there shows as 0xCC.
# $2: dom0's kernel modules directory (lib/modules/<version> of the root file system; the guest runs the same kernel).
set -euo pipefail
OUT=${1:?usage: guest.sh <dir> [<modules dir>]}
MODS=${2:-$(ls -d "${VMI_XENLAB_CACHE:-/var/cache/vmi-tests/xenlab}"/rootfs-*/lib/modules/*/ 2>/dev/null | head -1)}
[ -d "$MODS" ] || { echo "xen-lab: no kernel modules directory (give it: guest.sh <dir> <rootfs>/lib/modules/<version>)" >&2; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd)
BUSYBOX=/bin/busybox
case "$(ldd "$BUSYBOX" 2>&1 || true)" in
  *"not a dynamic"*) ;;
  *) echo "xen-lab: $BUSYBOX is not the static busybox: apt-get install busybox-static" >&2; exit 1 ;;
esac
G=$(mktemp -d); trap 'rm -rf "$G"' EXIT
mkdir -p "$G"/{bin,proc,sys,dev,tmp,lib}
cp "$BUSYBOX" "$G/bin/busybox"
cp "$MODS/kernel/arch/x86/kernel/cpuid.ko" "$G/lib/cpuid.ko" || { echo "xen-lab: no cpuid.ko under $MODS" >&2; exit 1; }
cc -static -nostdlib -O2 -fno-stack-protector -o "$G/bin/guest-tsd" "$HERE/payload/guest-tsd.c" ||
  { echo "xen-lab: cc could not build payload/guest-tsd.c (a static build needs gcc)" >&2; exit 1; }
cat > "$G/init" <<'I'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev 2>/dev/null
insmod /lib/cpuid.ko || echo "GUEST-ERROR insmod cpuid.ko failed"
devmem 0x1040 32 0xC0FFEE11
devmem 0x1050 8 0x5A
echo "DOMU-UP kernel=$(uname -r) mark=$(devmem 0x1040 32) marker=VMI-LAB-MARKER-0123456789"
n=0
while true; do
  i=0; while [ $i -lt 20 ]; do /bin/true; i=$((i+1)); done
  n=$((n+1))
  echo "domU alive $n"
  echo "GUEST-PEEK $(devmem 0x1030 32)"
  echo "GUEST-BYTE $(devmem 0x1050 8)"
  echo "GUEST-CPUID$(dd if=/dev/cpu/0/cpuid bs=16 count=1 skip=1447905536 iflag=skip_bytes 2>/dev/null | od -An -tx4 | tr -s ' ')"
  /bin/guest-tsd 2>/dev/null; rc=$?
  case $rc in 0) echo "GUEST-TSD allowed" ;; 2) echo "GUEST-TSD prctl-failed" ;; *) echo "GUEST-TSD trapped (exit $rc)" ;; esac
  sleep 2
done
I
chmod +x "$G/init"
mkdir -p "$OUT"
(cd "$G" && find . | cpio -o -H newc --quiet | gzip -1) > "$OUT/initrd.gz.tmp"
mv "$OUT/initrd.gz.tmp" "$OUT/initrd.gz"
