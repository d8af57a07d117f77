"""`bambupi demo` as a newcomer runs it: one command, a URL, live state, a clean stop; twice in a row."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bambupi.sim.scenarios import SCENARIOS

HANG_S = 60  # each wait ends on a state; this bounds only a hang, however busy the machine


@contextmanager
def demo(log: Path, *options: str) -> Iterator[str]:
    """A running ``bambupi demo`` and its URL; on leaving, stopped with SIGTERM, which must leave nothing behind."""
    # The log goes to a file: an unread pipe would fill and stop the demo mid-log.
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bambupi", "demo", "--port", "0", "--host", "127.0.0.1", *options],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        assert proc.stdout is not None
        url = folder = None
        while url is None:  # readline waits for the demo; the test's timeout bounds a hang
            line = proc.stdout.readline()
            assert line, f"the demo ended before it printed a URL:\n{log.read_text()}"
            if match := re.search(r"open (http://\S+)", line):
                url = match.group(1)
        line = proc.stdout.readline()
        if match := re.search(r"state in (\S+);", line):
            folder = Path(match.group(1))
        assert folder is not None and folder.is_dir()

        yield url

        assert proc.poll() is None, f"the demo ended while in use:\n{log.read_text()}"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(HANG_S) == 0
        assert not folder.exists(), "the demo left its temporary state behind"
        assert "Traceback" not in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=HANG_S) as r:
        return json.load(r)


def wait_for_printer(url: str, ok: Any) -> dict[str, Any]:
    deadline = time.monotonic() + HANG_S
    printer: dict[str, Any] = get(url + "api/printers/demo")
    while not ok(printer) and time.monotonic() < deadline:
        time.sleep(0.1)
        printer = get(url + "api/printers/demo")
    return printer


@pytest.mark.timeout(4 * HANG_S)
def test_demo_starts_serves_live_state_and_stops_cleanly_twice(tmp_path: Path) -> None:
    for run in ("first", "second"):
        with demo(tmp_path / f"{run}.log", "--time-scale", "20") as url:
            printer = wait_for_printer(
                url, lambda p: p["connection"] == "online" and p["state"]["gcode_state"] in ("PREPARE", "RUNNING")
            )
            assert printer["state"]["gcode_state"] in ("PREPARE", "RUNNING"), printer
            assert get(url + "healthz")["status"] == "ok"


@pytest.mark.timeout(4 * HANG_S)
@pytest.mark.parametrize(
    "options",
    [["--scenario", name] for name in SCENARIOS] + [["--model", "X1C"], ["--model", "H2D"], ["--model", "a1 mini"]],
    ids=lambda options: " ".join(options),
)
def test_every_scenario_and_model_family_serves_its_printer(tmp_path: Path, options: list[str]) -> None:
    with demo(tmp_path / "demo.log", *options, "--time-scale", "20") as url:
        printer = wait_for_printer(url, lambda p: p["connection"] == "online" and p["state"]["gcode_state"])
        assert printer["connection"] == "online", printer
        assert get(url + "healthz")["status"] == "ok"
        with urllib.request.urlopen(url, timeout=HANG_S) as page:
            assert page.status == 200
