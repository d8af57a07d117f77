"""StateHub: the one owner of printer state, with a latest-value change feed and never-dropping event queues.

Nobody else mutates a printer object. Links hand raw MQTT payloads and connection changes in; the web, the
panel, power and notify read the latest objects or wait for the next change, and take transitions from their
own :class:`EventQueue`. A printer is ``online`` exactly while reports arrive: an accepted report makes it so
(:meth:`StateHub.apply_message`); its link says when it stops (``stale``, then ``offline``).

Two latest-value streams leave the hub: the printers' objects (:attr:`StateHub.version`, :meth:`StateHub.subscribe`)
and the cameras' status (:attr:`StateHub.camera_version`, written by the camera's FrameHub). A camera's frame rate
and last-frame time change every few seconds while someone watches; they are part of the public printer object
(``camera``) but not of its version, so they wake no printer subscriber (the panel, notify, power) and keep no
screen awake. The WebSocket follows both (:meth:`StateHub.wait_for_news`).

Derived facts are computed here, once per change: ``phase`` (bambupi.printer.phase: where the printer is in its
job) is part of every printer object, and each printer's object is built once per change and shared by every
reader (never modify one).

The hub also settles how a job ended when the printer has not said so yet (a real stop first
reports FAILED with no error and only seconds later ``0300_400C``). Such an end is *pending* (hms.job_result) until
the box knows: it is cancelled at once when the box itself sent the stop, by ``0300_400C`` or another error when one
arrives, and cancelled when no error came within :data:`JOB_END_SETTLE_S` (:meth:`StateHub.run` keeps that time).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

import trio

from bambupi.config import PrinterConfig
from bambupi.printer.capture import MqttCapture
from bambupi.printer.events import EndingSoon, ending_soon
from bambupi.printer.events import Event as Event  # the consumers' event type, re-exported
from bambupi.printer.events import events as derive_events
from bambupi.printer.grams import live_job_file
from bambupi.printer.hms import CANCELLED_RESULT, HmsEntry, decode_hms
from bambupi.printer.hms_texts import Catalog
from bambupi.printer.phase import IN_JOB, Phase, job_phase, phase
from bambupi.printer.raw_report import MergedReport
from bambupi.printer.sink import Connection, Reply
from bambupi.printer.state import (
    Applied,
    State,
    apply_message,
    initial_state,
    redescribe,
    signature_required,
)
from bambupi.printer_models import model_info

log = logging.getLogger("bambupi.state_hub")


class CameraStatus(TypedDict):
    """A printer's camera as the page shows it (``printer.camera``); FrameHub adds the live figures."""

    kind: str  # tls6000 | rtsps | none
    status: str  # idle | connecting | live | error | off | disabled | unavailable
    reason: str | None
    viewers: NotRequired[int]
    fps: NotRequired[float]
    last_frame_at: NotRequired[float | None]  # UTC epoch seconds


class PrinterObject(TypedDict):
    """``GET /api/printers/<id>`` and each printer of the WebSocket's snapshot (docs/api.md, "The printer object")."""

    id: str
    name: str
    model: str
    connection: Connection
    connection_reason: str | None
    last_report_at: float | None  # UTC epoch seconds
    controls_available: bool
    commands_refused: bool
    phase: Phase
    camera: CameraStatus
    state: State
    job_file: dict[str, Any] | None  # the job's file and its grams (bambupi.history); null until a job is seen



DEFAULT_EVENT_QUEUE_SIZE = 1000
# What a page shows under "Recent events" right after it loads (served with the WebSocket snapshot).
RECENT_EVENTS = 20
# A printer with a broken firmware can send junk many times a second; one log line per this many seconds.
REJECT_LOG_INTERVAL_S = 60.0
# How long a FAILED report without an error waits for its error (a P2S sends 0300_400C 4.6 s after its stop)
# before the end counts as cancelled.
JOB_END_SETTLE_S = 10.0
ENDING_SOON_MIN = 5.0  # [alerts] ending_soon_min: job_ending_soon this many minutes before the estimated end


