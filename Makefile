# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-loaded lint typecheck pytest bench screenshots soak clean image image-test image-test-pi3

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/bambupi demo

lint: $(STAMP)
	$(BIN)/ruff check bambupi tests bench image

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy --strict image/firstboot.py

pytest: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck pytest

# The test suite with two CPU hogs beside it: no test may depend on spare CPU. The hogs are killed however it ends.
test-loaded: $(STAMP)
	@hogs=""; trap 'kill $$hogs 2>/dev/null' EXIT INT TERM; \
	for i in 1 2; do sh -c 'while :; do :; done' & hogs="$$hogs $$!"; done; \
	$(BIN)/pytest -q -p no:randomly

bench: $(STAMP)
	$(BIN)/python -m bench

# The pictures in the README and docs/ (docs/*.png), taken from `bambupi demo` in headless Chromium (docs/look.md).
screenshots: $(STAMP)
	$(BIN)/python -m tests.screenshots

# The service under churn (WebSockets, MJPEG viewers, requests) while its printer's broker is killed: fds and RSS
# printed over time. SOAK_SECONDS (default 120), SOAK_TRACEMALLOC=1 to see what grows. Not part of `make test`.
soak: $(STAMP)
	$(BIN)/python -m bench.soak

# The SD-card image (root, ~20 min on 2 cores; host packages: see docs/image.md). Not part of `make test`.
image: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" image/build.sh

# Build, then boot it in QEMU against `bambupi sim`; records image/verified.sha256 on success.
image-test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" PYTHON="$(CURDIR)/$(BIN)/python" image/test.sh

# Optional, after `make image`: boot it as QEMU's Raspberry Pi 3B through its own boot files (~3 min).
image-test-pi3: $(STAMP)
	PYTHON="$(CURDIR)/$(BIN)/python" image/test-pi3.sh

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .pytest_cache .ruff_cache
