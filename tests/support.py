"""What several test modules share, so that no test module imports another: one ``wait_for``, report and printer
builders, a running box with its login, a real full disk, and a plugged-printer config."""

from __future__ import annotations

import errno
import inspect
import json
import os
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trio

from bambupi.config import PrinterConfig, load_config
from bambupi.secret import Secret
from bambupi.service import Running, Service
from bambupi.sim.simulator import Simulator

HANG_S = 30.0  # the limit of a wait on a state: only a hang reaches it, however busy the machine


async def wait_for(check: Callable[[], object], timeout: float = HANG_S, *, what: str = "",
                   interval: float = 0.02) -> float:
    """Poll until ``check()`` is truthy (a plain or an async function); returns the seconds it took.

    ``timeout`` bounds a hang only; on trio's fake clock it is in the fake clock's seconds. ``what`` names the state
    in the failure."""
    start = trio.current_time()
    with trio.move_on_after(timeout):
        while True:
            done = check()
            if inspect.isawaitable(done):
                done = await done
            if done:
                return trio.current_time() - start
            await trio.sleep(interval)
    raise AssertionError(f"gave up after {timeout} s waiting for {what or getattr(check, '__name__', check)}")


# --- reports and printers ------------------------------------------------------------------------------------------


def report(**fields: object) -> bytes:
    """A ``push_status`` report as it comes over MQTT, with ``fields`` in its ``print`` object."""
    return json.dumps({"print": {"command": "push_status", **fields}}).encode()


def printer_config(id: str = "p", **fields: object) -> PrinterConfig:
    """A P1S on loopback that nothing connects to unless ``fields`` say where (``mqtt_port=``)."""
    settings: dict[str, object] = {"name": "Garage", "model": "P1S", "host": "127.0.0.1",
                                   "serial": "01P00A000000001", "access_code": Secret("12345678"), **fields}
    return PrinterConfig(id=id, **settings)  # type: ignore[arg-type]


# --- a box: the real service from a real config file, against the simulator over TLS --------------------------------

SERIAL = "01P00A000000123"
CODE = "11223344"
PASSWORD = "correct horse battery"
CSRF = "X-CSRF-Token"
BOX_CONFIG = """\
# my box — keep this comment
[web]
listen = "127.0.0.1:0"   # loopback only
camera_requires_login = {camera_login}

[[printer]]
# the one in the garage
id = "garage"
model = "P1S"
host = "127.0.0.1"
serial = "{serial}"
access_code = "{code}"
mqtt_port = {port}
reconnect_max_s = 0.5

[storage]
path = "{folder}/bambupi.sqlite3"
"""


@dataclass
class Box:
    sim: Simulator
    running: Running
    base: str
    config_path: Path


async def start_box(
    nursery: trio.Nursery, tmp_path: Path, *, signed: bool = False, camera_login: bool = False
) -> Box:
    """The simulated P1S "garage" (idle) and the service watching it, from ``BOX_CONFIG`` written to ``tmp_path``."""
    sim = Simulator("P1S", SERIAL, CODE, scenario="idle", time_scale=100, signed_commands=signed)
    await nursery.start(sim.run)
    path = tmp_path / "bambupi.toml"
    path.write_text(
        BOX_CONFIG.format(
            serial=SERIAL, code=CODE, port=sim.mqtt_port, folder=tmp_path, camera_login=str(camera_login).lower()
        )
    )
    config, _ = load_config(path)
    running: Running = await nursery.start(Service(config, storage_folder=tmp_path).run)
    return Box(sim, running, f"http://127.0.0.1:{running.port}", path)


async def online(client: httpx.AsyncClient) -> None:
    """Until the box has the printer's first report."""
    async def reported() -> bool:
        return (await client.get("/api/printers/garage")).json()["state"]["gcode_state"] is not None

    await wait_for(reported, what="the printer's first report")


async def setup_and_login(client: httpx.AsyncClient) -> str:
    """The first visit sets ``PASSWORD``; the session's CSRF token."""
    r = await client.post("/api/setup", json={"password": PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["csrf"])


@asynccontextmanager
async def logged_in_box(tmp_path: Path) -> AsyncIterator[tuple[Box, httpx.AsyncClient, str]]:
    """A box with its printer online, and the owner's client logged in with its CSRF token."""
    async with trio.open_nursery() as nursery:
        box = await start_box(nursery, tmp_path)
        async with httpx.AsyncClient(base_url=box.base, timeout=60) as client:
            csrf = await setup_and_login(client)
            await online(client)
            yield box, client, csrf
        nursery.cancel_scope.cancel()


async def current_version(client: httpx.AsyncClient) -> str:
    """The config file's version as the settings page reads it."""
    r = await client.get("/api/settings")
    assert r.status_code == 200, r.text
    version = r.json()["version"]
    assert isinstance(version, str)
    return version


async def save_settings(
    client: httpx.AsyncClient, csrf: str, settings: dict[str, object], version: str | None = None
) -> httpx.Response:
    """POST the settings as the page does, against ``version`` (default: the file's version read just now)."""
    if version is None:
        version = await current_version(client)
    return await client.post("/api/settings", json={"settings": settings, "version": version}, headers={CSRF: csrf})


# --- a real full disk ----------------------------------------------------------------------------------------------


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
