"""Real local HTTP servers speaking Shelly Gen1, Shelly Gen2 (RPC, digest auth) and Home Assistant's REST API.

Each answers on 127.0.0.1 with a port of its own and records the requests it got, so a test sees exactly what a
driver sent. Tasmota is served by the simulator's own plug (bambupi/sim/plug.py).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trio

Handler = Callable[["Request"], tuple[int, dict[str, str], bytes]]


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.target).query).items()}


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    return status, headers or {}, json.dumps(body).encode()


@dataclass
class FakePlugServer:
    """A tiny HTTP/1.1 server (one request per connection); ``handler`` is the plug's API."""

    handler: Handler
    port: int = 0
    requests: list[Request] = field(default_factory=list)
    fail_with: int | None = None
    malformed: bool = False
    delay_s: float = 0.0
    cancel: trio.CancelScope = field(default_factory=trio.CancelScope)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def unplug(self) -> None:
        self.cancel.cancel()

    async def run(self, *, task_status: trio.TaskStatus[FakePlugServer] = trio.TASK_STATUS_IGNORED) -> None:
        with self.cancel:
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            self.port = listeners[0].socket.getsockname()[1]
            task_status.started(self)
            await trio.serve_listeners(self._serve, listeners)

    async def _serve(self, stream: trio.SocketStream) -> None:
        async with stream:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
            length = int(headers.get("content-length", "0"))
            while len(body) < length:
                body += await stream.receive_some(4096)
            request = Request(method, target, headers, body)
            self.requests.append(request)
            if self.delay_s:
                await trio.sleep(self.delay_s)
            if self.fail_with is not None:
                status, extra, payload = self.fail_with, {}, b'{"error": "internal"}'
            elif self.malformed:
                status, extra, payload = 200, {}, b'{"relays": [tru'
            else:
                status, extra, payload = self.handler(request)
            head_out = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
            head_out += "".join(f"{k}: {v}\r\n" for k, v in extra.items()) + "Connection: close\r\n\r\n"
            with contextlib.suppress(trio.BrokenResourceError):  # the client gave up (a timeout test)
                await stream.send_all(head_out.encode() + payload)


@dataclass
class ShellyGen1:
    """``/status`` and ``/relay/0``; HTTP basic auth when ``password`` is set."""

    password: str | None = None
    on: bool = True
    watts: float = 123.4
    total_wmin: int = 600_000  # 10 kWh in watt-minutes

    def __call__(self, r: Request) -> tuple[int, dict[str, str], bytes]:
        if self.password is not None:
            expected = "Basic " + base64.b64encode(f"admin:{self.password}".encode()).decode()
            if r.headers.get("authorization") != expected:
                return _json({}, 401, {"WWW-Authenticate": 'Basic realm="shelly"'})
        if r.path == "/relay/0":
            self.on = r.query.get("turn") == "on"
            return _json({"ison": self.on, "has_timer": False})
        if r.path == "/status":
            return _json({
                "relays": [{"ison": self.on, "has_timer": False}],
                "meters": [{"power": self.watts if self.on else 0.0, "is_valid": True, "total": self.total_wmin}],
            })
        return _json({}, 404)


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class ShellyGen2:
    """``/rpc/Switch.GetStatus`` and ``/rpc/Switch.Set``; digest auth (SHA-256, user admin) when ``password`` is set,
    as Shelly Gen2+ devices do."""

    password: str | None = None
    on: bool = False
    watts: float = 87.5
    total_wh: float = 4321.0
    realm: str = "shellyplusplugs-abc123"
    nonces: set[str] = field(default_factory=set)

    def _authorised(self, r: Request) -> bool:
        header = r.headers.get("authorization", "")
        if not header.startswith("Digest "):
            return False
        fields = dict(re.findall(r'(\w+)="?([^",]*)"?', header[7:]))
        if fields.get("nonce") not in self.nonces or fields.get("username") != "admin":
            return False
        ha1 = _h(f"admin:{self.realm}:{self.password}")
        ha2 = _h(f"{r.method}:{fields.get('uri')}")
        expected = _h(f"{ha1}:{fields['nonce']}:{fields.get('nc')}:{fields.get('cnonce')}:{fields.get('qop')}:{ha2}")
        return fields.get("response") == expected and fields.get("uri") == r.target

    def __call__(self, r: Request) -> tuple[int, dict[str, str], bytes]:
        if self.password is not None and not self._authorised(r):
            nonce = secrets.token_hex(8)
            self.nonces.add(nonce)
            challenge = f'Digest qop="auth", realm="{self.realm}", nonce="{nonce}", algorithm=SHA-256'
            return _json({"code": 401}, 401, {"WWW-Authenticate": challenge})
        if r.path == "/rpc/Switch.GetStatus":
            return _json({
                "id": 0, "source": "http", "output": self.on, "apower": self.watts if self.on else 0.0,
                "voltage": 231.2, "aenergy": {"total": self.total_wh, "by_minute": [0, 0, 0]},
            })
        if r.path == "/rpc/Switch.Set":
            was_on, self.on = self.on, r.query.get("on") == "true"
            return _json({"was_on": was_on})
        return _json({"code": 404}, 404)


@dataclass
class HomeAssistant:
    """``/api/states/<entity>`` and ``/api/services/<domain>/turn_on|turn_off`` behind a bearer token."""

    token: str
    on: bool = True
    kilowatts: float = 0.25
    service_calls: list[tuple[str, Any]] = field(default_factory=list)

    def __call__(self, r: Request) -> tuple[int, dict[str, str], bytes]:
        if r.headers.get("authorization") != f"Bearer {self.token}":
            return _json({"message": "Unauthorized"}, 401)
        if r.path == "/api/states/switch.printer":
            return _json({"entity_id": "switch.printer", "state": "on" if self.on else "off", "attributes": {}})
        if r.path == "/api/states/sensor.printer_power":
            return _json({"state": str(self.kilowatts), "attributes": {"unit_of_measurement": "kW"}})
        if r.method == "POST" and r.path in ("/api/services/switch/turn_on", "/api/services/switch/turn_off"):
            self.on = r.path.endswith("turn_on")
            self.service_calls.append((r.path, json.loads(r.body)))
            return _json([])
        return _json({"message": "Entity not found."}, 404)
