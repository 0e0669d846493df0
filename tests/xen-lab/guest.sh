#!/bin/bash
# Builds the domU's initramfs into $1/initrd.gz: busybox whose init keeps creating processes (CR3 writes), and
# reports, through its own eyes, what the lab checks from outside the driver:
#   at boot it writes GUEST_MARK (0xC0FFEE11) at physical 0x1040 (Linux never uses the first MiB after boot), and
#   every 2 s prints "GUEST-PEEK <value at physical 0x1030>" so a write made by vmi shows up on the guest's serial port,
#   and "domU alive N", whose N must keep growing (a frozen vCPU stops it).
set -euo pipefail
OUT=${1:?usage: guest.sh <dir>}
BUSYBOX=/bin/busybox
case "$(ldd "$BUSYBOX" 2>&1 || true)" in
  *"not a dynamic"*) ;;
  *) echo "xen-lab: $BUSYBOX is not the static busybox: apt-get install busybox-static" >&2; exit 1 ;;
esac
G=$(mktemp -d); trap 'rm -rf "$G"' EXIT
mkdir -p "$G"/{bin,proc,sys,dev,tmp}
cp "$BUSYBOX" "$G/bin/busybox"
cat > "$G/init" <<'I'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev 2>/dev/null
devmem 0x1040 32 0xC0FFEE11
echo "DOMU-UP kernel=$(uname -r) mark=$(devmem 0x1040 32) marker=VMI-LAB-MARKER-0123456789"
n=0
while true; do
  i=0; while [ $i -lt 20 ]; do /bin/true; i=$((i+1)); done
  n=$((n+1))
  echo "domU alive $n"
  echo "GUEST-PEEK $(devmem 0x1030 32)"
  sleep 2
done
I
chmod +x "$G/init"
mkdir -p "$OUT"
(cd "$G" && find . | cpio -o -H newc --quiet | gzip -1) > "$OUT/initrd.gz.tmp"
mv "$OUT/initrd.gz.tmp" "$OUT/initrd.gz"
