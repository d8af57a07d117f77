"""PrinterLink: the one MQTT connection to one printer, paho-mqtt driven from trio; PrinterLinks: the running links,
one per configured printer, which settings changes start, stop and restart.

paho does the MQTT protocol; trio does the waiting (bambupi.mqtt_loop, shared with the home broker's bridge).
Only ``connect()`` (DNS, TCP, TLS handshake) blocks, so it runs in a worker thread, and the callbacks it fires
cross into trio in one place, :meth:`PahoLoop.to_trio`.

What the connection is called follows the reports, not the socket: a printer whose MQTT server accepts the
login but sends nothing (hung firmware, a half-powered board) is not online. The hub makes a printer
``online`` when a report arrives; the link calls it ``stale`` when reports stop (and reconnects), keeps it so
through reconnects that bring no report, and ``offline`` once none came for ``offline_after_s``
(:class:`Liveness`).
"""

from __future__ import annotations

import errno
import json
import logging
import random
import socket
import ssl
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
import trio
from paho.mqtt.enums import CallbackAPIVersion

from bambupi.config import PrinterConfig
from bambupi.mqtt_loop import PahoLoop
from bambupi.printer.sink import Connection, PrinterSink
from bambupi.printer.tls_pins import CertificateRefused, PinStore, TrustOnFirstUse, printer_tls_context

log = logging.getLogger("bambupi.link")

MQTT_USER = "bblp"
KEEPALIVE_S = 30
# CONNACK codes that mean "wrong credentials": 3.1.1 return codes 4/5 and their MQTT 5 reason codes.
AUTH_REFUSED_CODES = {4, 5, 134, 135}

REASON_AUTH = "auth refused: the printer rejected the access code (check it on the printer's screen)"


