"""The printer facade as a component: the box speaks the printer's MQTT and camera protocols to other apps.

See the package's docstring (bambupi.facade) and docs/facade.md. Every change of ``[facade]`` (or of the printers
it serves) is applied live: the servers close and open again with the new settings, and connected apps reconnect.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

import trio

from bambupi.component import Applied, Web
from bambupi.config import Config, FacadeConfig, PrinterConfig
from bambupi.facade.camera import CameraEndpoint, CameraFeed, FrameSource
from bambupi.facade.certificate import ensure_certificate, server_context
from bambupi.facade.requests import MAX_REQUEST_BYTES, Request, answer, decide
from bambupi.mqtt_server import ClientSession, MqttServer, Publish, encode_publish
from bambupi.printer.commands import CommandError, Outcome
from bambupi.printer.link import NotConnected
from bambupi.printer.raw_report import full_report
from bambupi.printer_models import model_info
from bambupi.state_hub import StateHub

log = logging.getLogger("bambupi.facade")

VERSION_ASK_INTERVAL_S: Final = 600.0  # the printer is asked get_version at most this often, until it answered once
# Messages waiting for one app: a printer sends one or two a second, so an app this far behind has stopped reading;
# it is dropped, and its queue (full X1 reports are tens of KB) never holds more than a few MB of the Pi's memory.
OUTBOX_SIZE: Final = 64
MAX_COMMANDS_AT_ONCE: Final = 4  # apps' commands waiting for the printer's reply; more are answered "busy"
REFUSALS_LOGGED: Final = 256  # (app, command) pairs whose refusal was logged once


class FacadePortError(Exception):
    """A port the facade cannot listen on, in words for /healthz and the settings page: which port, which key."""


async def _listen(
    nursery: trio.Nursery, serve: Callable[..., Awaitable[None]], host: str, port: int, *, what: str, key: str
) -> int:
    """``serve`` started on ``host:port``; the port it bound. A port that cannot be had says which one and what to
    change (the bare OSError says only "Address already in use": an owner cannot tell the MQTT port from a camera's,
    and a mosquitto already on 8883 on the same Pi is a likely neighbour)."""
    try:
        bound: int = await nursery.start(serve, host, port)
    except OverflowError:
        raise FacadePortError(f"{what}: port {port} is beyond 65535 (lower [facade] {key})") from None
    except OSError as exc:
        said = exc.strerror or type(exc).__name__
        if exc.errno == errno.EADDRINUSE:
            hint = f"another program listens there: stop it or set [facade] {key} to a free port"
        else:
            hint = f"check [facade] host and {key}"
        raise FacadePortError(f"{what}: cannot listen on {host}:{port} ({said}); {hint}") from None
    return bound


class RequestLink(Protocol):
    """A printer's one link (bambupi.printer.link.PrinterLink), for the one request the facade makes itself."""

    def send(self, body: dict[str, Any]) -> str: ...


class CommandSender(Protocol):
    """The box's one command path (bambupi.printer.commands.Controls)."""

    async def send(self, printer_id: str, name: str, params: Mapping[str, Any], *, origin: str = ...) -> Outcome: ...


@dataclass
class _Serving:
    """What runs while the facade is on: its MQTT server, and a camera endpoint per served printer with one."""

    config: FacadeConfig
    mqtt: MqttServer
    mqtt_port: int
    printers: dict[str, str]  # serial -> printer id
    serials: dict[str, str]  # printer id -> serial
    nursery: trio.Nursery
    cameras: dict[str, CameraEndpoint] = field(default_factory=dict)
    camera_ports: dict[str, int] = field(default_factory=dict)
    commands: trio.CapacityLimiter = field(default_factory=lambda: trio.CapacityLimiter(MAX_COMMANDS_AT_ONCE))