@dataclass
class _Printer:
    config: PrinterConfig
    capture: MqttCapture
    state: State = field(default_factory=initial_state)
    connection: Connection = "connecting"
    connection_reason: str | None = None
    last_report_at: float | None = None
    signature_required: bool = False
    # The printer refused a command (HMS 0500_0500_0001_0007 appeared, or a reply said "verify failed"). Shown, never
    # a block: the code is a latch that stays listed after one refusal, and a P2S accepted commands meanwhile.
    commands_refused: bool = False
    refusal_listed: bool = False
    stop_sent: bool = False  # the box sent a stop for the current job: its end is a cancel
    end_settles_at: float | None = None  # trio clock: when a pending job end counts as cancelled
    ending_soon: EndingSoon = "waiting"  # the job's "done in N minutes" (events.ending_soon): told once per job
    camera: CameraStatus = field(default_factory=lambda: CameraStatus(kind="none", status="idle", reason=None))
    rejected_messages: int = 0
    last_reject_log: float = float("-inf")
    last_drop_log: float = float("-inf")  # monotonic: a report beyond the reducer's bounds, said once a minute
    baselined: bool = False
    # The public object as of the last change (built once per change, shared by every reader), and the hub's
    # version when the printer itself last changed.
    json: PrinterObject | None = None
    version: int = 0
    job_file: dict[str, Any] | None = None  # as the recorder set it; the live used grams are added per build
    # The printer's own ``print`` object merged from every report (printer/raw_report.py), and its last answer to
    # ``get_version``: what the printer facade answers other apps' ``pushall`` and ``get_version`` with.
    raw: MergedReport = field(default_factory=MergedReport)
    version_reply: dict[str, Any] | None = None

    def to_json(self) -> PrinterObject:
        return {
            "id": self.config.id,
            "name": self.config.name,
            "model": self.config.model,
            "connection": self.connection,
            "connection_reason": self.connection_reason,
            "last_report_at": self.last_report_at,
            "controls_available": not self.signature_required,
            "commands_refused": self.commands_refused,
            "phase": phase(self.connection, self.state),
            "camera": self.camera,
            "state": self.state,
            "job_file": live_job_file(self.job_file, self.state),
        }

    def public(self) -> PrinterObject:
        if self.json is None:
            self.json = self.to_json()
        return self.json


class EventQueue:
    """One consumer's queue of events, in order.

    Bounded so a dead consumer cannot eat the box's memory; if it ever fills, the loss is logged loudly
    and the consumer receives an ``events_lost`` event with the count, so it knows to resynchronise from
    the latest state instead of silently missing a transition.
    """

    def __init__(self, name: str, maxlen: int) -> None:
        self.name = name
        self._maxlen = maxlen
        self._items: deque[Event] = deque()
        self._lost = 0
        self._lot = trio.lowlevel.ParkingLot()

    def put(self, event: Event) -> None:
        if len(self._items) >= self._maxlen:
            self._lost += 1
            if self._lost == 1:
                log.error("event consumer %r is %d events behind; events are being lost", self.name, self._maxlen)
            return
        self._items.append(event)
        self._lot.unpark_all()

    def get_nowait(self) -> Event | None:
        if self._lost:
            lost, self._lost = self._lost, 0
            log.error("event consumer %r lost %d events", self.name, lost)
            return Event(kind="events_lost", count=lost, at=time.time())
        return self._items.popleft() if self._items else None

    async def get(self) -> Event:
        while True:
            event = self.get_nowait()
            if event is not None:
                return event
            await self._lot.park()

    def __len__(self) -> int:
        return len(self._items)


class Subscription:
    """A latest-value view of the printers (``async with hub.subscribe() as updates``): :meth:`next` returns once
    a printer changed since the last call (the first call at once). Camera status does not count as a change.

    It holds no buffer, only the version it last saw, so a consumer that is slow simply skips the
    states in between and costs nothing while it is away.
    """

    def __init__(self, hub: StateHub) -> None:
        self._hub = hub
        self.seen = -1

    async def next(self) -> Mapping[str, PrinterObject]:
        """The snapshot of the newest version (shared with every other reader: never modify it)."""
        await self.wait()
        return self._hub.snapshot()

    async def wait(self) -> None:
        """:meth:`next` without the snapshot, for a consumer that reads state its own way."""
        await self._hub._wait_version_after(self.seen)
        self.seen = self._hub.version


