#!/usr/bin/env bash
# mmdebstrap customize hook of stage 1 (argument: the root being built). Writes the Pi boot settings, builds the
# initramfs once (it was diverted to /bin/true during package installation: under emulation each run takes minutes)
# and re-runs the raspi-firmware kernel hook so config.txt and cmdline.txt describe this image, not the build host.
set -euo pipefail
root="$1"
in_root() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 chroot "$root" "$@"; }

cat > "$root/etc/default/raspi-firmware" <<CONF
# Written by the bambupi image build (image/stage1-hook.sh).
ROOTPART=LABEL=$ROOT_LABEL
# No contiguous memory reserved for a GPU pipeline: the box has no display.
CMA=0
CONSOLES="ttyS1,115200 tty0"
KERNEL_DIR=/boot
CONF

rm -f "$root/usr/sbin/update-initramfs"
in_root dpkg-divert --local --rename --remove /usr/sbin/update-initramfs
kernel="$(ls "$root/lib/modules" | sort -V | tail -n1)"
in_root update-initramfs -c -k "$kernel"
in_root /etc/kernel/postinst.d/z50-raspi-firmware "$kernel"
in_root apt-get clean
rm -rf "$root"/var/lib/apt/lists/*
