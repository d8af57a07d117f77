#!/bin/sh
# After image/firstboot.py wrote the files: make the running system use them (the next boots read them anyway).
set -eu
hostname -F /etc/hostname
country="$(sed -n 's/.*ieee80211_regdom=//p' /etc/modprobe.d/bambupi-wifi-country.conf 2>/dev/null || true)"
if [ -n "$country" ]; then
  iw reg set "$country" || echo "could not set the Wi-Fi country now; it applies from the next boot"
fi