class StateHub:
    def __init__(
        self,
        printers: Iterable[PrinterConfig],
        *,
        clock: Callable[[], float] = time.time,
        end_settle_s: float = JOB_END_SETTLE_S,
        ending_soon_min: Callable[[], float] = lambda: ENDING_SOON_MIN,
    ) -> None:
        self._clock = clock
        self._ending_soon_min = ending_soon_min  # read at each change: the settings page changes it live
        self._end_settle_s = end_settle_s
        self._settles_changed = trio.lowlevel.ParkingLot()
        self._printers: dict[str, _Printer] = {}
        for config in printers:
            self._printers[config.id] = _new_printer(config)
        self.version = 0
        self.camera_version = 0
        self._changed = trio.lowlevel.ParkingLot()
        self._camera_changed = trio.lowlevel.ParkingLot()
        self._news = trio.lowlevel.ParkingLot()  # either of the two
        self._snapshot: dict[str, PrinterObject] | None = None
        self._queues: list[EventQueue] = []
        self._recent: deque[Event] = deque(maxlen=RECENT_EVENTS)
        self._reply_listeners: list[Callable[[str, Reply], None]] = []
        self._report_listeners: list[Callable[[str, bytes], None]] = []
        self._hms_catalogs: dict[str, Catalog] = {}  # official texts by serial prefix (printer/hms_refresh.py)

    # -- reading -------------------------------------------------------------------------------------------
    def ids(self) -> list[str]:
        return list(self._printers)

    def has(self, printer_id: str) -> bool:
        return printer_id in self._printers

    def printer(self, printer_id: str) -> PrinterObject:
        """The public printer object (``GET /api/printers/<id>``, shared: never modify it); KeyError for an
        unknown id."""
        return self._printers[printer_id].public()

    def snapshot(self) -> Mapping[str, PrinterObject]:
        """Every printer's public object, built once per version (shared: never modify it)."""
        if self._snapshot is None:
            self._snapshot = {pid: p.public() for pid, p in self._printers.items()}
        return self._snapshot

    def printer_version(self, printer_id: str) -> int:
        """The :attr:`version` at which this printer last changed (its camera aside)."""
        return self._printers[printer_id].version

    def camera_status(self, printer_id: str) -> CameraStatus:
        return self._printers[printer_id].camera

    def capture(self, printer_id: str) -> MqttCapture:
        return self._printers[printer_id].capture

    def hms_describer(self, printer_id: str) -> Callable[[int, int], HmsEntry]:
        """How the state describes this printer's HMS codes now (its model and official texts), for a reader that
        describes codes the state no longer lists (the MQTT log); callable from any thread (the tables are frozen)."""
        printer = self._printers[printer_id]
        return functools.partial(decode_hms, model=printer.config.model, catalogs=self._catalogs_for(printer))

    def rejected_messages(self, printer_id: str) -> int:
        return self._printers[printer_id].rejected_messages

    def recent_events(self) -> list[Event]:
        """The last :data:`RECENT_EVENTS` events, oldest first."""
        return list(self._recent)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        """``async with hub.subscribe() as updates:`` then ``await updates.next()`` for each newer snapshot."""
        yield Subscription(self)

    @asynccontextmanager
    async def events(self, name: str, *, maxlen: int = DEFAULT_EVENT_QUEUE_SIZE) -> AsyncIterator[EventQueue]:
        """``async with hub.events("panel") as queue:`` every event from now on, in order, until the block ends."""
        queue = self.open_event_queue(name, maxlen=maxlen)
        try:
            yield queue
        finally:
            self._queues.remove(queue)

    def open_event_queue(self, name: str, *, maxlen: int = DEFAULT_EVENT_QUEUE_SIZE) -> EventQueue:
        """A queue open for the hub's lifetime (tests, and :meth:`events`, which also closes it)."""
        queue = EventQueue(name, maxlen)
        self._queues.append(queue)
        return queue

    async def wait_for_news(self, version: int, camera_version: int) -> None:
        """Return once a printer or a camera status changed since ``version`` and ``camera_version``."""
        while self.version <= version and self.camera_version <= camera_version:
            await self._news.park()

    def on_reply(self, listener: Callable[[str, Reply], None]) -> None:
        """Call ``listener(printer_id, reply)`` for every command reply (matched by ``sequence_id``)."""
        self._reply_listeners.append(listener)

    def on_report(self, listener: Callable[[str, bytes], None]) -> Callable[[], None]:
        """Call ``listener(printer_id, payload)`` with every message the hub accepted from a printer, as it came
        (reports, command replies, ``info`` answers; not the malformed ones), in trio's thread; it must not block.
        Returns the call that stops it."""
        self._report_listeners.append(listener)
        return lambda: self._report_listeners.remove(listener) if listener in self._report_listeners else None

    def raw_report(self, printer_id: str) -> Mapping[str, Any]:
        """The printer's ``print`` object as a full report would carry it now (``{}`` before its first report);
        shared: never modify it."""
        return self._printers[printer_id].raw.value

    def version_reply(self, printer_id: str) -> Mapping[str, Any] | None:
        """The printer's last answer to ``get_version`` (its ``info`` object), if the box saw one."""
        return self._printers[printer_id].version_reply

    def publish_event(self, event: Event) -> None:
        """An event that is not a state transition (the power service's warnings), to every event queue."""
        event = Event(**event)  # a copy: the caller's dict is not stamped
        event.setdefault("at", self._clock())
        self._recent.append(event)
        for queue in self._queues:
            queue.put(event)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Settle pending job ends whose error did not come in time (see the module's docstring)."""
        task_status.started()
        while True:
            deadlines = [p.end_settles_at for p in self._printers.values() if p.end_settles_at is not None]
            with trio.move_on_at(min(deadlines, default=math.inf)):
                await self._settles_changed.park()
            now = trio.current_time()
            for printer in self._printers.values():
                if printer.end_settles_at is not None and printer.end_settles_at <= now:
                    log.info("%s: the job ended without an error: cancelled", printer.config.id)
                    self._settle_as_cancelled(printer)

    # -- commands (printer/commands.py tells the hub what it sent and how the printer answered) -----------------
    def stop_sent(self, printer_id: str) -> None:
        """The box is sending a stop: the job's end, when it comes, is the owner's cancel."""
        printer = self._printers[printer_id]
        printer.stop_sent = True
        if _outcome(printer.state) == "pending":
            self._settle_as_cancelled(printer)

    def command_answered(self, printer_id: str, *, command: str, ok: bool, refused: bool) -> None:
        """The printer answered (or never answered: ``ok`` False) one of the box's commands."""
        printer = self._printers[printer_id]
        if command == "stop" and not ok:
            printer.stop_sent = False  # the job goes on; whatever ends it later is its own end
        if ok or refused:
            before = printer.public()
            printer.commands_refused = refused
            self._changed_from(printer, before)

    # -- the set of printers (the service, when settings change) ------------------------------------------------
    def add_printer(self, config: PrinterConfig) -> None:
        self._printers[config.id] = _new_printer(config)
        self._bump(self._printers[config.id])

    def remove_printer(self, printer_id: str) -> None:
        del self._printers[printer_id]
        self._bump(None)

    def update_printer_config(self, config: PrinterConfig) -> None:
        """New settings for a known printer; its state stays (the link reconnects with the new settings)."""
        printer = self._printers[config.id]
        before = printer.public()
        printer.config = config
        printer.capture.secrets = (config.access_code,)
        self._changed_from(printer, before)

    def set_job_file(self, printer_id: str, info: Mapping[str, Any] | None) -> None:
        """The current job's file as the job recorder knows it (``printer.job_file``, docs/api.md): fetching, ready
        with its planned grams, or unavailable with the reason; the used grams are computed at every build."""
        printer = self._printers[printer_id]
        before = printer.public()
        printer.job_file = dict(info) if info is not None else None
        self._changed_from(printer, before)

    def set_hms_catalogs(self, catalogs: dict[str, Catalog]) -> None:
        """New official texts (keyed by the first 3 characters of a serial): the HMS entries and print errors shown
        now are described again at once, so every reader switches to them without waiting for the next report."""
        self._hms_catalogs = dict(catalogs)
        for printer in self._printers.values():
            before = printer.to_json()
            printer.state = redescribe(printer.state, printer.config.model, self._catalogs_for(printer))
            self._changed_from(printer, before)

    def _catalogs_for(self, printer: _Printer) -> tuple[Catalog, ...]:
        catalog = self._hms_catalogs.get(printer.config.serial[:3])
        return () if catalog is None else (catalog,)

    # -- writing (printer links only) -------------------------------------------------------------------------
    def apply_message(self, printer_id: str, payload: bytes) -> Applied:
        printer = self._printers[printer_id]
        applied = apply_message(
            printer.state, payload, model=printer.config.model, baseline=not printer.baselined,
            catalogs=self._catalogs_for(printer),
        )
        if applied.rejected is not None:
            printer.rejected_messages += 1
            now = self._clock()
            if now - printer.last_reject_log >= REJECT_LOG_INTERVAL_S:
                printer.last_reject_log = now
                log.warning(
                    "%s: ignored a malformed report (%s); %d so far",
                    printer_id,
                    applied.rejected,
                    printer.rejected_messages,
                )
            return applied
        self._keep_raw(printer, applied.root)
        if self._report_listeners:
            raw = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else bytes(payload)
            for report_listener in list(self._report_listeners):
                try:
                    report_listener(printer_id, raw)
                except Exception:  # a listener's bug must not cost the box its state
                    log.exception("%s: a report listener failed", printer_id)
        if applied.dropped is not None and time.monotonic() - printer.last_drop_log >= REJECT_LOG_INTERVAL_S:
            printer.last_drop_log = time.monotonic()
            log.warning("%s: a report listed more than is kept, left out: %s", printer_id, applied.dropped)
        if applied.reply is not None:
            for listener in self._reply_listeners:
                listener(printer_id, applied.reply)
        before = printer.public()
        if applied.fun is not None:
            printer.signature_required = signature_required(applied.fun)
        listed = applied.commands_rejected
        if listed is not None:
            if listed and not printer.refusal_listed:
                printer.commands_refused = True
            elif not listed:
                printer.commands_refused = False  # the printer let go of its latch
            printer.refusal_listed = listed
            # The baseline (which errors are standing) is the first report that carries the HMS list;
            # a small P1 delta before the full report must not use it up.
            printer.baselined = True
        printer.state = _job_end_known_by_us(printer, before["state"], applied.state)
        self._settle_timer(printer)
        # A report arriving is what "online" means (a login without reports is not): the connection, the time
        # of the last report and the state change together, so the first report after start (no time before
        # it) is the baseline, and the first one after an outage is the one "connection_restored".
        printer.last_report_at = self._clock()
        printer.connection = "online"
        printer.connection_reason = None
        if before["connection"] != "online":
            log.info("%s: online", printer_id)
        self._changed_from(printer, before)
        return applied

    def set_connection(self, printer_id: str, connection: Connection, reason: str | None = None) -> None:
        printer = self._printers[printer_id]
        if (printer.connection, printer.connection_reason) == (connection, reason):
            return
        before = printer.public()
        if connection != printer.connection:
            log.info("%s: %s%s", printer_id, connection, f" ({reason})" if reason else "")
        printer.connection = connection
        printer.connection_reason = reason
        self._changed_from(printer, before)

    def set_camera(self, printer_id: str, camera: CameraStatus) -> None:
        """The camera's status (FrameHub): its own stream, :attr:`camera_version`; the printer's version stays."""
        printer = self._printers[printer_id]
        if camera == printer.camera:
            return
        printer.camera = CameraStatus(**camera)
        if printer.json is not None:
            printer.json = {**printer.json, "camera": printer.camera}
        self._snapshot = None
        self.camera_version += 1
        self._camera_changed.unpark_all()
        self._news.unpark_all()

    # -- internals --------------------------------------------------------------------------------------------
    @staticmethod
    def _keep_raw(printer: _Printer, root: Mapping[str, Any] | None) -> None:
        # The reducer's decoded message: the report is parsed once, whether or not an app ever asks for the copy.
        if root is None:
            return
        report = root.get("print")
        if isinstance(report, dict) and report.get("command") == "push_status" and not printer.raw.add(report):
            log.warning("%s: the printer's report kept growing new fields; its merged copy started over",
                        printer.config.id)
        info = root.get("info")
        if isinstance(info, dict) and info.get("command") == "get_version" and isinstance(info.get("module"), list):
            printer.version_reply = info

    def _settle_timer(self, printer: _Printer) -> None:
        pending = _outcome(printer.state) == "pending"
        if pending and printer.end_settles_at is None:
            printer.end_settles_at = trio.current_time() + self._end_settle_s
            self._settles_changed.unpark_all()
        elif not pending:
            printer.end_settles_at = None

    def _settle_as_cancelled(self, printer: _Printer) -> None:
        before = printer.public()
        printer.state = {**printer.state, "job_result": dict(CANCELLED_RESULT)}
        printer.end_settles_at = None
        printer.stop_sent = False
        self._changed_from(printer, before)

    def _changed_from(self, printer: _Printer, before: PrinterObject) -> None:
        after = printer.to_json()
        if after == before:
            return
        printer.json = after
        now = self._clock()
        found = derive_events(before, after)
        if any(e["kind"] in ("job_started", "job_joined") for e in found):
            printer.ending_soon = "waiting"  # a new job: its heads-up is still to come
        printer.ending_soon, soon = ending_soon(printer.ending_soon, after, self._ending_soon_min())
        if soon is not None:
            found.append(soon)
        for event in found:
            event.setdefault("at", now)
            self._recent.append(event)
            for queue in self._queues:
                queue.put(event)
        self._bump(printer)

    def _bump(self, printer: _Printer | None) -> None:
        self.version += 1
        if printer is not None:
            printer.version = self.version
        self._snapshot = None
        self._changed.unpark_all()
        self._news.unpark_all()

    async def _wait_version_after(self, seen: int) -> None:
        while self.version <= seen:
            await self._changed.park()


def _outcome(state: State) -> str | None:
    result = state.get("job_result")
    return result.get("outcome") if isinstance(result, dict) else None


def _job_end_known_by_us(printer: _Printer, before: State, after: State) -> State:
    """``after``, with the end of a job the box itself stopped counted as cancelled whatever the printer reports
    first (no error yet, or the reason it had paused); the stop is forgotten once a job starts or ends."""
    if job_phase(after) in IN_JOB and job_phase(before) not in IN_JOB:
        printer.stop_sent = False  # a new job: an old stop is not about it
    if not printer.stop_sent or after.get("gcode_state") != "FAILED":
        return after
    printer.stop_sent = False
    if _outcome(before) in ("cancelled", "failed"):
        return after  # an end already known before the stop went out
    return {**after, "job_result": dict(CANCELLED_RESULT)}


def _new_printer(config: PrinterConfig) -> _Printer:
    return _Printer(config=config, capture=MqttCapture((config.access_code,)), camera=_initial_camera(config))


def _initial_camera(config: PrinterConfig) -> CameraStatus:
    info = model_info(config.model)
    if config.camera == "off":
        return CameraStatus(kind=info.camera_kind, status="off", reason='camera = "off" in the config')
    return CameraStatus(
        kind=info.camera_kind, status="unavailable", reason="the camera relay is not part of this version"
    )
