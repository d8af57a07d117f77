"""Login, CSRF, rate limit, first-visit setup, set-password, and printer commands — over real HTTP, against the
simulator over TLS."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trio

from bambupi.config import load_config
from bambupi.passwords import verify_password
from bambupi.service import Running, Service
from bambupi.sim.broker import Simulator
from bambupi.web.auth import CSRF_HEADER, LoginLimiter, Sessions

SERIAL = "01P00A000000123"
CODE = "11223344"
PASSWORD = "correct horse battery"
CONFIG = """\
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
    sim = Simulator("P1S", SERIAL, CODE, scenario="idle", time_scale=100, signed_commands=signed)
    await nursery.start(sim.run)
    path = tmp_path / "bambupi.toml"
    path.write_text(
        CONFIG.format(
            serial=SERIAL, code=CODE, port=sim.mqtt_port, folder=tmp_path, camera_login=str(camera_login).lower()
        )
    )
    config, _ = load_config(path)
    running: Running = await nursery.start(Service(config, storage_folder=tmp_path).run)
    return Box(sim, running, f"http://127.0.0.1:{running.port}", path)


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Box]:
    async with trio.open_nursery() as nursery:
        yield await start_box(nursery, tmp_path)
        nursery.cancel_scope.cancel()


async def online(client: httpx.AsyncClient) -> None:
    with trio.fail_after(10):
        while (await client.get("/api/printers/garage")).json()["state"]["gcode_state"] is None:
            await trio.sleep(0.05)


