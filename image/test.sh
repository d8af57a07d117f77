#!/usr/bin/env bash
# make image-test: build the image, check its Pi boot files, put a test bambupi.toml on its boot partition, boot it
# in QEMU (-M virt, the image's own kernel and initrd) and check from the host that the service answers /healthz and
# reaches a simulated printer running on the host (the guest sees the host's loopback as 10.0.2.2). Then it looks
# inside over SSH (the first file gives a key): first-boot results, file modes, no secrets left on the boot
# partition, the root partition grown, /tmp and the journal off the card; powers off with the power button, boots a
# second time with a file that gives no key and checks SSH is off and the printer still comes online.
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

# First boot: SSH on with a key made here, so the test can look inside the running box.
ssh-keygen -q -t ed25519 -N "" -C image-test -f "$test_dir/id_ed25519"
wifi_password="image-test-wifi-secret"
cat > "$test_dir/bambupi.toml" <<TOML
[system]
hostname = "bambupi-test"
wifi_country = "GB"
wifi_ssid = "TestNet"
wifi_password = "$wifi_password"
ssh_authorized_key = "$(cat "$test_dir/id_ed25519.pub")"

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
root_mib_before=$(( $(sfdisk -J "$img" | "$python" -c \
  'import json,sys; print(json.load(sys.stdin)["partitiontable"]["partitions"][1]["size"])') / 2048 ))
truncate -s +512M "$img"   # a bigger card: room for the first boot to grow the root partition into

free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port="$(free_port)"
ssh_port="$(free_port)"
boot_vm() {  # boot_vm <serial log>
  log "boot: qemu-system-aarch64 -M virt, http://127.0.0.1:$port/ -> guest port 80, ssh on $ssh_port"
  booted=$(date +%s)
  # romfile= : no network boot ROM (it comes with ipxe-qemu, a recommended package); the disk boots.
  qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 1024 -nographic -no-reboot \
    -kernel "$test_dir/kernel" -initrd "$test_dir/initrd" -append "$cmdline console=ttyAMA0 panic=10" \
    -drive "file=$img,format=raw,if=virtio" \
    -netdev "user,id=net0,hostfwd=tcp:127.0.0.1:$port-:80,hostfwd=tcp:127.0.0.1:$ssh_port-:22" \
    -device virtio-net-pci,netdev=net0,romfile= \
    -serial "file:$1" -monitor "unix:$test_dir/monitor.sock,server,nowait" < /dev/null > "$test_dir/qemu.log" 2>&1 &
  qemu_pid=$!
  serial_log="$1"
}

wait_for() {  # wait_for <seconds> <description> <command...>
  local limit=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + limit ))
  until "$@" > /dev/null 2>&1; do
    kill -0 "$qemu_pid" 2>/dev/null || fail "QEMU exited while waiting for $what (see $serial_log)"
    [ "$(date +%s)" -lt "$deadline" ] || { tail -n 60 "$serial_log" >&2; fail "no $what after $limit s"; }
    sleep 3
  done
}
healthz() { curl -fsS --max-time 5 "http://127.0.0.1:$port/healthz"; }
online() { curl -fsS --max-time 5 "http://127.0.0.1:$port/api/printers/sim" | grep -q '"connection": *"online"'; }
in_box() {
  ssh -q -p "$ssh_port" -i "$test_dir/id_ed25519" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o BatchMode=yes -o ConnectTimeout=10 root@127.0.0.1 "$@"
}
ssh_banner() {  # the first bytes the guest's port 22 sends (QEMU accepts on the host side either way)
  timeout 8 "$python" -c 'import socket,sys; s=socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
s.settimeout(5)
try: print(s.recv(4).decode(errors="replace"))
except OSError: print("")' "$ssh_port" 2>/dev/null || true
}
expect() {  # expect <description> <expected> <actual>
  [ "$2" = "$3" ] || fail "$1: expected '$2', got '$3'"
  log "ok: $1 ($3)"
}
shutdown_vm() {  # the power button (ACPI on -M virt): a clean shutdown, so the card's files are written out
  "$python" -c 'import socket, sys, time; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.recv(4096)
s.sendall(b"system_powerdown\n"); time.sleep(1)' "$test_dir/monitor.sock" || true
  local clean=no
  for _ in $(seq 90); do kill -0 "$qemu_pid" 2>/dev/null || { clean=yes; break; }; sleep 2; done
  [ "$clean" = yes ] || { tail -n 30 "$serial_log" >&2; fail "the box did not power off within 180 s of the power button"; }
  wait "$qemu_pid" 2>/dev/null || true
  qemu_pid=""
  log "ok: powered off cleanly"
}

