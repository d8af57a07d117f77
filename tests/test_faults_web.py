"""Attacks on the front door of a running box (issue 14): the real service from a real config file, the simulated
printer and camera over TLS, real sockets on loopback.

Worker threads serve the API, so these tests use the real clock. They wait for states (a count of answers, a
message on systemd's socket), never for a speed: every time limit here only bounds a hang.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trio
import trio_websocket

from bambupi.config import load_config, parse_config
from bambupi.service import Running, Service
from bambupi.sim.simulator import Simulator
from bambupi.web.auth import cross_site
from tests.browser import chromium, require_chromium

pytestmark = pytest.mark.timeout(120)

HANG_S = 30  # a limit only a hang reaches, even with the CPU busy elsewhere
SERIAL = "01P00A000000321"
CODE = "27182818"
CONFIG = """\
[web]
listen = "127.0.0.1:0"
read_timeout_s = 90   # the half-open connections below are held by the box, not cut off, while the test looks
{web_extra}

[[printer]]
id = "garage"
model = "P1S"
host = "127.0.0.1"
serial = "{serial}"
access_code = "{code}"
mqtt_port = {mqtt_port}
camera_port = {camera_port}
reconnect_max_s = 0.5

[panel]
oled = "none"
gpio = "none"

[storage]
path = "{folder}/bambupi.sqlite3"
"""


@dataclass
class Box:
    sim: Simulator
    running: Running

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.running.port}"


@asynccontextmanager
async def box(tmp_path: Path, web_extra: str = "") -> AsyncIterator[Box]:
    async with trio.open_nursery() as nursery:
        sim = Simulator("P1S", SERIAL, CODE, scenario="idle", time_scale=100, camera_port=0)
        await nursery.start(sim.run)
        path = tmp_path / "bambupi.toml"
        path.write_text(CONFIG.format(
            web_extra=web_extra, serial=SERIAL, code=CODE, mqtt_port=sim.mqtt_port, camera_port=sim.camera_port,
            folder=tmp_path,
        ))  # fmt: skip
        config, problems = load_config(path)
        assert not [p for p in problems if p.level == "error"], problems
        running: Running = await nursery.start(Service(config, storage_folder=tmp_path).run)
        yield Box(sim, running)
        nursery.cancel_scope.cancel()


async def online(client: httpx.AsyncClient) -> None:
    with trio.fail_after(HANG_S):
        while (await client.get("/api/printers/garage")).json()["connection"] != "online":
            await trio.sleep(0.05)


async def half_open(port: int, source: str, path: str = "/") -> trio.SocketStream:
    """A slowloris connection: half a request head, from ``source`` (any 127.x address is this machine)."""
    sock = trio.socket.socket()
    await sock.bind((source, 0))
    await sock.connect(("127.0.0.1", port))
    stream = trio.SocketStream(sock)
    await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".encode())
    return stream


async def answer(stream: trio.SocketStream) -> bytes:
    """Everything the box sends until it closes the connection."""
    data = bytearray()
    try:
        while chunk := await stream.receive_some(65536):
            data += chunk
    except trio.BrokenResourceError:
        pass
    return bytes(data)


# --- item 4: slowloris --------------------------------------------------------------------------------------------


async def test_slowloris_from_one_address_cannot_take_the_box_from_anyone_else(tmp_path: Path) -> None:
    async with box(tmp_path) as b:  # the default limits: 200 connections, 32 per client address
        ended: list[bytes] = []  # what the box answered on each connection it closed (b"": closed at once)
        held: list[trio.SocketStream] = []
        async with trio.open_nursery() as nursery:

            async def attack() -> None:
                stream = await half_open(b.running.port, "127.0.0.2")
                held.append(stream)
                ended.append(await answer(stream))

            for _ in range(250):
                nursery.start_soon(attack)
            with trio.move_on_after(HANG_S):  # the box ends every connection beyond the attacker's share at once
                while len(held) < 250 or len(ended) < 250 - 32:
                    await trio.sleep(0.05)
            assert len(ended) == 250 - 32  # 32 are held open, waiting for the rest of their heads
            answered = [reply for reply in ended if reply]
            # Each is told why, except in a flood (more refusals in flight than connection slots): those just close.
            assert answered and all(reply.startswith(b"HTTP/1.1 503 ") for reply in answered)
            assert b"too many connections from your address" in answered[0]
            # Everyone else (another address) is served as if nothing happened: the health check and a phone.
            async with httpx.AsyncClient(base_url=b.base, timeout=HANG_S) as client:
                r = await client.get("/healthz")
                assert r.status_code == 200, r.text
                assert (await client.get("/")).status_code == 200
                assert (await client.get("/api/printers/garage")).status_code == 200
            nursery.cancel_scope.cancel()
        for stream in held:
            await stream.aclose()
        # The address's slots come back when its connections go: a whole request from it is served again.
        with trio.fail_after(HANG_S):
            while not (await request_from("127.0.0.2", b.running.port, "/healthz")).startswith(b"HTTP/1.1 200 "):
                await trio.sleep(0.05)


async def request_from(source: str, port: int, path: str) -> bytes:
    """A whole request from ``source``: a slowloris head, completed."""
    stream = await half_open(port, source, path)
    async with stream:
        await stream.send_all(b"1\r\nConnection: close\r\n\r\n")
        return await answer(stream)


def test_max_connections_per_client_is_checked() -> None:
    config, problems = parse_config('[web]\nmax_connections_per_client = 4\n', source="b.toml")
    assert config is not None and config.web.max_connections_per_client == 4
    assert not [p for p in problems if p.key.startswith("web")]
    for bad, says in (("0", "between 1 and"), ('"8"', "whole number")):
        config, problems = parse_config(f"[web]\nmax_connections_per_client = {bad}\n", source="b.toml")
        errors = [p for p in problems if p.level == "error"]
        assert [p.key for p in errors] == ["web.max_connections_per_client"], problems
        assert says in errors[0].message and errors[0].line == 2
    config, _ = parse_config("", source="b.toml")
    assert config is not None and config.web.max_connections_per_client == 32


def notify_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    return sock


async def test_the_watchdog_keeps_systemd_content_while_every_http_slot_is_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = Path(f"/tmp/bambupi-wd-{os.getpid()}.sock")  # AF_UNIX paths must stay short
    path.unlink(missing_ok=True)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # a keep-alive every 0.5 s, each check given 0.25 s
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    with notify_socket(path) as sock:
        # Many attackers (or a busy LAN) take every public slot; the service itself is fine.
        async with box(tmp_path, web_extra="max_connections = 8") as b:
            held = [await half_open(b.running.port, f"127.0.0.{2 + i}") for i in range(8)]
            async with httpx.AsyncClient(base_url=b.base, timeout=HANG_S) as client:
                with trio.fail_after(HANG_S):  # every slot is taken: the next connection is refused
                    while (r := await client.get("/healthz")).status_code != 503:
                        await trio.sleep(0.05)
                assert "too many connections" in r.json()["error"]
            while True:  # what was sent before the slots were full
                try:
                    sock.recv(4096)
                except BlockingIOError:
                    break
            messages: list[str] = []
            with trio.fail_after(HANG_S):
                while len(messages) < 3:
                    await trio.lowlevel.wait_readable(sock)
                    messages.append(sock.recv(4096).decode())
            assert messages == ["WATCHDOG=1"] * 3
            for stream in held:
                await stream.aclose()
    path.unlink()


# --- item 10: only the box's own names ----------------------------------------------------------------------------


async def test_a_rebound_name_reads_nothing_from_the_box(tmp_path: Path) -> None:
    # DNS rebinding: a page on attacker.example re-points its name at the box and reads with the visitor's browser;
    # the browser then sends Host: attacker.example. The box answers only to its own names and addresses.
    async with box(tmp_path) as b:
        port = b.running.port
        routes = (
            "/", "/healthz", "/api/printers", "/api/printers/garage", "/api/printers/garage/mqtt-log",
            "/api/printers/garage/snapshot.jpg", "/api/printers/garage/camera", "/api/printers/garage/snapshots",
            "/api/session", "/login", "/api/panel", "/ws",
        )
        async with httpx.AsyncClient(base_url=b.base, timeout=HANG_S) as client:
            await online(client)
            for host in (f"attacker.example:{port}", "attacker.example", f"bambupi.attacker.example:{port}"):
                for route in routes:
                    r = await client.get(route, headers={"Host": host})
                    assert r.status_code == 421, (host, route, r.status_code)
                    assert r.json()["status"] == 421 and "open the box by its address" in r.json()["error"]
                    assert r.headers["connection"] == "close"
            # The browser's own WebSocket upgrade, with the rebound name.
            upgrade = (
                f"GET /ws HTTP/1.1\r\nHost: attacker.example:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Origin: http://attacker.example:{port}\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            )
            async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
                await stream.send_all(upgrade.encode())
                with trio.fail_after(HANG_S):
                    reply = await answer(stream)
            assert reply.startswith(b"HTTP/1.1 421 ") and b"101" not in reply
            # By its address, as localhost, by its host name and its mDNS name, everything answers as before.
            own = (f"127.0.0.1:{port}", f"localhost:{port}", f"{socket.gethostname()}:{port}",
                   f"{socket.gethostname()}.local:{port}", "bambupi.local", f"[::1]:{port}")  # fmt: skip
            for host in own:
                r = await client.get("/api/printers/garage", headers={"Host": host})
                assert r.status_code == 200 and r.json()["id"] == "garage", host
            r = await client.get("/api/printers/garage/snapshot.jpg", headers={"Host": f"localhost:{port}"})
            assert r.status_code == 200 and r.content.startswith(b"\xff\xd8")
            async with trio_websocket.open_websocket("127.0.0.1", port, "/ws", use_ssl=False) as ws:
                assert json.loads(await ws.get_message())["type"] == "snapshot"


async def test_a_browser_on_a_rebound_name_gets_nothing_from_the_box(tmp_path: Path) -> None:
    # The attack as a browser makes it: attacker.example now resolves to the box (Chromium's resolver is told so),
    # and the attacker's script runs in a page of that origin, reading the box with same-origin requests.
    require_chromium()
    rebound = ["--host-resolver-rules=MAP attacker.example 127.0.0.1"]
    async with box(tmp_path) as b, chromium(tmp_path / "profile", rebound) as browser:
        port = b.running.port
        async with httpx.AsyncClient(base_url=b.base, timeout=HANG_S) as client:
            await online(client)
        page = await browser.new_page()
        websocket = (
            "new Promise(done => { const ws = new WebSocket(`ws://${location.host}/ws`);"
            " ws.onmessage = m => { done(JSON.parse(m.data).type); ws.close(); };"
            " ws.onerror = () => done('refused'); })"
        )
        statuses = (
            "Promise.all(['/api/printers/garage', '/api/printers/garage/mqtt-log', '/api/printers/garage/snapshot.jpg',"
            " '/healthz'].map(path => fetch(path).then(r => r.status)))"
        )
        await page.navigate(f"http://attacker.example:{port}/")
        assert "open the box by its address" in await page.evaluate("document.body.innerText")
        assert await page.evaluate(statuses) == [421] * 4
        assert await page.evaluate(websocket) == "refused"
        # The same browser by the box's address: everything is there (so the refusals above were the name's).
        await page.navigate(f"http://127.0.0.1:{port}/")
        assert await page.evaluate(statuses) == [200] * 4
        assert await page.evaluate(websocket) == "snapshot"


# --- item 17: a snapshot name that is no time ---------------------------------------------------------------------


async def test_a_snapshot_name_with_an_impossible_time_is_a_clean_404(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with box(tmp_path) as b, httpx.AsyncClient(base_url=b.base, timeout=HANG_S) as client:
        for name in ("99999999T999999.000Z-manual.jpg", "20261399T000000.000Z-manual.jpg",
                     "20260230T250000.000Z-hms.jpg"):  # fmt: skip
            r = await client.get(f"/api/printers/garage/snapshots/{name}")
            assert r.status_code == 404, r.text
            assert r.json() == {"error": f"no snapshot {name!r}", "status": 404}
        assert (await client.get("/api/printers/garage/snapshots")).json()["snapshots"] == []
    assert "Traceback" not in caplog.text and "HTTP connection failed" not in caplog.text


# --- item 18: request smuggling and the Origin's scheme -----------------------------------------------------------


async def test_a_request_with_both_content_length_and_transfer_encoding_is_refused_and_closed(
    tmp_path: Path,
) -> None:
    async with box(tmp_path) as b:
        smuggled = (
            b"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 30\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"0\r\n\r\nGET /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        async with await trio.open_tcp_stream("127.0.0.1", b.running.port) as stream:
            await stream.send_all(smuggled)
            with trio.fail_after(HANG_S):
                reply = await answer(stream)  # the box closes the connection: nothing after the head is a request
        assert reply.startswith(b"HTTP/1.1 400 ")
        assert reply.count(b"HTTP/1.1") == 1
        assert b"both Content-Length and Transfer-Encoding" in reply


def test_an_origin_with_another_scheme_is_another_site() -> None:
    assert cross_site("https://box:8080", "box:8080")
    assert cross_site("ws://box:8080", "box:8080")
    assert not cross_site("http://box:8080", "box:8080")
    assert not cross_site(None, "box:8080")


async def test_a_page_served_over_https_cannot_log_in(tmp_path: Path) -> None:
    async with box(tmp_path) as b, httpx.AsyncClient(base_url=b.base, timeout=HANG_S) as client:
        host = f"127.0.0.1:{b.running.port}"
        r = await client.post("/api/login", json={"password": "x"}, headers={"Origin": f"https://{host}"})
        assert r.status_code == 403 and "cross-site" in r.json()["error"]
        r = await client.post("/api/login", json={"password": "x"}, headers={"Origin": f"http://{host}"})
        assert r.status_code == 409  # same site: it got as far as "no password yet"
