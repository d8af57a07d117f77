#!/usr/bin/env bash
# Build the bambupi wheel from this checkout into folder $1 (a copy of the sources, so the tree stays clean).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$1"
src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
cp -r "$root/pyproject.toml" "$root/README.md" "$root/bambupi" "$src/"
find "$src" -name __pycache__ -prune -exec rm -rf {} +
mkdir -p "$out"
python3 -m pip wheel --isolated -q --no-deps -w "$out" "$src"
