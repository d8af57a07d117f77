"""`bambupi demo` as a newcomer runs it: one command, a URL, live state, a clean stop; twice in a row."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def run_demo_once() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bambupi", "demo", "--port", "0", "--host", "127.0.0.1", "--time-scale", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = folder = None
        deadline = time.monotonic() + 20
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if match := re.search(r"open (http://\S+)", line):
                url = match.group(1)
        assert url is not None, "demo printed no URL"
        line = proc.stdout.readline()
        if match := re.search(r"state in (\S+);", line):
            folder = Path(match.group(1))
        assert folder is not None and folder.is_dir()

        state: dict[str, object] = {}
        while time.monotonic() < deadline:
            with urllib.request.urlopen(url + "api/printers/demo", timeout=2) as r:
                printer = json.load(r)
            state = printer["state"]
            if printer["connection"] == "online" and state["gcode_state"] in ("PREPARE", "RUNNING"):
                break
            time.sleep(0.1)
        assert state["gcode_state"] in ("PREPARE", "RUNNING"), state
        with urllib.request.urlopen(url + "healthz", timeout=2) as r:
            assert json.load(r)["status"] == "ok"

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert not folder.exists(), "the demo left its temporary state behind"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_demo_starts_serves_live_state_and_stops_cleanly_twice() -> None:
    run_demo_once()
    run_demo_once()
