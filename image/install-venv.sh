#!/bin/sh
# Install bambupi from a folder of wheels (the bambupi wheel, the locked dependencies and wheels.lock) into its own
# venv, /opt/bambupi-<version>, check the box's config with it, then point /opt/bambupi at it in one rename.
# Used by the image build (in the chroot) and by update bundles on a running box (image/update-bundle.sh).
# A config the new version rejects leaves /opt/bambupi as it was. The previous venv stays for a rollback:
#   ln -sfn /opt/bambupi-<old version> /opt/bambupi && systemctl restart bambupi
# Usage: install-venv.sh WHEELS_DIR        (BAMBUPI_OPT, BAMBUPI_CONFIG override /opt and the config, for tests)
set -eu
wheels="$(cd "$1" && pwd)"
opt="${BAMBUPI_OPT:-/opt}"
config="${BAMBUPI_CONFIG:-/etc/bambupi/bambupi.toml}"
wheel="$(ls "$wheels"/bambupi-*.whl)"
version="$(basename "$wheel" | cut -d- -f2)"
link="$opt/bambupi"
target="$opt/bambupi-$version"
current="$(readlink -f "$link" 2>/dev/null || true)"
if [ "$current" = "$target" ]; then
  target="$target-$(date +%Y%m%d%H%M%S)"  # the same version again: a fresh folder, the running one stays intact
fi

echo "install-venv: bambupi $version into $target"
rm -rf "$target"
python3 -m venv "$target"
"$target/bin/pip" install -q --no-index --no-deps --require-hashes --find-links "$wheels" -r "$wheels/wheels.lock"
"$target/bin/pip" install -q --no-index --no-deps "$wheel"
if [ -f "$config" ] && ! "$target/bin/bambupi" check-config -c "$config"; then
  echo "install-venv: bambupi $version rejects $config (problems above); $link is unchanged" >&2
  rm -rf "$target"
  exit 1
fi
ln -sfn "$target" "$link.new"
mv -T "$link.new" "$link"
# Keep the new and the previous venv; older ones only take space on the card.
for old in "$opt"/bambupi-*; do
  [ -d "$old" ] || continue
  case "$old" in "$target"|"$current") ;; *) rm -rf "$old" ;; esac
done
echo "install-venv: $link -> $target"
