#!/bin/bash
# Builds the dom0 root file system (Debian 12 minbase + Xen 4.17 tools + qemu-system-xen + kernel 6.1) into $1,
# once: the directory is keyed by this script's hash (see lab.sh), so a change here builds a new one.
# 4-16 minutes on a fresh machine (network and dpkg bound).
set -euo pipefail
R=${1:?usage: rootfs.sh <dir>}
# the Debian mirror this machine's apt already uses (first URI in its sources)
MIRROR=${MIRROR:-$(grep -hsoE '^(deb|URIs:) +(\[[^]]*\] +)?https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/* | grep -v security | grep debian | head -1 | grep -oE 'https?://[^ ]+' || true)}
[ -n "$MIRROR" ] || { echo "xen-lab: no Debian mirror found in /etc/apt/sources*; set MIRROR" >&2; exit 1; }
if [ ! -x "$R/usr/sbin/xl" ]; then
  rm -rf "$R" "$R.partial"
  timeout 2400 debootstrap --variant=minbase \
    --include=xen-utils-4.17,xen-hypervisor-4.17-amd64,qemu-system-xen,linux-image-amd64,busybox,procps,iproute2,kmod,udev,initramfs-tools,e2fsprogs \
    bookworm "$R.partial" "$MIRROR"
  mv "$R.partial" "$R"
fi
# initramfs for the dom0 kernel: virtio and ext4 in it
grep -q virtio_blk "$R/etc/initramfs-tools/modules" || printf 'virtio_pci\nvirtio_blk\next4\n' >> "$R/etc/initramfs-tools/modules"
KV=$(ls "$R/lib/modules" | head -1)
lsinitramfs "$R/boot/initrd.img-$KV" 2>/dev/null | grep -q virtio_blk || timeout 900 chroot "$R" update-initramfs -u -k "$KV"
echo dom0 > "$R/etc/hostname"
touch "$R/.vmi-rootfs-complete"
