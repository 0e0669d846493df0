#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian 12 machine that has the .NET 10 SDK.
# Run as root (CI does). Idempotent: packages already present are not fetched again.
set -euo pipefail

base=(
  libxen-dev          # the real Xen 4.17 libraries and headers (struct layouts, soname loading)
  gcc libc6-dev       # the struct-layout tests compile a C program against the Xen headers
  qemu-system-x86     # boots the real Linux guest whose memory the image tests read
  linux-image-amd64   # the Debian kernel that guest runs
  busybox-static cpio # its initramfs
  crash               # reads our ELF cores in the tests, as it reads QEMU's
  gdb                 # tests/guest/make-isf.py reads the kernel's DWARF through gdb for the -Profile tests
  binutils            # objcopy dumps the modules' .BTF sections the module-BTF tests compare with
  openssh-server      # the remoting tests start a real sshd whose subsystem is vmi -sshs
  openssh-client      # and connect to it with Invoke-Command -HostName (pwsh's SSH transport runs ssh)
)

updated=no
install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing ${missing[*]}: run 'sudo $0' (or apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if [ "$updated" = no ]; then
    apt-get update -qq
    updated=yes
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install "${base[@]}"
# The Xen lab (tests/xen-lab) unless VMI_XENLAB=0 leaves it out.
if [ "${VMI_XENLAB:-auto}" != 0 ]; then
  install debootstrap e2fsprogs
fi

# crash needs the debug symbols of the kernel the guest boots: the newest in /boot (tests/guest/build-guest.sh),
# known only once linux-image-amd64 is installed.
kernel=$(ls -1 /boot/vmlinuz-*-amd64 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$kernel" ]; then
  echo "deps: no kernel in /boot after installing linux-image-amd64" >&2
  exit 1
fi
install "linux-image-${kernel#/boot/vmlinuz-}-dbg"
echo "deps: all present"
