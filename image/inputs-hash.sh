#!/usr/bin/env bash
# The hash of everything the image is built from in this repo: image/ (its scripts, units, package list and wheel
# lock) and pyproject.toml. `make image-test` records it in image/verified.sha256 after a successful boot; .ci/run
# runs the image test again only when it differs.
set -euo pipefail
cd "$(dirname "$0")/.."
find image -type f ! -name verified.sha256 ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z \
  | xargs -0 sha256sum | cat - <(sha256sum pyproject.toml) | sha256sum | cut -d' ' -f1
