#!/usr/bin/env bash
# Build the flashable SD-card image: dist/bambupi-<version>-arm64.img.zst and its .sha256.
#
# Needs root and the packages in image/host-packages.txt (and python3 with pip).
# Stage 1 (slow, ~15 min on 2 cores: mostly initramfs under emulation) makes a Debian root tarball, cached in
# build/image/ by the hash of its inputs; stage 2 (a few minutes) adds bambupi and assembles the disk without
# loop mounts (mkfs.vfat -C + mcopy, mkfs.ext4 -d, sfdisk, dd at the partition offsets).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root_dir="$(cd "$here/.." && pwd)"
source "$here/image.env"
export SOURCE_DATE_EPOCH
work="${IMAGE_WORK:-$root_dir/build/image}"
dist="${IMAGE_DIST:-$root_dir/dist}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root_dir/pyproject.toml")"
mkdir -p "$work" "$dist"
[ "$(id -u)" -eq 0 ] || { echo "build.sh: needs root (mmdebstrap --mode=root, file ownership in the image)" >&2; exit 1; }

log() { echo "[$(date +%H:%M:%S)] $*"; }
# Commands inside the image run with a clean environment: the host's PIP_* or LANG must not leak in.
in_root() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" chroot "$rootfs" "$@"; }

# binfmt for arm64 binaries (qemu-user-static registers it; a container may need binfmt_misc mounted first).
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  update-binfmts --enable qemu-aarch64
fi

# --- stage 1: Debian root with kernel, initramfs and Pi boot files ------------------------------------------------
packages="$(sed -e 's/#.*//' -e '/^\s*$/d' "$here/packages.txt" | tr -d ' ' | paste -sd, -)"
stage1_key="$(cat "$here/packages.txt" "$here/image.env" "$here/stage1-hook.sh" | sha256sum | cut -c1-16)"
base="$work/base-$stage1_key.tar"
if [ ! -f "$base" ]; then
  log "stage 1: mmdebstrap $RELEASE arm64 -> $base"
  rm -f "$work"/base-*.tar
  # Retries: a CI run downloads ~300 packages; one dropped connection should not fail the build.
  mmdebstrap --mode=root --architectures=arm64 --variant=minbase --components="main non-free-firmware" \
    --aptopt='Acquire::Retries "5"' \
    --include="$packages" \
    --essential-hook='env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot "$1" dpkg-divert --local --rename --add /usr/sbin/update-initramfs && ln -sf /bin/true "$1/usr/sbin/update-initramfs"' \
    --customize-hook="ROOT_LABEL=$ROOT_LABEL $here/stage1-hook.sh \"\$1\"" \
    "$RELEASE" "$work/partial.tar" \
    "deb $MIRROR $RELEASE main non-free-firmware" \
    "deb $MIRROR $RELEASE-updates main non-free-firmware" \
    "deb $SECURITY_MIRROR $RELEASE-security main non-free-firmware"
  mv "$work/partial.tar" "$base"
else
  log "stage 1: cached $base"
fi

# --- stage 2: bambupi, units, first boot; then the disk -----------------------------------------------------------
rootfs="$work/root"
rm -rf "$rootfs" "$work/wheels" "$work/bootfs"
mkdir -p "$rootfs"
log "stage 2: unpack"
tar --numeric-owner --xattrs --xattrs-include='*' -xpf "$base" -C "$rootfs"

log "stage 2: wheels (bambupi from this checkout + $here/wheels.lock)"
"$here/fetch-wheels.sh" "$work/wheels"
mkdir -p "$rootfs/tmp/wheels"
cp "$work"/wheels/* "$here/install-venv.sh" "$rootfs/tmp/wheels/"

log "stage 2: venv /opt/bambupi-$version, linked as /opt/bambupi (under emulation)"
in_root sh /tmp/wheels/install-venv.sh /tmp/wheels
rm -rf "$rootfs/tmp/wheels"
ln -sf /opt/bambupi/bin/bambupi "$rootfs/usr/local/bin/bambupi"

log "stage 2: system files"
ROOT_LABEL=$ROOT_LABEL BOOT_LABEL=$BOOT_LABEL "$here/stage2-hook.sh" "$rootfs" "$here" "$root_dir"
in_root /opt/bambupi/bin/bambupi check-config -c /etc/bambupi/bambupi.toml

# Files dated SOURCE_DATE_EPOCH at most, so the same inputs give the same file dates.
find "$rootfs" -xdev -newermt "@$SOURCE_DATE_EPOCH" -print0 | xargs -0r touch -h -d "@$SOURCE_DATE_EPOCH"

log "stage 2: assemble the disk"
bootfs="$work/bootfs"
mv "$rootfs/boot/firmware" "$bootfs"
mkdir -p "$rootfs/boot/firmware"
boot_img="$work/boot.vfat"
root_img="$work/root.ext4"
rm -f "$boot_img" "$root_img"
mkfs.vfat -C -F 32 -n "$BOOT_LABEL" -i B4B0B001 "$boot_img" $((BOOT_MIB * 1024)) >/dev/null
(cd "$bootfs" && mcopy -s -p -m -i "$boot_img" ./* ::/)
root_mib=$(( $(du -sm --apparent-size "$rootfs" | cut -f1) * 13 / 10 + 200 ))
mkfs.ext4 -q -L "$ROOT_LABEL" -U 6b616d62-7570-4900-8000-000000000001 -E root_owner=0:0,hash_seed=6b616d62-7570-4900-8000-000000000002 \
  -d "$rootfs" "$root_img" "${root_mib}M"
start1=8192                                   # 4 MiB in 512-byte sectors
size1=$((BOOT_MIB * 2048))
start2=$((start1 + size1))
size2=$((root_mib * 2048))
img="$work/bambupi-$version-arm64.img"
rm -f "$img"
truncate -s $(((start2 + size2) * 512)) "$img"
sfdisk -q "$img" <<SFDISK
label: dos
label-id: 0x6b616d62
start=$start1, size=$size1, type=c, bootable
start=$start2, size=$size2, type=83
SFDISK
dd if="$boot_img" of="$img" bs=512 seek="$start1" conv=notrunc,sparse status=none
dd if="$root_img" of="$img" bs=512 seek="$start2" conv=notrunc,sparse status=none
rm -f "$boot_img" "$root_img"

log "compress"
out="$dist/bambupi-$version-arm64.img.zst"
zstd -q -f -T0 -10 "$img" -o "$out"
# bmaptool copies only the blocks the map lists (most of the root partition is empty).
bmaptool -q create "$img" -o "$dist/bambupi-$version-arm64.img.bmap"
(cd "$dist" && sha256sum "$(basename "$out")" > "$(basename "$out").sha256")
log "done: $out ($(du -h "$out" | cut -f1) compressed, $(du -h --apparent-size "$img" | cut -f1) raw); raw image: $img"