class LinkFailure(Exception):
    """Why a connection attempt or session ended, in words a user can act on (never holds a secret).

    ``definitive``: retrying will not mend it (the access code was refused, the certificate changed), so the
    printer is offline at once. ``silent``: the session was up but the printer sent no report.
    """

    def __init__(self, reason: str, *, definitive: bool = False, silent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.definitive = definitive
        self.silent = silent


class NotConnected(Exception):
    pass


def backoff_delay(attempt: int, *, cap: float, base: float = 1.0, rng: Callable[[], float] = random.random) -> float:
    """Capped exponential backoff with jitter (half to full of the step), so many boxes don't retry in step."""
    step = min(cap, min(base, cap) * 2.0 ** min(attempt, 30))
    return step * (0.5 + 0.5 * rng())


def pushall_request() -> dict[str, Any]:
    return {"pushing": {"command": "pushall", "version": 1, "push_target": 1}}


@dataclass
class Liveness:
    """When the printer last reported, and what its connection is called while no report arrives.

    Times are trio's (monotonic) clock and passed in. Online is the hub's to set, when a report arrives; from
    then the link's sessions end ``stale_after_s`` after the last report. A failed or silent session turns
    ``online`` into ``stale`` and leaves ``stale`` as it is: a reconnect is not a report. ``offline`` comes once
    no report came for ``offline_after_s`` (counted from the last report, or from the link's start), at once
    for a failure retrying cannot mend, and at the first failure when nothing was reported since the start
    (nothing says the printer is there: a wrong address or a printer that is off should say so at once).
    """

    offline_after_s: float
    started_at: float
    last_report: float | None = None
    last_failure: LinkFailure | None = None

    def reported(self, now: float) -> None:
        self.last_report = now
        self.last_failure = None  # that episode is over: a later offline must not quote it

    def offline_at(self) -> float:
        since = self.started_at if self.last_report is None else self.last_report
        return since + self.offline_after_s

    def after_failure(self, current: Connection, failure: LinkFailure, now: float) -> tuple[Connection, str]:
        """The connection and its reason once a session or connection attempt failed with ``failure``."""
        self.last_failure = failure
        if now >= self.offline_at():
            return "offline", self._offline_reason()
        # "connecting": no report since the service started (a link restarted by the settings page finds its
        # printer online and keeps counting from there).
        if failure.definitive or current in ("offline", "connecting"):
            return "offline", failure.reason
        return "stale", failure.reason

    def overdue(self, current: Connection, now: float) -> tuple[Connection, str] | None:
        """``offline`` and why, when no report came for ``offline_after_s`` and the printer is not offline yet."""
        if current == "offline" or now < self.offline_at():
            return None
        return "offline", self._offline_reason()

    def _offline_reason(self) -> str:
        failure = self.last_failure
        if failure is None or failure.silent:
            return f"no report from the printer for {self.offline_after_s:g} s"
        # The last attempt says most about why (refused: is it on? certificate changed: run trust).
        return failure.reason


class PrinterLink:
    """Keeps one printer connected: TLS, pin check, login, subscribe, pushall, stale detection, reconnect."""

    def __init__(
        self,
        config: PrinterConfig,
        hub: PrinterSink,
        pins: PinStore,
        *,
        keepalive_s: int = KEEPALIVE_S,
    ) -> None:
        self.config = config
        self.hub = hub
        self.keepalive_s = keepalive_s
        self.report_topic = f"device/{config.serial}/report"
        self.request_topic = f"device/{config.serial}/request"
        self.host = config.host  # where it is now: discovery may follow it to a new DHCP address
        self.trust = TrustOnFirstUse(pins, config.id, printer_id=config.id, configured=config.tls_fingerprint)
        self._session: _Session | None = None
        self._wake = trio.Event()
        self._sequence = 0
        self.attempts = 0  # connection attempts begun, for tests
        self.connects = 0  # successful logins, for health and tests
        self.liveness = Liveness(config.offline_after_s, 0.0)  # started_at set when it runs (trio's clock)
        self._reported = trio.Event()

    @property
    def connected(self) -> bool:
        """Logged in to the printer's MQTT server (which is not yet "online": that needs a report)."""
        return self._session is not None and self._session.logged_in

    async def run(self, *, task_status: trio.TaskStatus[PrinterLink] = trio.TASK_STATUS_IGNORED) -> None:
        self.liveness = Liveness(self.config.offline_after_s, trio.current_time())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_offline)
            # Ready at once: an unreachable printer must not hold up the rest of the box.
            task_status.started(self)
            await self._keep_connected()

    async def _keep_connected(self) -> None:
        attempt = 0
        while True:
            session = _Session(self)
            self._session = session
            self.attempts += 1
            try:
                await session.run()
            except LinkFailure as failure:
                self._failed(failure)
            except Exception as exc:
                # A bug (ours or paho's) must cost one printer a reconnect, not the whole box.
                log.exception("%s: unexpected error in the printer link", self.config.id)
                self._failed(LinkFailure(f"internal error: {type(exc).__name__}"))
            finally:
                self._session = None
            if session.logged_in:
                attempt = 0
            delay = backoff_delay(attempt, cap=self.config.reconnect_max_s)
            attempt += 1
            with trio.move_on_after(delay):
                await self._wake.wait()
            self._wake = trio.Event()

    def _connection(self) -> Connection:
        connection: Connection = self.hub.printer(self.config.id)["connection"]
        return connection

    def _failed(self, failure: LinkFailure) -> None:
        connection, reason = self.liveness.after_failure(self._connection(), failure, trio.current_time())
        self.hub.set_connection(self.config.id, connection, reason)

    def reported(self) -> None:
        """A report arrived (the hub has made the printer online)."""
        self.liveness.reported(trio.current_time())
        self._reported.set()

    async def _watch_offline(self) -> None:
        """Call the printer offline once no report came for ``offline_after_s``, whatever the sessions do
        meanwhile: a session may be up and silent, or every attempt may be refused or time out."""
        while True:
            await trio.sleep_until(self.liveness.offline_at())
            verdict = self.liveness.overdue(self._connection(), trio.current_time())
            if verdict is not None:
                self.hub.set_connection(self.config.id, *verdict)
            if trio.current_time() >= self.liveness.offline_at():
                # Offline: the next deadline is counted from a report that has not come yet.
                self._reported = trio.Event()
                await self._reported.wait()

    def follow(self, host: str) -> bool:
        """Use ``host`` from the next attempt on, and make that attempt now if the link is down.

        Only for a printer whose certificate is pinned: anyone on the LAN can announce a serial, and a printer
        never seen before would pin the announcer's certificate and be sent the access code. Returns whether
        the link follows.
        """
        if host != self.host and self.trust.trusted() is None:
            log.warning("%s: not following an announcement to %s: the printer's certificate is not pinned yet "
                        "(it has never connected), so the announcement cannot be trusted; set its address in the "
                        "settings", self.config.id, host)
            return False
        self.host = host
        if not self.connected:
            self._wake.set()
        return True

    def send(self, body: dict[str, Any], *, origin: str | None = None) -> str:
        """Publish a command (QoS 1) with the next ``sequence_id``; returns that id for matching the reply.
        ``origin`` (who asked: "alice (the page)") goes with it into the MQTT capture; None is the box itself."""
        session = self._session
        if session is None or not session.logged_in:
            raise NotConnected(f"{self.config.id} is not connected")
        self._sequence += 1
        sequence_id = str(self._sequence)
        message = {key: dict(value, sequence_id=sequence_id) for key, value in body.items()}
        session.publish(self.request_topic, json.dumps(message, separators=(",", ":")), origin=origin)
        return sequence_id


