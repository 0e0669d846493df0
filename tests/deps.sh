#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian 12 machine that has the .NET 10 SDK.
# Run as root (CI does). Idempotent: packages already present are not fetched again.
set -euo pipefail

packages=(
  libxen-dev          # the real Xen 4.17 libraries and headers (struct layouts, soname loading)
  gcc libc6-dev       # the struct-layout tests compile a C program against the Xen headers
  qemu-system-x86     # boots the real Linux guest whose memory the image tests read
  linux-image-amd64   # the Debian kernel that guest runs
  busybox-static cpio # its initramfs
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing ${missing[*]}: run 'sudo $0' (or apt-get install ${missing[*]})" >&2
  exit 1
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: installed"