class FacadeComponent:
    name = "facade"
    sections = ("facade", "printer")

    def __init__(
        self,
        hub: StateHub,
        config: FacadeConfig,
        printers: Sequence[PrinterConfig],
        *,
        controls: CommandSender,
        links: Mapping[str, RequestLink],
        frames: FrameSource,
        folder: Path,
    ) -> None:
        self._hub = hub
        self._config = config
        self._printers = tuple(printers)
        self._controls = controls
        self._links = links
        self._version_asked: dict[str, float] = {}  # printer id -> trio time of the last get_version the box sent
        self._frames = frames
        self._folder = folder  # the box's data folder: the facade's certificate lives here
        self._serving: _Serving | None = None
        self._restart = trio.Event()
        self._refusals_logged: set[tuple[str, str]] = set()
        hub.on_report(self._on_report)  # forwards only while serving

    # -- the component ---------------------------------------------------------------------------------------------
    def add_routes(self, web: Web) -> None:
        pass  # no page: its state is in /healthz (health())

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        started = False
        while True:
            self._restart = trio.Event()
            try:
                async with trio.open_nursery() as nursery:
                    if self._config.enabled:
                        await self._start(nursery, self._config, self._printers)
                    if not started:
                        started = True
                        task_status.started()
                    await self._restart.wait()
                    nursery.cancel_scope.cancel()
            finally:
                self._serving = None

    async def apply(self, old: Config, new: Config) -> Applied:
        before = (self._config, self._served(self._config, self._printers))
        self._config, self._printers = new.facade, new.printers
        if before == (self._config, self._served(self._config, self._printers)):
            return []
        self._restart.set()
        if not new.facade.enabled:
            return ["the printer facade is off"] if old.facade.enabled else []
        if not old.facade.enabled:
            return ["the printer facade is on"]
        return ["the printer facade restarted with its new settings (apps reconnect)"]

    def health(self) -> dict[str, Any]:
        """``/healthz``'s ``facade_endpoint`` entry while the facade is on: its ports and who is connected."""
        serving = self._serving
        if serving is None:
            return {}
        return {"facade_endpoint": {
            "ok": True,
            "mqtt_port": serving.mqtt_port,
            "mqtt_clients": serving.mqtt.connected_clients,
            "refused_logins": serving.mqtt.refused + sum(c.refused for c in serving.cameras.values()),
            "allow_control": serving.config.allow_control,
            "printers": {
                pid: {"serial": serial, "camera_port": serving.camera_ports.get(pid),
                      "camera_clients": c.clients if (c := serving.cameras.get(pid)) else 0}
                for pid, serial in serving.serials.items()
            },
        }}

    @property
    def mqtt_port(self) -> int | None:
        return None if self._serving is None else self._serving.mqtt_port

    def camera_port(self, printer_id: str) -> int | None:
        return None if self._serving is None else self._serving.camera_ports.get(printer_id)

    # -- serving ---------------------------------------------------------------------------------------------------
    @staticmethod
    def _served(config: FacadeConfig, printers: Sequence[PrinterConfig]) -> list[PrinterConfig]:
        """The printers the facade serves, in camera-port order."""
        if not config.printers:
            return list(printers)
        by_id = {p.id: p for p in printers}
        return [by_id[pid] for pid in config.printers if pid in by_id]

    async def _start(self, nursery: trio.Nursery, config: FacadeConfig, printers: Sequence[PrinterConfig]) -> None:
        assert config.access_code is not None  # the config refuses an enabled facade without its code
        code = config.access_code.reveal().encode("ascii")
        cert, key = await ensure_certificate(self._folder)
        context = await trio.to_thread.run_sync(server_context, cert, key)
        served = self._served(config, printers)
        mqtt = MqttServer(
            "facade", code, context, may_subscribe=self._may_subscribe, on_publish=self._on_publish,
            max_clients=config.max_clients, outbox_size=OUTBOX_SIZE,
            max_packet_size=MAX_REQUEST_BYTES + 1024,  # an app sends small requests: a bigger packet ends its link
        )
        serving = _Serving(
            config, mqtt, 0, {p.serial: p.id for p in served}, {p.id: p.serial for p in served}, nursery
        )
        serving.mqtt_port = await _listen(nursery, mqtt.serve, config.host, config.mqtt_port, what="MQTT",
                                          key="mqtt_port")
        for index, printer in enumerate(served):
            info = model_info(printer.model)
            if not self._frames.has(printer.id):  # a printer without a camera
                continue
            feed = CameraFeed(
                self._frames, printer.id, rescale=info.camera_kind == "rtsps", fps=config.camera_fps,
                size=(config.camera_width, config.camera_height),
            )
            endpoint = CameraEndpoint(
                feed, code, context, off=functools.partial(self._camera_off, printer.id),
                max_clients=config.max_clients,
            )
            nursery.start_soon(feed.run)
            port = config.camera_port + index if config.camera_port else 0  # 0: each its own free port (tests)
            serving.camera_ports[printer.id] = await _listen(
                nursery, endpoint.serve, config.host, port, what=f"{printer.id}'s camera",
                key="camera_port" if index == 0 else f"camera_port (+{index} for {printer.id})",
            )
            serving.cameras[printer.id] = endpoint
        self._serving = serving
        nursery.start_soon(self._follow_connections, serving)
        cameras = ", ".join(f"{pid} camera on {port}" for pid, port in serving.camera_ports.items())
        log.info(
            "facade: serving %s on %s: MQTT on %d%s; control %s", ", ".join(serving.serials) or "no printer",
            config.host, serving.mqtt_port, f", {cameras}" if cameras else "",
            "allowed" if config.allow_control else "refused",
        )

    async def _follow_connections(self, serving: _Serving) -> None:
        """A printer that goes offline: the apps watching it lose their connection, as they would with the printer
        itself, instead of staying connected to a silence that looks like a printer with nothing to say."""
        seen: dict[str, str] = {}
        async with self._hub.subscribe() as updates:
            while True:
                snapshot = await updates.next()
                for printer_id, serial in serving.serials.items():
                    printer = snapshot.get(printer_id)
                    if printer is None:
                        continue
                    connection = printer["connection"]
                    went = connection == "offline" and seen.get(printer_id, "offline") != "offline"
                    seen[printer_id] = connection
                    dropped = serving.mqtt.drop_subscribers(f"device/{serial}/report") if went else 0
                    if dropped:
                        log.info("facade: %s is offline; closed the %d app connection(s) watching it", printer_id,
                                 dropped)

    def _camera_off(self, printer_id: str) -> str | None:
        if not self._frames.has(printer_id):
            return "the box has no camera for this printer"
        status = self._frames.status(printer_id)
        if status["status"] in ("disabled", "off"):
            return status["reason"] or "the camera is off"
        return None

    def _may_subscribe(self, topic: str) -> bool:
        serving = self._serving
        return serving is not None and _serial_of(topic, "report") in serving.printers

    # -- reports out ---------------------------------------------------------------------------------------------
    def _on_report(self, printer_id: str, payload: bytes) -> None:
        serving = self._serving
        if serving is None:
            return
        serial = serving.serials.get(printer_id)
        if serial is not None:
            serving.mqtt.publish(f"device/{serial}/report", [payload])

    # -- requests in ---------------------------------------------------------------------------------------------
    def _on_publish(self, session: ClientSession, publish: Publish) -> None:
        serving = self._serving
        serial = _serial_of(publish.topic, "request")
        if serving is None or serial is None or serial not in serving.printers:
            return  # a printer takes only its own request topic; anything else goes nowhere
        printer_id = serving.printers[serial]
        for request in decide(publish.payload, allow_control=serving.config.allow_control):
            self._answer(serving, session, serial, printer_id, request)

    def _answer(
        self, serving: _Serving, session: ClientSession, serial: str, printer_id: str, request: Request
    ) -> None:
        if request.kind == "ignore":
            log.debug("facade: ignored a request from %r: %s", session.client_id, request.reason)
        elif request.kind == "pushall":
            merged = self._hub.raw_report(printer_id)
            # Before the printer's first report there is nothing to say (its first report follows); while it is
            # offline the merge is old news, and an offline printer answers nothing.
            if merged and self._hub.printer(printer_id)["connection"] in ("online", "stale"):
                _reply(session, serial, full_report(merged, request.sequence_id))
        elif request.kind == "get_version":
            version = self._hub.version_reply(printer_id)
            if version is not None:
                _reply(session, serial, {"info": {**version, "sequence_id": request.sequence_id}})
            else:
                self._ask_version(printer_id)
        elif request.kind == "refuse":
            self._log_refusal(session, printer_id, request)
            _reply(session, serial, answer(request, result="failed", reason=request.reason))
        else:
            serving.nursery.start_soon(self._command, serving, session, serial, printer_id, request)

    async def _command(
        self, serving: _Serving, session: ClientSession, serial: str, printer_id: str, request: Request
    ) -> None:
        try:
            serving.commands.acquire_nowait()
        except trio.WouldBlock:
            _reply(session, serial, answer(request, result="failed", reason="bambupi facade: busy, try again"))
            return
        try:
            outcome = await self._controls.send(printer_id, request.name, request.params or {}, origin="the facade")
            _reply(session, serial, answer(request, result=outcome.result, reason=outcome.reason))
        except CommandError as exc:
            _reply(session, serial, answer(request, result="failed", reason=exc.message))
        except Exception as exc:  # the box's bug, not the app's: said once per command, the facade goes on
            log.error("facade: %s: %s from app %r failed in the box (%s)", printer_id, request.command,
                      session.client_id, type(exc).__name__, exc_info=exc)
            _reply(session, serial, answer(request, result="failed", reason="bambupi facade: the box failed"))
        finally:
            serving.commands.release()

    def _ask_version(self, printer_id: str) -> None:
        """Ask the printer for its versions (cheap, unlike pushall) once: its answer reaches every app on the report
        topic, and the box answers every later get_version itself (ha-bambulab reads the model and firmware there)."""
        now = trio.current_time()
        if now < self._version_asked.get(printer_id, -math.inf) + VERSION_ASK_INTERVAL_S:
            return
        link = self._links.get(printer_id)
        if link is None:
            return
        try:
            link.send({"info": {"command": "get_version"}})
        except NotConnected:
            return  # not asked: the next app's get_version tries again
        self._version_asked[printer_id] = now
        log.info("facade: %s: asked the printer for its versions (an app wants them)", printer_id)

    def _log_refusal(self, session: ClientSession, printer_id: str, request: Request) -> None:
        key = (session.client_id, request.command)
        if key in self._refusals_logged or len(self._refusals_logged) >= REFUSALS_LOGGED:
            return
        self._refusals_logged.add(key)
        log.info("facade: %s: refused %s from app %r (%s)", printer_id, request.command, session.client_id,
                 request.reason)


def _serial_of(topic: str, kind: str) -> str | None:
    """``S`` for ``device/S/<kind>``, else None."""
    parts = topic.split("/")
    if len(parts) == 3 and parts[0] == "device" and parts[2] == kind and parts[1]:
        return parts[1]
    return None


def _reply(session: ClientSession, serial: str, message: Mapping[str, Any]) -> None:
    """A message to this app alone, on the report topic as a printer answers (only if it subscribed to it)."""
    topic = f"device/{serial}/report"
    if topic in session.subscriptions:
        session.send(encode_publish(topic, json.dumps(message, separators=(",", ":")).encode("utf-8")))
