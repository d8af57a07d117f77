#!/usr/bin/env bash
# Stage 2 of the image build: the appliance around the service. Arguments: the unpacked root, image/, the repo.
set -euo pipefail
root="$1"; here="$2"; repo="$3"
in_root() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 chroot "$root" "$@"; }

# The service's user, in the groups that own the GPIO and I2C devices (udev rule below).
in_root groupadd --system -f gpio
in_root groupadd --system -f i2c
id_exists="$(in_root getent passwd bambupi || true)"
[ -n "$id_exists" ] || in_root useradd --system --user-group --home-dir /var/lib/bambupi --no-create-home \
  --shell /usr/sbin/nologin --groups gpio,i2c bambupi
cat > "$root/etc/udev/rules.d/60-bambupi-gpio-i2c.rules" <<'RULES'
# Debian's kernel has no /dev/gpiomem: gpiozero (lgpio) opens /dev/gpiochip*; the OLED is on /dev/i2c-1.
SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"
SUBSYSTEM=="i2c-dev", GROUP="i2c", MODE="0660"
RULES
echo i2c-dev > "$root/etc/modules-load.d/bambupi-i2c.conf"

# Config: a default that starts the service on port 80 with no printers (the settings page adds them).
install -d -m 0750 -o root -g root "$root/etc/bambupi"
printf '[web]\nlisten = "0.0.0.0:80"\n' > "$root/etc/bambupi/bambupi.toml"
in_root chown -R bambupi:bambupi /etc/bambupi
chmod 0600 "$root/etc/bambupi/bambupi.toml"

# Units and first-boot scripts.
install -d "$root/usr/local/lib/bambupi"
install -m 0644 "$here/firstboot.py" "$root/usr/local/lib/bambupi/firstboot.py"
install -m 0755 "$here/firstboot-runtime.sh" "$here/growroot.sh" "$root/usr/local/lib/bambupi/"
install -m 0644 "$here"/units/*.service "$root/etc/systemd/system/"
install -d "$root/etc/systemd/system/ssh.service.d"
install -m 0644 "$here/units/ssh.service.d/bambupi.conf" "$root/etc/systemd/system/ssh.service.d/"
in_root systemctl enable bambupi.service bambupi-firstboot.service bambupi-growroot.service bambupi-sshkeys.service \
  NetworkManager.service avahi-daemon.service systemd-timesyncd.service ssh.service
# sshd only as ssh.service, whose drop-in starts it only when a key is installed: the socket-activated variant would
# listen on port 22 regardless. No console wizard either: the box has no keyboard, the settings come from the card.
in_root systemctl mask ssh.socket systemd-firstboot.service
# Only /var/lib/bambupi is written to the card in normal running: the journal in RAM, /tmp on tmpfs.
install -d "$root/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=32M\n' > "$root/etc/systemd/journald.conf.d/bambupi.conf"
cp "$root/usr/share/systemd/tmp.mount" "$root/etc/systemd/system/tmp.mount"
in_root systemctl enable tmp.mount
install -d "$root/etc/ssh/sshd_config.d"
printf 'PasswordAuthentication no\nKbdInteractiveAuthentication no\n' > "$root/etc/ssh/sshd_config.d/bambupi.conf"

# Identity: each box makes its own machine id and SSH host keys on first boot.
printf 'uninitialized\n' > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root"/etc/ssh/ssh_host_*
echo bambupi > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tbambupi\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
cat > "$root/etc/fstab" <<FSTAB
LABEL=$ROOT_LABEL  /              ext4  defaults,noatime,commit=60  0  1
LABEL=$BOOT_LABEL  /boot/firmware vfat  defaults,umask=0077        0  2
FSTAB

# The boot partition: the commented example the user copies to bambupi.toml.
install -m 0644 "$here/boot-example.toml" "$root/boot/firmware/bambupi-example.toml"
rm -rf "$root"/var/cache/apt/*.bin "$root"/var/log/*.log "$root"/tmp/* "$root/root/.cache"
