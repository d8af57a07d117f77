#!/usr/bin/env bash
# Into folder $1: the bambupi wheel of this checkout, every wheel image/wheels.lock pins (aarch64, the image's
# CPython, checked against the lock's hashes) and the lock itself: what install-venv.sh installs on the Pi.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/image.env"
out="$1"
"$here/wheel.sh" "$out"
platforms=()
for p in $WHEEL_PLATFORMS; do platforms+=(--platform "$p"); done
python3 -m pip download --isolated -q --no-deps --require-hashes -d "$out" "${platforms[@]}" \
  --only-binary=:all: --python-version "$WHEEL_PYTHON" --implementation cp --abi "cp${WHEEL_PYTHON/./}" \
  -r "$here/wheels.lock"
cp "$here/wheels.lock" "$out/"
