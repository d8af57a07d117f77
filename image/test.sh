#!/usr/bin/env bash
# make image-test: build the image, check its Pi boot files, put a test bambupi.toml on its boot partition, boot it
# in QEMU (-M virt, the image's own kernel and initrd) and check from the host that the service answers /healthz and
# reaches a simulated printer running on the host (the guest sees the host's loopback as 10.0.2.2).
# On success it writes image/verified.sha256 (see inputs-hash.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
source "$here/image.env"
python="${PYTHON:-$repo/.venv/bin/python}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/pyproject.toml")"
work="${IMAGE_WORK:-$repo/build/image}"
test_dir="$work/test"
log() { echo "[image-test $(date +%H:%M:%S)] $*"; }
fail() { echo "image-test FAILED: $*" >&2; exit 1; }

started=$(date +%s)
"$here/build.sh"
built=$(date +%s)
log "build took $((built - started)) s"

rm -rf "$test_dir"; mkdir -p "$test_dir"
img="$test_dir/disk.img"
# The card is written from what users download: the compressed image and its block map, as bmaptool does.
bmaptool -q copy "${IMAGE_DIST:-$repo/dist}/bambupi-$version-arm64.img.zst" "$img"
# Partition offsets from the image's own table.
read -r boot_start root_start < <(sfdisk -J "$img" | "$python" -c \
  'import json,sys; p=json.load(sys.stdin)["partitiontable"]["partitions"]; print(p[0]["start"], p[1]["start"])')
boot="$img@@$((boot_start * 512))"

log "check the Pi boot files"
cmdline="$(mtype -i "$boot" ::cmdline.txt | tr -d '\r')"
label="$(dd if="$img" bs=1 skip=$((root_start * 512 + 1024 + 0x78)) count=16 status=none | tr -d '\0')"
[[ " $cmdline " == *" root=LABEL=$label "* ]] || fail "cmdline.txt root= does not name the root partition's label $label: $cmdline"
[ "$label" = "$ROOT_LABEL" ] || fail "root partition label is $label, expected $ROOT_LABEL"
mtype -i "$boot" ::config.txt | tr -d '\r' > "$test_dir/config.txt"
kernel="$(sed -n 's/^kernel=//p' "$test_dir/config.txt")"
initramfs="$(sed -n 's/^initramfs \([^ ]*\).*/\1/p' "$test_dir/config.txt")"
[ -n "$kernel" ] && [ -n "$initramfs" ] || fail "config.txt names no kernel or initramfs"
mdir -b -i "$boot" :: > "$test_dir/boot-files.txt"
for f in "$kernel" "$initramfs"; do
  grep -qx "::/$f" "$test_dir/boot-files.txt" || fail "config.txt names $f, which is not on the boot partition"
done
grep -q '^::/bambupi-example.toml$' "$test_dir/boot-files.txt" || fail "no bambupi-example.toml on the boot partition"
mcopy -i "$boot" "::$kernel" "$test_dir/kernel"
mcopy -i "$boot" "::$initramfs" "$test_dir/initrd"
log "boot files ok: root=LABEL=$label, kernel=$kernel, initramfs=$initramfs"

log "simulated printer on the host"
serial=01P00A000000099
code=24681357
"$python" -m bambupi sim --host 127.0.0.1 --mqtt-port 0 --serial "$serial" --access-code "$code" --scenario idle \
  > "$test_dir/sim.log" 2>&1 &
sim_pid=$!
qemu_pid=""
cleanup() {
  [ -z "$qemu_pid" ] || kill "$qemu_pid" 2>/dev/null || true
  kill "$sim_pid" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do grep -q "MQTT/TLS on" "$test_dir/sim.log" && break; sleep 0.2; done
sim_port="$(sed -n 's/.*MQTT\/TLS on 127.0.0.1:\([0-9]*\).*/\1/p' "$test_dir/sim.log")"
[ -n "$sim_port" ] || fail "the simulator did not start: $(cat "$test_dir/sim.log")"

cat > "$test_dir/bambupi.toml" <<TOML
[system]
hostname = "bambupi-test"

[[printer]]
id = "sim"
model = "P1S"
host = "10.0.2.2"
mqtt_port = $sim_port
serial = "$serial"
access_code = "$code"
camera = "off"
TOML
mcopy -i "$boot" "$test_dir/bambupi.toml" ::bambupi.toml
truncate -s +512M "$img"   # room for the first boot to grow the root partition into

port="$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
log "boot: qemu-system-aarch64 -M virt, http://127.0.0.1:$port/ -> guest port 80"
booted=$(date +%s)
qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 1024 -nographic -no-reboot \
  -kernel "$test_dir/kernel" -initrd "$test_dir/initrd" -append "$cmdline console=ttyAMA0 panic=10" \
  -drive "file=$img,format=raw,if=virtio" \
  -netdev "user,id=net0,hostfwd=tcp:127.0.0.1:$port-:80" -device virtio-net-pci,netdev=net0,romfile= \
  -serial "file:$test_dir/serial.log" -monitor none < /dev/null > "$test_dir/qemu.log" 2>&1 &
qemu_pid=$!

wait_for() {  # wait_for <seconds> <description> <command...>
  local limit=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + limit ))
  until "$@" > /dev/null 2>&1; do
    kill -0 "$qemu_pid" 2>/dev/null || fail "QEMU exited while waiting for $what (see $test_dir/serial.log)"
    [ "$(date +%s)" -lt "$deadline" ] || { tail -n 60 "$test_dir/serial.log" >&2; fail "no $what after $limit s"; }
    sleep 3
  done
}
healthz() { curl -fsS --max-time 5 "http://127.0.0.1:$port/healthz"; }
online() { curl -fsS --max-time 5 "http://127.0.0.1:$port/api/printers/sim" | grep -q '"connection": *"online"'; }
wait_for 900 "answer on /healthz" healthz
ready=$(date +%s)
log "/healthz answers $((ready - booted)) s after QEMU started"
wait_for 300 "simulated printer online" online
log "the simulated printer is online ($(( $(date +%s) - booted )) s after QEMU started)"
grep -q "firstboot: applied bambupi.toml" "$test_dir/serial.log" || true

"$here/inputs-hash.sh" > "$here/verified.sha256"
log "PASSED: build $((built - started)) s, boot to /healthz $((ready - booted)) s; wrote image/verified.sha256"
