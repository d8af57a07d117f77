"""A simulated smart plug speaking Tasmota's HTTP API, powering a :class:`SimulatedPrinter`.

``GET /cm?cmnd=Power``, ``Power On``, ``Power Off``, ``Status 8`` / ``Status 10`` (``StatusSNS.ENERGY`` with
``Power``, ``Total``, ``Today``), optional ``user``/``password`` query parameters like a Tasmota with a web
password. Its power follows the printer: electronics, the bed and nozzle heaters (full power while heating,
a share of it while holding a temperature) and the motors while printing. Switching it off makes the printer go
quiet on MQTT and ends a print in progress, as a power cut would; switching it on brings it back.

The test hooks (``fail_with``, ``malformed``, ``delay_s``, :meth:`unplug`) play a broken or vanished plug.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import trio

from bambupi.sim.printer import AMBIENT_C, SimulatedPrinter

log = logging.getLogger(__name__)

ELECTRONICS_W: Final = 9.0
BED_W: Final = 320.0
NOZZLE_W: Final = 48.0
MOTION_W: Final = 28.0
MAX_HEAD_BYTES: Final = 8192


def heater_watts(current: float, target: float, full: float) -> float:
    """Full power while far below target, a holding share (losses grow with the temperature) once there."""
    if target <= 0:
        return 0.0
    if current < target - 3.0:
        return full
    return full * min(1.0, 0.1 + (target - AMBIENT_C) / 400.0)


def printer_watts(printer: SimulatedPrinter) -> float:
    """What the printer draws now, from its simulated heaters and motion (pure in the printer's state)."""
    state = printer.state
    watts = ELECTRONICS_W + heater_watts(state.bed.current, state.bed.target, BED_W)
    watts += sum(heater_watts(n.current, n.target, NOZZLE_W) for n in state.nozzles)
    if state.gcode_state == "RUNNING":
        watts += MOTION_W
    elif state.gcode_state == "PREPARE":
        watts += MOTION_W / 2  # homing and probing move slowly
    return watts


class SimulatedPlug:
    def __init__(
        self,
        printer: SimulatedPrinter,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "admin",
        password: str | None = None,
        seed: int = 7,
    ) -> None:
        self.printer = printer
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.on = True
        self.total_wh = 1234.5  # a plug that has been in use a while
        self.commands: list[str] = []  # every cmnd received, in order (tests observe switching here)
        self.fail_with: int | None = None  # answer every request with this HTTP status
        self.malformed = False  # answer with a body that is not JSON
        self.delay_s = 0.0  # wait this long before answering (timeouts)
        self._rng = random.Random(seed)
        self._last_energy_at = time.monotonic()
        self._listeners: list[trio.SocketListener] = []
        self._cancel = trio.CancelScope()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def watts(self) -> float:
        if not self.on:
            return 0.0
        return printer_watts(self.printer) * (1.0 + self._rng.uniform(-0.02, 0.02))

    def switch(self, on: bool) -> None:
        self._account()
        self.on = on
        # A printer without power says nothing; with power back it talks again. A print does not survive the cut:
        # it ends (as a stop would, heaters off), and the box hears of it when the printer talks again.
        if on:
            self.printer.resume_talking()
        else:
            self.printer.go_silent()
            self.printer.stop()

    def unplug(self) -> None:
        """The plug vanishes from the network: the listening socket closes, connections are refused."""
        self._cancel.cancel()

    async def run(self, *, task_status: trio.TaskStatus[SimulatedPlug] = trio.TASK_STATUS_IGNORED) -> None:
        with self._cancel:
            self._listeners = await trio.open_tcp_listeners(self.port, host=self.host)
            self.port = self._listeners[0].socket.getsockname()[1]
            log.info("simulated Tasmota plug on %s", self.url)
            task_status.started(self)
            await trio.serve_listeners(self._serve, self._listeners)

    def _account(self) -> None:
        now = time.monotonic()
        self.total_wh += self.watts() * (now - self._last_energy_at) / 3600.0
        self._last_energy_at = now

    async def _serve(self, stream: trio.SocketStream) -> None:
        async with stream:
            head = b""
            with trio.move_on_after(10):
                while b"\r\n\r\n" not in head and len(head) < MAX_HEAD_BYTES:
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        return
                    head += chunk
            status, body = self._answer(head)
            if self.delay_s:
                await trio.sleep(self.delay_s)
            reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "Error")
            response = (
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            ).encode() + body
            try:
                await stream.send_all(response)
            except trio.BrokenResourceError:
                return

    def _answer(self, head: bytes) -> tuple[int, bytes]:
        try:
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        except ValueError:
            return 400, b'{"error": "bad request"}'
        if self.fail_with is not None:
            return self.fail_with, b"{}"
        if self.malformed:
            return 200, b"<html>Tasmota</html>"
        url = urlsplit(target)
        if method != "GET" or url.path != "/cm":
            return 404, b"{}"
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if self.password is not None and (query.get("user") != self.username or query.get("password") != self.password):
            return 200, json.dumps({"WARNING": "Need user=<username>&password=<password>"}).encode()
        command = " ".join(query.get("cmnd", "").split())
        self.commands.append(command)
        return 200, json.dumps(self._command(command.lower())).encode()

    def _command(self, command: str) -> dict[str, Any]:
        if command in ("power on", "power 1"):
            self.switch(True)
        elif command in ("power off", "power 0"):
            self.switch(False)
        elif command in ("status 8", "status 10"):
            self._account()
            watts = self.watts()
            return {
                "StatusSNS": {
                    "Time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "ENERGY": {
                        "TotalStartTime": "2024-01-01T00:00:00",
                        "Total": round(self.total_wh / 1000.0, 3),
                        "Yesterday": 0.0,
                        "Today": round(math.fmod(self.total_wh, 1000.0) / 1000.0, 3),
                        "Power": round(watts),
                        "ApparentPower": round(watts * 1.05),
                        "ReactivePower": round(watts * 0.3),
                        "Factor": 0.95,
                        "Voltage": 230,
                        "Current": round(watts / 230.0, 3),
                    },
                }
            }
        elif command != "power":
            return {"Command": "Unknown"}
        return {"POWER": "ON" if self.on else "OFF"}
