"""What several test modules share (no test module imports another): waiting on a state, a real full disk, and a
config builder."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import trio


async def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> float:
    """Poll until ``check()`` holds; returns the seconds it took. The limit is generous: a busy machine is slower."""
    start = trio.current_time()
    with trio.fail_after(timeout):
        while not check():
            await trio.sleep(0.02)
    return trio.current_time() - start


def mount(*args: str) -> None:
    """``mount`` as root (or with password-less sudo); without it the test is skipped, under ``CI=true`` it fails."""
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    done = subprocess.run([*sudo, "mount", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        reason = f"cannot mount ({' '.join(args)}): {done.stderr.strip() or done.returncode}; needs root"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def umount(folder: Path) -> None:
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    subprocess.run([*sudo, "umount", "-l", str(folder)], capture_output=True, timeout=30)


def fill(folder: Path) -> Path:
    """Write a file until the filesystem says ENOSPC: the disk is full."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


# A box watching one printer powered from a Tasmota plug; format with serial, code, mqtt_port and plug_url.
PLUGGED_PRINTER = """\
[web]
listen = "127.0.0.1:0"

[[printer]]
id = "garage"
name = "Garage P1S"
model = "P1S"
host = "127.0.0.1"
serial = "{serial}"
access_code = "{code}"
mqtt_port = {mqtt_port}
camera = "off"
reconnect_max_s = 0.5

[printer.plug]
kind = "tasmota"
address = "{plug_url}"

[power]
sample_interval_s = 0.1
flush_interval_s = 0.2
"""
