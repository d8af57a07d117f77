#!/usr/bin/env bash
# make image-test-pi3 (optional, after `make image`; ~3 min): boot the image as QEMU's Raspberry Pi 3B, through the
# Pi's own boot files: the kernel and initramfs config.txt names, the device tree of a Pi 3B and cmdline.txt from the
# boot partition, the card as an SD card (padded to a power of two, as QEMU's SD model wants) and a USB network
# adapter. Passes when the service answers /healthz through it. The image's first boot has no bambupi.toml here.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/pyproject.toml")"
test_dir="${IMAGE_WORK:-$repo/build/image}/test-pi3"
log() { echo "[image-test-pi3 $(date +%H:%M:%S)] $*"; }
fail() { echo "image-test-pi3 FAILED: $*" >&2; exit 1; }

rm -rf "$test_dir"; mkdir -p "$test_dir"
img="$test_dir/sd.img"
bmaptool -q copy "${IMAGE_DIST:-$repo/dist}/bambupi-$version-arm64.img.zst" "$img"
boot_start="$(sfdisk -J "$img" | "$python" -c \
  'import json,sys; print(json.load(sys.stdin)["partitiontable"]["partitions"][0]["start"])')"
boot="$img@@$((boot_start * 512))"
mtype -i "$boot" ::config.txt | tr -d '\r' > "$test_dir/config.txt"
kernel="$(sed -n 's/^kernel=//p' "$test_dir/config.txt")"
initramfs="$(sed -n 's/^initramfs \([^ ]*\).*/\1/p' "$test_dir/config.txt")"
mcopy -i "$boot" "::$kernel" "$test_dir/kernel" || fail "config.txt names $kernel, not on the boot partition"
mcopy -i "$boot" "::$initramfs" "$test_dir/initrd" || fail "config.txt names $initramfs, not on the boot partition"
mcopy -i "$boot" ::bcm2837-rpi-3-b.dtb "$test_dir/pi3b.dtb" || fail "no Pi 3B device tree on the boot partition"
cmdline="$(mtype -i "$boot" ::cmdline.txt | tr -d '\r\n')"
size=$(stat -c %s "$img"); pow=1; while [ $pow -lt "$size" ]; do pow=$((pow * 2)); done
truncate -s "$pow" "$img"

port="$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
log "boot: qemu-system-aarch64 -M raspi3b, cmdline.txt: $cmdline"
started=$(date +%s)
# The PL011 UART is QEMU's serial port (ttyAMA0); cmdline.txt names the Pi's consoles, which QEMU does not show.
qemu-system-aarch64 -M raspi3b -m 1G -nographic -no-reboot \
  -kernel "$test_dir/kernel" -initrd "$test_dir/initrd" -dtb "$test_dir/pi3b.dtb" \
  -append "$cmdline console=ttyAMA0,115200 panic=10" -drive "file=$img,format=raw,if=sd" \
  -netdev "user,id=net0,hostfwd=tcp:127.0.0.1:$port-:80" -device usb-net,netdev=net0 \
  -serial "file:$test_dir/serial.log" -monitor none < /dev/null > "$test_dir/qemu.log" 2>&1 &
qemu_pid=$!
trap 'kill $qemu_pid 2>/dev/null || true; wait 2>/dev/null || true' EXIT
deadline=$((started + 900))
until curl -fsS --max-time 5 "http://127.0.0.1:$port/healthz" > "$test_dir/healthz.json" 2>/dev/null; do
  kill -0 "$qemu_pid" 2>/dev/null || fail "QEMU exited (see $test_dir/serial.log)"
  [ "$(date +%s)" -lt "$deadline" ] || { tail -n 40 "$test_dir/serial.log" >&2; fail "no /healthz after 900 s"; }
  sleep 5
done
grep -q '"web":{"ok":true}' "$test_dir/healthz.json" || fail "unexpected /healthz: $(cat "$test_dir/healthz.json")"
log "PASSED: /healthz answers $(( $(date +%s) - started )) s after QEMU started (-M raspi3b)"
