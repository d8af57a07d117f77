"""Login, CSRF, rate limit, first-visit setup, set-password, and printer commands — over real HTTP, against the
simulator over TLS."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from bambupi.config import load_config
from bambupi.config.file import set_password_hash
from bambupi.passwords import hash_password, verify_password
from bambupi.web.auth import CSRF_HEADER, LoginLimiter, Sessions, is_lan_address, names_this_box
from tests.support import CODE, PASSWORD, Box, online, setup_and_login, start_box


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Box]:
    async with trio.open_nursery() as nursery:
        yield await start_box(nursery, tmp_path)
        nursery.cancel_scope.cancel()


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
        assert info == {
            "logged_in": False, "csrf": None, "user": None, "role": None, "password_set": False, "setup_allowed": True,
        }

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
        with trio.fail_after(30):
            while (await client.get("/api/printers/garage")).json()["state"]["gcode_state"] != "RUNNING":
                await trio.sleep(0.05)
        r = await client.post("/api/printers/garage/commands", json={"command": "pause"}, headers={CSRF_HEADER: csrf})
        assert r.status_code == 200, r.text
        assert r.json()["result"] == "success" and r.json()["sequence_id"]
        assert box.sim.printer.gcode_state == "PAUSE"
        with trio.fail_after(30):
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
            with trio.fail_after(30):
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


async def test_parallel_wrong_passwords_try_no_more_than_the_limit(box: Box) -> None:
    # All at once, so that each is past the rate check before any has been told "wrong": the attempt must be
    # counted before the (slow, scrypt) check, or 20 parallel requests try 11 passwords.
    async with httpx.AsyncClient(base_url=box.base) as client:
        await setup_and_login(client)
    statuses: list[int] = []
    async with httpx.AsyncClient(base_url=box.base, timeout=60) as client:

        async def guess(i: int) -> None:
            statuses.append((await client.post("/api/login", json={"password": f"wrong{i}"})).status_code)

        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(guess, i)
    assert sorted(statuses) == [401] * 5 + [429] * 15


def test_limiter_window_slides() -> None:
    now = [0.0]
    limiter = LoginLimiter(attempts=2, window_s=10, clock=lambda: now[0])
    assert limiter.reserve("a") == 0 and limiter.reserve("a") == 0
    assert limiter.reserve("a") == 10 and limiter.retry_after("a") == 10 and limiter.retry_after("b") == 0
    now[0] = 10.5
    assert limiter.retry_after("a") == 0 and limiter.reserve("a") == 0
    limiter.succeeded("a")  # the owner's right password takes back the address's count
    assert limiter.reserve("a") == 0 and limiter.reserve("a") == 0


def test_limiter_has_a_ceiling_for_all_addresses_together() -> None:
    now = [0.0]
    limiter = LoginLimiter(attempts=5, window_s=60, ceiling=30, clock=lambda: now[0])
    for i in range(30):  # a scan from many addresses, one guess each
        now[0] = i
        assert limiter.reserve(f"10.0.{i}.1") == 0
    assert limiter.reserve("192.168.1.20") == 60 - 29  # until the oldest guess leaves the window
    assert limiter.retry_after("192.168.1.20") == 31
    now[0] = 60.0
    assert limiter.reserve("192.168.1.20") == 0  # the first guess left the window: room for one
    assert limiter.reserve("192.168.1.21") == 1
    # The table holds only what is in the window (no clearing at a size, which let a scan reset everyone's count).
    now[0] = 200.0
    assert limiter.reserve("10.0.0.1") == 0 and limiter.tracked() == 1


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


async def test_another_site_cannot_choose_the_first_password_or_try_passwords(box: Box) -> None:
    async with httpx.AsyncClient(base_url=box.base) as client:
        # What a page on any web site can send through the browser of someone on the LAN without a CORS preflight:
        # a "simple" POST (text/plain), with the browser's Origin.
        evil = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
        body = b'{"password": "chosen by evil.example"}'
        for origin in ("http://evil.example", "null", "http://["):
            r = await client.post("/api/setup", content=body, headers={**evil, "Origin": origin})
            assert r.status_code == 403 and "cross-site" in r.json()["error"], origin
        assert (await client.get("/api/session")).json()["password_set"] is False
        assert load_config(box.config_path)[0].web.admin_password_hash is None

        # The box's own page (same origin) sets it; then other sites cannot try passwords (or lock the owner out).
        own = {"Origin": box.base}
        r = await client.post("/api/setup", json={"password": PASSWORD}, headers=own)
        assert r.status_code == 200, r.text
    async with httpx.AsyncClient(base_url=box.base) as client:
        for _ in range(6):
            r = await client.post("/api/login", content=b'{"password": "guess"}', headers=evil)
            assert r.status_code == 403
        r = await client.post("/api/login", json={"password": PASSWORD}, headers={"Origin": box.base})
        assert r.status_code == 200  # the refused tries did not count against the owner's address


async def test_a_rebound_name_cannot_choose_the_first_password(box: Box) -> None:
    # DNS rebinding: evil.example re-pointed at the box; the browser then sends the page's own name as Host and
    # Origin, so both match and the visitor's LAN address passes. Only the name gives it away.
    port = box.base.rsplit(":", 1)[1]
    rebound = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    async with httpx.AsyncClient(base_url=box.base) as client:
        r = await client.post("/api/setup", json={"password": PASSWORD}, headers=rebound)
        assert r.status_code == 421 and "open the box by its address" in r.json()["error"]
        assert load_config(box.config_path)[0].web.admin_password_hash is None
        # By its mDNS name it works (the first visit of a box from the SD-card image is http://bambupi.local/).
        local = {"Host": f"bambupi.local:{port}", "Origin": f"http://bambupi.local:{port}"}
        r = await client.post("/api/setup", json={"password": PASSWORD}, headers=local)
        assert r.status_code == 200, r.text


def test_names_this_box() -> None:
    assert names_this_box("192.168.1.5:8080", "box") and names_this_box("[fe80::1]", "box")
    assert names_this_box("bambupi.local", "box") and names_this_box("BOX:80", "box")
    assert names_this_box("localhost:8080", "box")
    assert not names_this_box("evil.example", "box") and not names_this_box("box.evil.example", "box")
    assert not names_this_box(None, "box") and not names_this_box("[", "box")
    assert names_this_box("bambupi.lan:80", "box", listen_host="bambupi.lan")  # the name it was told to listen on
    assert names_this_box(f"{socket.gethostname()}:8080")  # the system's host name, looked up per request


async def test_two_first_visits_at_once_set_one_password(box: Box) -> None:
    results: dict[str, httpx.Response] = {}

    async def first_visit(password: str) -> None:
        async with httpx.AsyncClient(base_url=box.base, timeout=30) as client:
            results[password] = await client.post("/api/setup", json={"password": password})

    async with trio.open_nursery() as nursery:
        for i in range(4):
            nursery.start_soon(first_visit, f"{PASSWORD} {i}")
    statuses = sorted(r.status_code for r in results.values())
    assert statuses == [200, 409, 409, 409], [r.text for r in results.values()]
    (winner,) = [password for password, r in results.items() if r.status_code == 200]
    config, _ = load_config(box.config_path)
    assert config.web.admin_password_hash is not None
    assert verify_password(winner, config.web.admin_password_hash.reveal())  # the 200 was not overwritten later
    async with httpx.AsyncClient(base_url=box.base) as client:
        assert (await client.post("/api/login", json={"password": winner})).status_code == 200


async def test_a_password_set_with_the_command_while_running_is_not_replaced_by_a_visitor(box: Box) -> None:
    set_password_hash(box.config_path, hash_password(PASSWORD))  # `bambupi set-password` over SSH
    async with httpx.AsyncClient(base_url=box.base) as client:
        r = await client.post("/api/setup", json={"password": "a visitor's choice"})
        assert r.status_code == 409
        config, _ = load_config(box.config_path)
        assert config.web.admin_password_hash is not None
        assert verify_password(PASSWORD, config.web.admin_password_hash.reveal())
        assert (await client.get("/api/session")).json()["password_set"] is True
        assert (await client.post("/api/login", json={"password": PASSWORD})).status_code == 200


async def test_json_nested_too_deeply_is_a_400_not_a_500(box: Box, caplog: pytest.LogCaptureFixture) -> None:
    nested = b"[" * 200_000  # within the 1 MiB body limit; deeper than json's recursion limit
    async with httpx.AsyncClient(base_url=box.base) as client:
        r = await client.post("/api/setup", content=nested, headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"].startswith("password:")
        csrf = await setup_and_login(client)
        r = await client.post("/api/login", content=nested, headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"].startswith("password:")
        for path in ("/api/settings", "/api/printers/garage/commands", "/api/printers/garage/plug"):
            r = await client.post(path, content=nested, headers={"Content-Type": "application/json", CSRF_HEADER: csrf})
            assert r.status_code == 400, (path, r.text)
        assert (await client.get("/api/session")).json()["logged_in"] is True
    assert "RecursionError" not in caplog.text


@pytest.mark.parametrize(
    ("address", "lan"),
    [
        ("192.168.1.20", True), ("10.0.0.7", True), ("172.16.5.4", True), ("127.0.0.1", True), ("169.254.3.3", True),
        ("::1", True), ("fe80::1%eth0", True), ("fd12:3456::1", True), ("::ffff:192.168.1.20", True),
        ("8.8.8.8", False), ("100.64.1.1", False), ("::ffff:8.8.8.8", False), ("2a00:1450::1", False),
        # Python's is_private says True for these, but they are not the LAN: Teredo reaches the internet,
        # and the documentation ranges are no network at all.
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False), ("192.0.2.1", False), ("2001:db8::1", False),
        ("", False), ("not an address", False),
    ],
)
def test_only_lan_addresses_may_set_the_first_password(address: str, lan: bool) -> None:
    assert is_lan_address(address) is lan



def test_a_login_lives_on_the_monotonic_clock() -> None:
    # NTP's first step at boot moves the wall clock by years: a login's lifetime must not follow it.
    import time as time_module

    assert Sessions(lifetime_s=3600)._clock is time_module.monotonic
