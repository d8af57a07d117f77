"""The home broker's bridge as a component: keeps one connection to the home MQTT broker (``[bridge]``), publishes
each printer's state, availability, discovery configs, events and camera pictures, and takes commands from it.

- State is latest-value: every change of the hub marks the bridge dirty; one task publishes the newest documents,
  and the session sends each topic's newest value once the one before it was acknowledged (bambupi.bridge.client),
  so a slow broker never holds up the hub.
- Events come through the hub's bounded queue and are kept while the broker is away (at most :data:`EVENT_BUFFER`;
  one older than ``event_max_age_s`` when it is back is not sent: stale news would set off automations).
- Commands from ``<prefix>/<id>/command`` go through the same ``Controls.send`` as the page's (same checks, same
  log, origin "the home broker"), only while ``allow_control`` is on; each gets a result message.
- New settings apply live: a new broker, user, password, TLS or topic prefix reconnects (after an "offline" goodbye);
  other changes republish. A prefix that changed has its old retained topics cleared first.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final, Protocol

import trio

from bambupi.bridge.client import BrokerFailure, BrokerSession
from bambupi.bridge.messages import (
    EVENT_TYPES,
    OFFLINE,
    Printer,
    Topics,
    availability,
    discovery_configs,
    encode,
    event_payload,
    parse_command,
    result_payload,
    state_document,
    topics_of,
)
from bambupi.component import Applied, Web
from bambupi.config import BridgeConfig, Config, PrinterConfig
from bambupi.printer.commands import CommandError, Outcome
from bambupi.printer.link import backoff_delay
from bambupi.state_hub import Event, EventQueue, StateHub

log = logging.getLogger("bambupi.bridge")

COMMAND_QUEUE: Final = 16  # commands waiting for the printer; more are refused with a result saying so
SNAPSHOT_TIMEOUT_S: Final = 15.0  # one picture's limit (the camera may connect for it)
MAX_PICTURE_BYTES: Final = 1024 * 1024  # a larger picture is not sent (a home broker and HA keep it retained)
GOODBYE_S: Final = 2.0
EVENT_BUFFER: Final = 200  # events kept while the broker is away
EVENT_MAX_AGE_S: Final = 600.0  # an event older than this when the broker is back is not sent
PRINTER_LEAVES: Final = ("state", "availability", "camera")  # a printer's retained topics beside its configs
# The settings a connection is made with: a change of any of these reconnects; other changes only republish.
CONNECTION_KEYS: Final = (
    "enabled", "host", "port", "tls", "ca", "username", "password", "topic_prefix", "connect_timeout_s",
)
RETAINED: Final = (
    "a retained command is not taken (it would run again at every reconnect); publish commands without the retain "
    "flag, and clear this one with an empty retained message"
)
CONTROL_OFF: Final = (
    "control from the home broker is off: set [bridge] allow_control = true on the box (its settings page) to allow it"
)


class CommandSender(Protocol):
    """The printers' one command path (bambupi.printer.commands.Controls)."""

    async def send(
        self, printer_id: str, name: str, params: Mapping[str, Any], *, origin: str = ...
    ) -> Outcome: ...