boot_vm "$test_dir/serial.log"
wait_for 900 "answer on /healthz" healthz
healthz_s=$(( $(date +%s) - booted ))
log "/healthz answers $healthz_s s after QEMU started"
wait_for 300 "simulated printer online" online
online_s=$(( $(date +%s) - booted ))
log "the simulated printer is online ($online_s s after QEMU started)"

log "look inside the box over SSH (on: the file gave a key)"
wait_for 120 "SSH login with the key from bambupi.toml" in_box true
expect "hostname" "bambupi-test" "$(in_box hostname)"
expect "service state" "active" "$(in_box systemctl is-active bambupi)"
expect "service user" "bambupi" "$(in_box ps -o user= -p '$(systemctl show -p MainPID --value bambupi)' | tr -d ' ')"
expect "watchdog" "1min" "$(in_box systemctl show -p WatchdogUSec --value bambupi)"
expect "config file mode and owner" "600 bambupi" "$(in_box stat -c "'%a %U'" /etc/bambupi/bambupi.toml)"
expect "config holds the access code" "1" "$(in_box grep -c "'access_code = \"$code\"'" /etc/bambupi/bambupi.toml)"
expect "Wi-Fi connection file mode" "600" \
  "$(in_box stat -c %a /etc/NetworkManager/system-connections/bambupi-wifi.nmconnection)"
expect "boot partition after the first boot" "bambupi-applied.toml bambupi-example.toml" \
  "$(in_box "ls /boot/firmware | grep '^bambupi' | sort | tr '\n' ' ' | sed 's/ \$//'")"
expect "secrets left on the boot partition" "0" \
  "$(in_box "cat /boot/firmware/bambupi-* | grep -c -e '$code' -e '$wifi_password' || true")"
expect "/tmp" "tmpfs" "$(in_box findmnt -no FSTYPE /tmp)"
expect "journal files on the card" "0" "$(in_box 'find /var/log/journal -type f 2>/dev/null | wc -l')"
root_mib_after="$(in_box "lsblk -bno SIZE /dev/vda2" | awk '{print int($1 / 1048576)}')"
[ "$root_mib_after" -ge $((root_mib_before + 500)) ] || fail "root partition did not grow: $root_mib_before -> $root_mib_after MiB"
log "ok: root partition grew from $root_mib_before to $root_mib_after MiB"
expect "machine id made on the box" "yes" "$(in_box 'test -s /etc/machine-id && ! grep -q uninitialized /etc/machine-id && echo yes')"
shutdown_vm

log "second boot: a new bambupi.toml without a key turns SSH off; settings and state survive the reboot"
printf '[system]\nhostname = "bambupi-test"\n' > "$test_dir/bambupi2.toml"
sed -n '/^\[\[printer\]\]/,$p' "$test_dir/bambupi.toml" >> "$test_dir/bambupi2.toml"
mcopy -o -i "$boot" "$test_dir/bambupi2.toml" ::bambupi.toml
boot_vm "$test_dir/serial2.log"
wait_for 900 "answer on /healthz after a reboot" healthz
wait_for 300 "simulated printer online after a reboot" online
log "ok: the printer is online $(( $(date +%s) - booted )) s after the second boot started"
banner="$(ssh_banner)"
[[ "$banner" != SSH* ]] || fail "SSH still answers ($banner) though bambupi.toml gave no key"
log "ok: port 22 sends no SSH banner"
shutdown_vm
mtype -i "$boot" ::bambupi-applied.toml > "$test_dir/applied2.toml"
grep -q "$code" "$test_dir/applied2.toml" && fail "the access code is on the boot partition after the second boot"
log "ok: the second file was applied and its copy holds no secret"

"$here/inputs-hash.sh" > "$here/verified.sha256"
log "PASSED: build $((built - started)) s, boot to /healthz $healthz_s s, printer online $online_s s; wrote image/verified.sha256"