class _Session:
    """One connection attempt and, if it succeeds, the life of that connection."""

    def __init__(self, link: PrinterLink) -> None:
        self.link = link
        self.config = link.config
        self.host = link.host  # fixed for this attempt: discovery may move the link meanwhile
        self.client = self._make_client()
        self.logged_in = False
        self.peer_pin: str | None = None
        self._failure: LinkFailure | None = None
        self._cancel = trio.CancelScope()
        self.loop = PahoLoop(self.client, fail=lambda words: self.fail(LinkFailure(words)), closed=self._cancel.cancel)
        self._connack = trio.Event()
        self._last_report = 0.0  # or the login, for the stale limit of a session that has had no report yet

    # -- setup --------------------------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            # Unique per connection: two clients with one id knock each other off in a loop.
            client_id=f"bambupi-{uuid.uuid4().hex[:12]}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        client.username_pw_set(MQTT_USER, self.config.access_code.reveal())
        client.tls_set_context(printer_tls_context())  # identity comes from the pin, checked in _on_socket_open
        client.tls_insecure_set(True)
        client.connect_timeout = self.config.connect_timeout_s
        client.on_socket_open = self._on_socket_open  # the socket's other callbacks are the PahoLoop's
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    # -- the session --------------------------------------------------------------------------------------
    async def run(self) -> None:
        cfg = self.config
        try:
            await trio.to_thread.run_sync(self._connect_blocking, abandon_on_cancel=True)
        except LinkFailure:
            self._close_socket()
            raise
        try:
            with self._cancel:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self.loop.drive)
                    with trio.move_on_after(cfg.connect_timeout_s) as connack_wait:
                        await self._connack.wait()
                    if connack_wait.cancelled_caught:
                        self.fail(LinkFailure(f"timeout: no MQTT answer from {self.host}:{cfg.mqtt_port}"))
                    else:
                        nursery.start_soon(self._stale_watch)
        finally:
            self._close_socket()
        if self._failure is not None:
            raise self._failure
        raise LinkFailure("connection lost")

    def _connect_blocking(self) -> None:
        cfg = self.config
        host = self.host
        where = f"{host}:{cfg.mqtt_port}"
        try:
            self.client.connect(host, cfg.mqtt_port, keepalive=self.link.keepalive_s)
        except CertificateRefused as refused:
            raise LinkFailure(str(refused), definitive=True) from None
        except ConnectionRefusedError:
            raise LinkFailure(f"connection refused by {where} (is this the printer's address, and is it on?)") from None
        except TimeoutError:
            raise LinkFailure(f"timeout connecting to {where}") from None
        except socket.gaierror:
            raise LinkFailure(f"cannot resolve host {host!r}") from None
        except ssl.SSLError as exc:
            raise LinkFailure(f"TLS handshake with {where} failed ({exc.reason or type(exc).__name__})") from None
        except OSError as exc:
            if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
                raise LinkFailure(f"no route to {where} (is the printer on this network?)") from None
            raise LinkFailure(f"network error reaching {where}: {exc.strerror or type(exc).__name__}") from None

    def fail(self, failure: LinkFailure) -> None:
        if self._failure is None:
            self._failure = failure
        self._cancel.cancel()

    def _close_socket(self) -> None:
        self.loop.close_socket()

    async def _stale_watch(self) -> None:
        limit = self.config.stale_after_s
        while True:
            deadline = self._last_report + limit
            await trio.sleep_until(deadline)
            if self._last_report + limit <= trio.current_time():
                self.fail(LinkFailure(f"no report from the printer for {limit:g} s; reconnecting", silent=True))
                return

    def publish(self, topic: str, payload: str, *, origin: str | None = None) -> None:
        self.link.hub.capture(self.config.id).record("out", topic, payload, origin=origin)
        self.client.publish(topic, payload, qos=1)

    # -- paho callbacks -----------------------------------------------------------------------------------
    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        # Runs in the connect thread after the TLS handshake and before CONNECT (with the access code) is
        # sent: raising here keeps the code from ever reaching a device with the wrong certificate.
        self.peer_pin = self.link.trust.check(
            sock.getpeercert(binary_form=True), f"the printer at {self.host}:{self.config.mqtt_port}"
        )
        self.loop.opened(sock)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self._connack.set()
        if reason.is_failure:
            code = reason.value
            if code in AUTH_REFUSED_CODES:
                self.fail(LinkFailure(REASON_AUTH, definitive=True))
            else:
                self.fail(LinkFailure(f"refused by the printer's MQTT server ({reason})"))
            return
        self.logged_in = True
        self.link.connects += 1
        self._last_report = trio.current_time()
        if self.peer_pin is not None:
            self.link.trust.accept(self.peer_pin)  # the printer took the access code: pin what it presented
        client.subscribe(self.link.report_topic, qos=1)
        # A full report on every (re)connect: P1/A1 only send deltas after this. Its arrival, not this login,
        # makes the printer online again.
        self.link.send(pushall_request())

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.fail(LinkFailure("connection lost"))

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        payload = bytes(message.payload)
        self.link.hub.capture(self.config.id).record("in", message.topic, payload)
        if message.topic != self.link.report_topic:
            return
        if self.link.hub.apply_message(self.config.id, payload).rejected is None:
            self._last_report = trio.current_time()
            self.link.reported()