class BridgeComponent:
    name = "bridge"
    sections = ("bridge", "printer")

    def __init__(
        self,
        hub: StateHub,
        settings: BridgeConfig,
        printers: Iterable[PrinterConfig],
        *,
        controls: CommandSender,
        snapshot: Callable[[str], Awaitable[bytes | None]],
        url: Callable[[], str | None] = lambda: None,
        event_max_age_s: float = EVENT_MAX_AGE_S,
    ) -> None:
        self._hub = hub
        self.settings = settings
        self._printers = {p.id: p for p in printers}
        self._controls = controls
        self._snapshot = snapshot
        self._url = url
        self.session: BrokerSession | None = None  # the session whose login the broker took, while it lasts
        self.sessions = 0  # sessions that logged in, for tests
        self.state, self.detail = ("connecting", "") if settings.enabled else ("off", "[bridge] enabled = false")
        self._changes = 0  # bumped for every reason to publish again
        self._changed = trio.lowlevel.ParkingLot()
        self._settings_version = 0
        self._settings_changed = trio.lowlevel.ParkingLot()
        self._connection: trio.CancelScope | None = None
        self._config_topics: dict[str, set[str]] = {}  # discovery topics published per printer (for removal)
        self._gone: set[str] = set()  # retained topics kept empty: entities and printers that went, old prefixes
        self._configs_cache: dict[str, tuple[Any, dict[str, bytes]]] = {}
        self._commands: trio.MemorySendChannel[tuple[str, bytes]] | None = None
        self.event_max_age_s = event_max_age_s
        self._events: deque[tuple[float, str, Event]] = deque()  # (taken at, on trio's clock; printer; event)
        self._events_waiting = trio.lowlevel.ParkingLot()
        self._events_dropped = 0

    # -- the component's shape ----------------------------------------------------------------------------
    def add_routes(self, web: Web) -> None:
        pass  # /healthz shows it (health); the settings page edits [bridge]

    def health(self) -> dict[str, Any]:
        """``/healthz``'s ``home_broker`` entry: ``connected to broker host:port``, or why not."""
        ok = self.state in ("off", "connected", "connecting")
        return {"home_broker": {"ok": ok, "state": self.state, "detail": self.detail}}

    async def run(self, *, task_status: trio.TaskStatus[BridgeComponent] = trio.TASK_STATUS_IGNORED) -> None:
        send, receive = trio.open_memory_channel[tuple[str, bytes]](COMMAND_QUEUE)
        self._commands = send
        async with self._hub.subscribe() as updates, self._hub.events("bridge") as events, trio.open_nursery() as n:
            n.start_soon(self._watch_hub, updates)
            n.start_soon(self._keep_connected)
            n.start_soon(self._publish_state)
            n.start_soon(self._take_events, events)
            n.start_soon(self._publish_events)
            n.start_soon(self._publish_pictures)
            n.start_soon(self._take_commands, receive)
            task_status.started(self)

    async def apply(self, old: Config, new: Config) -> Applied:
        done: list[str] = []
        if old.printers != new.printers:
            self._printers = {p.id: p for p in new.printers}
            self._configs_cache.clear()
            self._poke()
        if old.bridge == new.bridge:
            return done
        before, after = old.bridge, new.bridge
        session = self.session
        moved = (before.topic_prefix, before.discovery_prefix) != (after.topic_prefix, after.discovery_prefix)
        if session is not None and moved:
            self._clear_retained(session, topics_of(before))
        reconnect = any(getattr(before, key) != getattr(after, key) for key in CONNECTION_KEYS)
        self.settings = after
        self._configs_cache.clear()
        if reconnect:
            if session is not None:
                # The box's availability topic moves with the prefix: the old one is cleared, not left "offline".
                moved_box = before.topic_prefix != after.topic_prefix
                await session.goodbye(b"" if moved_box else OFFLINE.encode(), GOODBYE_S)
            if self._connection is not None:
                self._connection.cancel()
            self._settings_version += 1
            self._settings_changed.unpark_all()
        self._poke()
        if not after.enabled:
            done.append("home broker: the bridge is off")
        elif reconnect:
            done.append(f"home broker: connecting to {after.host}:{after.broker_port}")
        else:
            control = "with" if after.allow_control else "without"
            done.append(f"home broker: published again ({control} control)")
        return done

    # -- the connection -----------------------------------------------------------------------------------
    async def _keep_connected(self) -> None:
        attempt = 0
        while True:
            settings = self.settings
            version = self._settings_version
            if not settings.enabled:
                self._set_state("off", "[bridge] enabled = false")
                await self._wait_settings(version)
                continue
            with trio.CancelScope() as scope:
                self._connection = scope
                logged_in = await self._one_session(settings)
            self._connection = None
            if scope.cancelled_caught or version != self._settings_version:
                attempt = 0  # new settings: try them at once
                continue
            attempt = 0 if logged_in else attempt + 1
            with trio.move_on_after(backoff_delay(attempt, cap=settings.reconnect_max_s)):
                await self._wait_settings(version)

    async def _one_session(self, settings: BridgeConfig) -> bool:
        """One session from connect to its end; whether the broker took the login."""
        topics = topics_of(settings)
        where = f"{settings.host}:{settings.broker_port}"
        session: BrokerSession | None = None
        try:
            session = BrokerSession(
                settings, availability_topic=topics.availability, subscriptions=(topics.commands, topics.configs),
                on_message=self._on_message, on_up=lambda: self._up(session),
            )
            if self.state != "disconnected":
                self._set_state("connecting", f"connecting to the broker at {where}")
            await session.run()
        except BrokerFailure as failure:
            if session is None or not session.leaving:  # a goodbye's end is no failure
                self._set_state("disconnected", failure.reason)
        except Exception as exc:
            # A bug (ours or paho's) must cost the bridge a reconnect, not the box.
            log.exception("home broker: unexpected error in the bridge")
            self._set_state("disconnected", f"internal error: {type(exc).__name__}")
        finally:
            self.session = None
        return session is not None and session.connected.is_set()

    def _up(self, session: BrokerSession | None) -> None:
        assert session is not None
        self.session = session
        self.sessions += 1
        self._set_state("connected", f"connected to broker {session.where}")
        self._poke()  # everything again: the broker may have lost its retained messages

    def _set_state(self, state: str, detail: str) -> None:
        if (state, detail) == (self.state, self.detail):
            return
        if state == "connected":
            log.info("home broker: %s", detail)
        elif state == "disconnected" and self.state != "disconnected":
            log.warning("home broker: not connected: %s (retrying)", detail)  # once per streak
        self.state, self.detail = state, detail

    async def _wait_settings(self, version: int) -> None:
        while self._settings_version == version:
            await self._settings_changed.park()

    # -- state and discovery ------------------------------------------------------------------------------
    def _poke(self) -> None:
        self._changes += 1
        self._changed.unpark_all()

    async def _watch_hub(self, updates: Any) -> None:
        while True:
            await updates.wait()
            self._poke()

    async def _publish_state(self) -> None:
        seen = -1
        while True:
            while self._changes == seen:
                await self._changed.park()
            seen = self._changes
            session = self.session
            if session is not None and session.logged_in:
                self._publish_all(session)

    def _publish_all(self, session: BrokerSession) -> None:
        settings = self.settings
        topics = topics_of(settings)
        snapshot = self._hub.snapshot()
        live: set[str] = set()
        for printer_id, printer in snapshot.items():
            config = self._printers.get(printer_id)
            if config is None:
                continue
            document = state_document(printer)
            configs = self._discovery(config, document, settings)
            # An entity that is gone (a tray no longer listed) is cleared.
            self._gone |= self._config_topics.get(printer_id, set()) - configs.keys()
            self._config_topics[printer_id] = set(configs)
            for topic, payload in configs.items():
                session.offer(topic, payload)
            session.offer(topics.printer(printer_id, "state"), encode(document))
            session.offer(topics.printer(printer_id, "availability"), availability(printer).encode())
            live |= {*configs, *(topics.printer(printer_id, leaf) for leaf in PRINTER_LEAVES)}
        for printer_id in [pid for pid in self._config_topics if pid not in snapshot]:
            self._forget(topics, printer_id)  # removed in the settings: its device goes too
        self._gone -= live  # back (a printer added again, a tray refilled): published above
        for topic in self._gone:
            # Cleared on every session, not once: a session that ends before the broker took the clearing would
            # otherwise leave the old retained config there for good (the session dedups within itself).
            session.offer(topic, b"")

    def _discovery(
        self, config: PrinterConfig, document: Mapping[str, Any], settings: BridgeConfig
    ) -> dict[str, bytes]:
        """The printer's discovery configs, made again only when what they depend on changed (its trays, mostly)."""
        key = (sorted(document.get("trays") or {}), config, settings, self._url())
        cached = self._configs_cache.get(config.id)
        if cached is None or cached[0] != key:
            printer = Printer(config.id, config.serial, config.name, config.model, config.camera != "off")
            cached = (key, discovery_configs(printer, document, settings, box_url=self._url()))
            self._configs_cache[config.id] = cached
        return cached[1]

    def _forget(self, topics: Topics, printer_id: str) -> None:
        """Every retained topic of a printer under ``topics``, to be cleared (:attr:`_gone`)."""
        self._gone |= self._config_topics.pop(printer_id, set())
        self._gone |= {topics.printer(printer_id, leaf) for leaf in PRINTER_LEAVES}

    def _clear_retained(self, session: BrokerSession, old: Topics) -> None:
        """Before the prefixes change: the old topics' retained messages go, so no device is left twice (the
        box's own availability goes with the goodbye, which the reconnect for a new topic prefix says)."""
        for printer_id in list(self._config_topics):
            self._forget(old, printer_id)
        for topic in self._gone:
            session.offer(topic, b"")

    # -- events -------------------------------------------------------------------------------------------
    async def _take_events(self, queue: EventQueue) -> None:
        """The hub's events for the broker, kept while it is away: at most :data:`EVENT_BUFFER` (the oldest go)."""
        while True:
            event = await queue.get()
            printer_id = event.get("printer")
            if not self.settings.enabled or not isinstance(printer_id, str) or event.get("kind") not in EVENT_TYPES:
                continue  # the bridge is off (events are not kept for a broker that may never come), or not one
                # the event entity was told of
            if len(self._events) >= EVENT_BUFFER:
                self._events.popleft()
                self._events_dropped += 1
            self._events.append((trio.current_time(), printer_id, event))
            self._events_waiting.unpark_all()

    async def _publish_events(self) -> None:
        """Each kept event, in order, once a session is up; one older than ``event_max_age_s`` by then is not sent
        (an automation would act on stale news: a print finished hours ago notified now)."""
        while True:
            while not self._events:
                await self._events_waiting.park()
            session = self.session
            if session is None or not session.logged_in:
                await self._wait_for_session()
                continue
            taken_at, printer_id, event = self._events[0]
            if trio.current_time() - taken_at > self.event_max_age_s:
                self._events.popleft()
                self._events_dropped += 1
                continue
            if self._events_dropped:
                log.warning("home broker: %d events were not sent (older than %g s, or over %d while it was away)",
                            self._events_dropped, self.event_max_age_s, EVENT_BUFFER)
                self._events_dropped = 0
            try:
                await session.send_event(topics_of(self.settings).printer(printer_id, "event"), event_payload(event))
            except BrokerFailure:
                continue  # the session ended: the next one sends it
            if self._events and self._events[0][2] is event:
                self._events.popleft()

    async def _wait_for_session(self) -> None:
        seen = self._changes
        while self._changes == seen and (self.session is None or not self.session.logged_in):
            await self._changed.park()

    # -- camera pictures ----------------------------------------------------------------------------------
    async def _publish_pictures(self) -> None:
        too_large_logged = False
        while True:
            settings = self.settings
            version = self._settings_version
            interval = settings.snapshot_interval_s
            if not settings.enabled or interval <= 0:
                await self._wait_settings(version)
                continue
            session = self.session
            if session is not None and session.logged_in:
                for printer_id, config in list(self._printers.items()):
                    if config.camera == "off" or not self._hub.has(printer_id):
                        continue
                    if self._hub.printer(printer_id)["connection"] != "online":
                        continue
                    picture = None
                    with trio.move_on_after(SNAPSHOT_TIMEOUT_S):
                        try:
                            picture = await self._snapshot(printer_id)
                        except Exception as exc:
                            # The camera's trouble (or the printer removed meanwhile) costs a picture, not the bridge.
                            log.debug("home broker: no picture of %s (%s)", printer_id, type(exc).__name__)
                    if picture is None or self.session is not session:
                        continue
                    if len(picture) > MAX_PICTURE_BYTES:
                        if not too_large_logged:
                            too_large_logged = True
                            log.warning("home broker: %s's camera picture (%d bytes) is over %d bytes; not sent",
                                        printer_id, len(picture), MAX_PICTURE_BYTES)
                        continue
                    session.offer(topics_of(settings).printer(printer_id, "camera"), picture)
                with trio.move_on_after(interval):
                    await self._wait_settings(version)
            else:
                await self._wait_for_session()

    # -- commands -----------------------------------------------------------------------------------------
    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        """A message on ``<prefix>/+/command`` (in trio's thread); queued for :meth:`_take_commands`. Or a discovery
        config the broker kept: one of this box's for a printer it no longer has is cleared (:meth:`_stale`)."""
        topics = topics_of(self.settings)
        if retained and topic.startswith(f"{topics.discovery}/"):
            self._stale(topics, topic, payload)
            return
        printer_id = topics.command_printer(topic)
        if printer_id is None or self._commands is None:
            return
        if not payload:
            return  # an empty message clears a retained one: nothing to do
        if retained:
            # Kept by the broker from before this connection: taken, it would run again at every reconnect (a
            # "stop" sent with the retain flag would stop every later print). A live message is taken once.
            log.warning("home broker: a retained command on %r was not taken", topic)  # quoted: anyone may name it
            self._result(printer_id, None, "refused", RETAINED)
            return
        try:
            self._commands.send_nowait((printer_id, payload))
        except trio.WouldBlock:
            self._result(printer_id, None, "refused", "too many commands at once; try again")

    def _stale(self, topics: Topics, topic: str, payload: bytes) -> None:
        """A printer removed while the box was off or away from the broker (the config file edited, the settings
        saved while the broker was down): nothing in memory says its device is there, but its retained configs,
        state and availability would leave a dead device in Home Assistant for good. Cleared like a removal."""
        printer_id = topics.stale_config(topic, payload, self._printers)
        if printer_id is None:
            return
        leaves = {topics.printer(printer_id, leaf) for leaf in PRINTER_LEAVES}
        if not leaves <= self._gone:
            log.info("home broker: %s is no longer on this box; removing it from Home Assistant", printer_id)
        self._gone |= {topic, *leaves}
        self._poke()

    async def _take_commands(self, receive: trio.MemoryReceiveChannel[tuple[str, bytes]]) -> None:
        async for printer_id, payload in receive:
            try:
                command = parse_command(payload)
            except ValueError as exc:
                self._result(printer_id, None, "refused", str(exc))
                continue
            if printer_id not in self._printers:
                self._result(printer_id, command, "refused", f"no printer with id {printer_id[:40]!r}")
                continue
            if not self.settings.allow_control:
                log.info("%s: %s from the home broker refused: control from the home broker is off",
                         printer_id, command)
                self._result(printer_id, command, "refused", CONTROL_OFF)
                continue
            try:
                outcome = await self._controls.send(printer_id, command, {}, origin="the home broker")
            except CommandError as exc:
                self._result(printer_id, command, "failed", exc.message)
                continue
            self._result(printer_id, command, outcome.result, outcome.reason)

    def _result(self, printer_id: str, command: str | None, result: str, reason: str | None) -> None:
        session = self.session
        if session is not None:
            topic = topics_of(self.settings).printer(printer_id, "command/result")
            session.publish_once(topic, result_payload(command, result, reason))
