#!/usr/bin/env bash
# dist/bambupi-<version>-update.tar: what a running box needs to update bambupi without reflashing (see docs/image.md,
# "Updating without reflashing"). Runs on any Linux machine with Python 3 and pip; no root needed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/pyproject.toml")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bundle="$work/bambupi-update"
mkdir -p "$bundle" "$repo/dist"
"$here/fetch-wheels.sh" "$bundle/wheels"
install -m 0755 "$here/install-venv.sh" "$bundle/install-venv.sh"
cat > "$bundle/install.sh" <<'SH'
#!/bin/sh
# On the box, as root: install this bundle's bambupi into a new venv and restart the service.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
"$here/install-venv.sh" "$here/wheels"
systemctl restart bambupi
echo "bambupi updated; the page is back in a few seconds"
SH
chmod 0755 "$bundle/install.sh"
out="$repo/dist/bambupi-$version-update.tar"
tar -C "$work" -cf "$out" bambupi-update
echo "wrote $out"