class PrinterLinks(Mapping[str, PrinterLink]):
    """A read-only mapping ``id -> PrinterLink`` for everyone else; only :meth:`start`/:meth:`stop` change it."""

    def __init__(self, hub: PrinterSink, pins: PinStore, printers: Iterable[PrinterConfig]) -> None:
        self._hub = hub
        self._pins = pins
        self._configs = {p.id: p for p in printers}  # what a (re)start connects
        self._nursery: trio.Nursery | None = None
        self._links: dict[str, PrinterLink] = {}
        self._scopes: dict[str, trio.CancelScope] = {}

    async def run(self, *, task_status: trio.TaskStatus[PrinterLinks] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for config in list(self._configs.values()):
                    await self._start(config)
                task_status.started(self)
                await trio.sleep_forever()  # open for printers the settings add, with none configured yet
        finally:
            self._nursery = None
            self._links.clear()
            self._scopes.clear()

    def __getitem__(self, printer_id: str) -> PrinterLink:
        return self._links[printer_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._links)

    def __len__(self) -> int:
        return len(self._links)

    async def start(self, config: PrinterConfig) -> None:
        """Connect a printer (added, or with new settings); while not running, at the next start."""
        self._configs[config.id] = config
        if self._nursery is not None:
            await self._start(config)

    async def _start(self, config: PrinterConfig) -> None:
        assert self._nursery is not None
        scope = trio.CancelScope()
        link = PrinterLink(config, self._hub, self._pins)

        async def run(*, task_status: trio.TaskStatus[PrinterLink] = trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await link.run(task_status=task_status)

        await self._nursery.start(run)
        self._links[config.id] = link
        self._scopes[config.id] = scope

    def stop(self, printer_id: str) -> None:
        self._configs.pop(printer_id, None)
        scope = self._scopes.pop(printer_id, None)
        if scope is not None:
            scope.cancel()
        self._links.pop(printer_id, None)

    async def restart(self, config: PrinterConfig) -> None:
        self.stop(config.id)
        await self.start(config)

    def by_serial(self, serial: str) -> PrinterLink | None:
        return next((link for link in self._links.values() if link.config.serial == serial), None)