async def setup_and_login(client: httpx.AsyncClient) -> str:
    r = await client.post("/api/setup", json={"password": PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["csrf"])


async def test_everything_that_changes_needs_a_session_and_csrf(box: Box, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with httpx.AsyncClient(base_url=box.base) as anon:
        for path, body in [
            ("/api/printers/garage/commands", {"command": "pause"}),
            ("/api/logout", {}),
        ]:
            r = await anon.post(path, json=body)
            assert r.status_code == 401 and r.json()["status"] == 401, path
        assert (await anon.post("/api/login", json={"password": "x"})).status_code == 409  # nothing set yet
        assert (await anon.get("/api/discovery")).status_code == 401
        info = (await anon.get("/api/session")).json()
        assert info == {"logged_in": False, "csrf": None, "password_set": False, "setup_allowed": True}

    async with httpx.AsyncClient(base_url=box.base) as owner, httpx.AsyncClient(base_url=box.base) as other:
        csrf = await setup_and_login(owner)
        cookie = owner.cookies.jar
        set_cookie = next(c for c in cookie if c.name == "bambupi_session")
        assert set_cookie.has_nonstandard_attr("HttpOnly")
        assert (await owner.post("/api/setup", json={"password": "another one"})).status_code == 409

        # The password hash is in the config file, every comment survived, the password itself is nowhere.
        text = box.config_path.read_text()
        for comment in ("# my box — keep this comment", "# the one in the garage", "# loopback only"):
            assert comment in text
        config, _ = load_config(box.config_path)
        assert config.web.admin_password_hash is not None
        assert verify_password(PASSWORD, config.web.admin_password_hash.reveal())
        assert PASSWORD not in text
        assert (box.config_path.parent / "bambupi.toml.bak").exists()

        await online(owner)
        r = await owner.post("/api/printers/garage/commands", json={"command": "light_on"})
        assert r.status_code == 403 and CSRF_HEADER in r.json()["error"]  # no token
        other_csrf = (await other.post("/api/login", json={"password": PASSWORD})).json()["csrf"]
        r = await owner.post(
            "/api/printers/garage/commands", json={"command": "light_on"}, headers={CSRF_HEADER: other_csrf}
        )
        assert r.status_code == 403  # a token from another session
        r = await owner.post(
            "/api/printers/garage/commands", json={"command": "light_on"},
            headers={CSRF_HEADER: csrf, "Origin": "http://evil.example"},
        )
        assert r.status_code == 403 and "cross-site" in r.json()["error"]
        r = await owner.post(
            "/api/printers/garage/commands", json={"command": "light_on"}, headers={CSRF_HEADER: csrf}
        )
        assert r.status_code == 200 and r.json()["result"] == "success"
        assert box.sim.printer.state.chamber_light == "on"
        assert (await owner.get("/api/discovery")).json()["printers"] == []

        r = await owner.post("/api/logout", headers={CSRF_HEADER: csrf})
        assert r.status_code == 200
        r = await owner.post(
            "/api/printers/garage/commands", json={"command": "light_off"}, headers={CSRF_HEADER: csrf}
        )
        assert r.status_code == 401
    assert PASSWORD not in caplog.text and CODE not in caplog.text


async def test_wrong_passwords_are_rate_limited(box: Box) -> None:
    async with httpx.AsyncClient(base_url=box.base) as client:
        await setup_and_login(client)
    async with httpx.AsyncClient(base_url=box.base) as client:
        statuses = [(await client.post("/api/login", json={"password": f"wrong{i}"})).status_code for i in range(6)]
        assert statuses == [401] * 5 + [429]
        r = await client.post("/api/login", json={"password": PASSWORD})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0  # even the right one waits
        r = await client.post("/api/login", json={"password": 12})
        assert r.status_code == 429


async def test_pause_reaches_the_printer_and_the_reply_is_returned(box: Box) -> None:
    async with httpx.AsyncClient(base_url=box.base, timeout=20) as client:
        csrf = await setup_and_login(client)
        await online(client)
        box.sim.printer.start_print("gear", layers=50, minutes=120)
        with trio.fail_after(10):
            while (await client.get("/api/printers/garage")).json()["state"]["gcode_state"] != "RUNNING":
                await trio.sleep(0.05)
        r = await client.post("/api/printers/garage/commands", json={"command": "pause"}, headers={CSRF_HEADER: csrf})
        assert r.status_code == 200, r.text
        assert r.json()["result"] == "success" and r.json()["sequence_id"]
        assert box.sim.printer.gcode_state == "PAUSE"
        with trio.fail_after(5):
            while (await client.get("/api/printers/garage")).json()["state"]["gcode_state"] != "PAUSE":
                await trio.sleep(0.05)

        r = await client.post("/api/printers/garage/commands", json={"command": "jump"}, headers={CSRF_HEADER: csrf})
        assert r.status_code == 400 and "unknown" in r.json()["error"]
        r = await client.post(
            "/api/printers/garage/commands", json={"command": "speed", "level": 9}, headers={CSRF_HEADER: csrf}
        )
        assert r.status_code == 400 and r.json()["error"].startswith("level:")
        r = await client.post("/api/printers/nope/commands", json={"command": "pause"}, headers={CSRF_HEADER: csrf})
        assert r.status_code == 404

        assert box.running.controls is not None
        box.running.controls.timeout_s = 0.5
        box.sim.printer.go_silent(30)
        r = await client.post("/api/printers/garage/commands", json={"command": "resume"}, headers={CSRF_HEADER: csrf})
        assert r.status_code == 504 and "did not answer" in r.json()["error"]


async def test_commands_are_refused_with_an_explanation_when_controls_are_unavailable(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        box = await start_box(nursery, tmp_path, signed=True)
        async with httpx.AsyncClient(base_url=box.base) as client:
            csrf = await setup_and_login(client)
            with trio.fail_after(10):
                while (await client.get("/api/printers/garage")).json()["controls_available"] is not False:
                    await trio.sleep(0.05)
            r = await client.post(
                "/api/printers/garage/commands", json={"command": "pause"}, headers={CSRF_HEADER: csrf}
            )
            assert r.status_code == 409 and "Developer mode" in r.json()["error"]
        nursery.cancel_scope.cancel()


def test_sessions_expire_and_are_bounded() -> None:
    now = [1000.0]
    sessions = Sessions(lifetime_s=60, clock=lambda: now[0], limit=3)
    first = sessions.create()
    assert sessions.get(first.token) is first
    now[0] += 61
    assert sessions.get(first.token) is None
    made = [sessions.create() for _ in range(5)]
    assert sum(sessions.get(s.token) is not None for s in made) == 3


def test_limiter_window_slides() -> None:
    now = [0.0]
    limiter = LoginLimiter(attempts=2, window_s=10, clock=lambda: now[0])
    limiter.failed("a")
    limiter.failed("a")
    assert limiter.retry_after("a") == 10 and limiter.retry_after("b") == 0
    now[0] = 10.5
    assert limiter.retry_after("a") == 0


def test_set_password_command_writes_a_hash_and_keeps_comments(tmp_path: Path) -> None:
    path = tmp_path / "bambupi.toml"
    path.write_text('# hello\n[web]\nlisten = "127.0.0.1:8080"  # port\n')
    done = subprocess.run(
        [sys.executable, "-m", "bambupi", "set-password", "-c", str(path)],
        input=PASSWORD + "\n", capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    text = path.read_text()
    assert text.startswith("# hello\n") and "# port" in text
    config, _ = load_config(path)
    assert config.web.admin_password_hash is not None
    assert verify_password(PASSWORD, config.web.admin_password_hash.reveal())

    short = subprocess.run(
        [sys.executable, "-m", "bambupi", "set-password", "-c", str(path)], input="short\n", capture_output=True,
        text=True,
    )
    assert short.returncode == 1 and "at least 8" in short.stderr
    assert load_config(path)[0].web.admin_password_hash == config.web.admin_password_hash


async def test_camera_behind_the_login_when_configured(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        box = await start_box(nursery, tmp_path, camera_login=True)
        async with httpx.AsyncClient(base_url=box.base) as anon:
            for path in ("/api/printers/garage/camera", "/api/printers/garage/snapshot.jpg",
                         "/api/printers/garage/snapshots"):
                r = await anon.get(path)
                assert r.status_code == 401 and r.json()["status"] == 401, path
            assert (await anon.post("/api/printers/garage/snapshots")).status_code == 401
        async with httpx.AsyncClient(base_url=box.base) as owner:
            await setup_and_login(owner)
            r = await owner.get("/api/printers/garage/snapshots")
            assert r.status_code == 200 and r.json()["snapshots"] == []
            r = await owner.post("/api/printers/garage/snapshots")
            assert r.status_code == 403  # taking one changes the box: the CSRF token is needed
        nursery.cancel_scope.cancel()


async def test_taking_a_snapshot_needs_the_owner_even_when_watching_is_open(box: Box) -> None:
    async with httpx.AsyncClient(base_url=box.base) as anon:
        assert (await anon.post("/api/printers/garage/snapshots")).status_code == 401
        assert (await anon.get("/api/printers/garage/snapshots")).status_code == 200
