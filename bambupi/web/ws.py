"""``GET /ws``: the live feed of the page (and of anything else that wants it), on the front door's port.

Messages (JSON text, each with a ``type``; docs/api.md, "WebSocket /ws", describes them for clients):

- ``{"type": "snapshot", "printers": {<id>: <printer object>}, "events": [...]}`` first, and again (without
  ``events``) whenever the set of printers changes (it replaces every printer the client holds); ``events`` are the
  hub's recent events, oldest first, so a page that just loaded shows what happened before it came;
- ``{"type": "delta", "printer": <id>, "changes": <RFC 7386 merge patch>}`` against what *this connection*
  last received, so a client that skipped states is still exactly right (null and missing mean the same, see
  :mod:`bambupi.web.merge_patch`);
- ``{"type": "event", "kind": ..., ...}`` from the connection's own hub event queue, in order;
- ``{"type": "heartbeat"}`` after ``heartbeat_s`` without any other message, so the page notices a dead link;
- ``{"type": "health", "failing": [...]}``: the parts of the box that failed and wait for their restart (the
  Supervisor's :meth:`~bambupi.component.HealthBoard.failing`), whenever that changes, and after the first snapshot
  while any part is failing; ``[]`` when all run again. The page shows a banner per entry.

The fan-out is one watcher (:meth:`WebSocketService.run`) for every client. It follows the hub's printers and
cameras and its events, and frames each change **once**: the messages that bring a client from one step to the
next, as text, the same for every client in step. The watcher writes those bytes itself to every client that is in
step, straight into the client's socket without waiting (:meth:`_Wire.write_now`), so fifty clients cost fifty
system calls and no task switch. A client the watcher cannot finish that way (its socket buffer is full, a pong of
trio-websocket's is going out, it is not a plain TCP stream) is handed to its connection's own sender task, which
writes the rest within the send timeout and then catches up: a client that fell behind (a slow phone) is brought
from what it holds to the newest view by one diff, computed once for every client as far behind, so it skips
states and holds no backlog. Events go to a log shared by every client (never dropped: a client whose send could
not keep up with ``EVENT_LOG_SIZE`` events gets ``events_lost`` with the count, as a hub event queue would say), and
reach each client before the state that follows them. Only printers whose object changed are diffed, so the cost
of a report does not grow with the number of printers.

Every send is bounded by ``send_timeout_s``, and a line quiet for ``heartbeat_s`` gets a heartbeat and a WebSocket
ping that must be answered within ``heartbeat_s``; a client that fails either is disconnected, so it never slows the
others or grows memory.
Clients may send small JSON objects (none are defined yet; they are ignored); binary or non-JSON frames are
refused with close code 1003 and frames over ``max_incoming_bytes`` with 1009.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, wrap_server_stream

from bambupi.state_hub import DEFAULT_EVENT_QUEUE_SIZE, RECENT_EVENTS, Event, EventQueue, PrinterObject, StateHub
from bambupi.web.auth import cross_site
from bambupi.web.frontdoor import NativeHandler, ReplayStream, Request, closing_error_response
from bambupi.web.merge_patch import diff

log = logging.getLogger("bambupi.web.ws")

WS_PATH: Final = "/ws"
CLOSE_UNSUPPORTED_DATA: Final = 1003
_CLOSE_WAIT_S: Final = 2.0
_CATCH_UP_CACHE_SIZE: Final = 16
EVENT_LOG_SIZE: Final = DEFAULT_EVENT_QUEUE_SIZE  # as far behind as a client's events may fall before some are lost


@dataclass(frozen=True)
class WsLimits:
    max_clients: int = 100  # phones and tabs at once; the next handshake is answered 503
    heartbeat_s: float = 15.0
    send_timeout_s: float = 10.0
    handshake_timeout_s: float = 10.0
    max_incoming_bytes: int = 4096


Message = dict[str, Any]
View = Mapping[str, PrinterObject]  # every printer as the clients hold it; replaced, never modified


class HealthFeed(Protocol):
    """The box's parts' health as the page shows it (:class:`bambupi.component.HealthBoard`)."""

    @property
    def version(self) -> int: ...

    async def wait_for_change(self, version: int) -> None: ...

    def failing(self) -> list[dict[str, Any]]: ...


def encode(message: Mapping[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), allow_nan=False)


def text_frame(text: str) -> bytes:
    """``text`` as one WebSocket text frame the way a server sends it (RFC 6455 5.2: final, unmasked), so a message
    for every client is framed once, not once per client."""
    data = text.encode()
    size = len(data)
    if size < 126:
        head = bytes((0x81, size))
    elif size < 1 << 16:
        head = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return head + data


def state_messages(sent: View, current: View) -> list[Message]:
    """What brings a client holding ``sent`` up to ``current``: a snapshot if printers came or went, else deltas.
    A printer whose object is the same object in both is unchanged and costs no diff."""
    if sent.keys() != current.keys():
        return [{"type": "snapshot", "printers": dict(current)}]
    messages: list[Message] = []
    for printer_id, printer in current.items():
        before = sent[printer_id]
        if before is printer:
            continue
        changes = diff(before, printer)
        if changes:
            messages.append({"type": "delta", "printer": printer_id, "changes": changes})
    return messages


def is_websocket_upgrade(request: Request) -> bool:
    upgrade = (request.header("upgrade") or "").lower()
    return request.method == "GET" and "websocket" in upgrade


@dataclass(frozen=True)
class _Step:
    """The view at one step of the watcher, and the encoded messages that lead to it from the step before."""

    number: int
    view: View
    frames: list[bytes]


class WebSocketService:
    """The ``/ws`` endpoint: start :meth:`run` (the one watcher), and add :meth:`router` to the front door's routers."""

    def __init__(self, hub: StateHub, limits: WsLimits | None = None, *, health: HealthFeed | None = None) -> None:
        self.hub = hub
        self.limits = limits or WsLimits()
        self.health = health
        self.clients = 0
        self._ids = itertools.count(1)
        self._step = _Step(0, {}, [])
        self._seen: dict[str, tuple[int, object]] = {}  # per printer: its hub version and camera status object
        self._catch_up: dict[tuple[int, int], list[bytes]] = {}
        self._events: deque[tuple[int, Event, bytes]] = deque(maxlen=EVENT_LOG_SIZE)
        self._event_count = 0  # events logged so far: the number of the newest
        self._sessions: dict[_Session, None] = {}  # every connection past its handshake, oldest first
        self._running = False

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Follow the hub for every client; the endpoint refuses clients (503) until this runs."""
        async with self.hub.events("websocket") as queue, trio.open_nursery() as nursery:
            self._events.clear()  # run again after a failure: the hub's recent events are all there is to show
            for event in self.hub.recent_events():
                self._log_event(event)  # what a page that loads now shows under "Recent events"
            self._advance()
            nursery.start_soon(self._follow_events, queue)
            if self.health is not None:
                nursery.start_soon(self._follow_health, self.health)
            self._running = True
            try:
                task_status.started()
                await self._follow_state(queue)
            finally:
                self._running = False

    async def _follow_state(self, queue: EventQueue) -> None:
        version, camera_version = self.hub.version, self.hub.camera_version
        while True:
            await self.hub.wait_for_news(version, camera_version)
            version, camera_version = self.hub.version, self.hub.camera_version
            self._log_waiting_events(queue)  # a change's events are queued before it: they go out first
            self._advance()
            self._fan_out()

    async def _follow_events(self, queue: EventQueue) -> None:
        while True:
            self._log_event(await queue.get())
            self._log_waiting_events(queue)
            self._fan_out()

    async def _follow_health(self, health: HealthFeed) -> None:
        while True:
            await health.wait_for_change(health.version)
            self._fan_out()

    def _health_version(self) -> int:
        return 0 if self.health is None else self.health.version

    def _failing(self) -> list[dict[str, Any]]:
        return [] if self.health is None else self.health.failing()

    def _log_waiting_events(self, queue: EventQueue) -> None:
        while (event := queue.get_nowait()) is not None:
            self._log_event(event)

    def _log_event(self, event: Event) -> None:
        self._event_count += 1
        self._events.append((self._event_count, event, text_frame(encode({**event, "type": "event"}))))

    def _advance(self) -> None:
        """One step: the printers that changed since the last one, diffed and framed once for every client."""
        hub, before = self.hub, self._step.view
        view: dict[str, PrinterObject] = {}
        seen: dict[str, tuple[int, object]] = {}
        for printer_id in hub.ids():
            mark = (hub.printer_version(printer_id), hub.camera_status(printer_id))
            held = before.get(printer_id)
            if held is not None and self._seen.get(printer_id) == mark:
                view[printer_id] = held  # unchanged: the same object, no diff
            else:
                view[printer_id] = hub.printer(printer_id)
            seen[printer_id] = mark
        self._seen = seen
        frames = [text_frame(encode(message)) for message in state_messages(before, view)]
        if not frames and self._step.number > 0:
            return
        self._step = _Step(self._step.number + 1, view, frames)

    def _fan_out(self) -> None:
        """Bring every session that sleeps in step up to date: its news written straight to its socket when it
        takes them whole now, else handed to the session's task (:class:`_Wire` says when that is)."""
        now, events, health = self._step, self._event_count, self._health_version()
        news: dict[tuple[int, int], bytes] = {}  # by where a client is: the same bytes for every client there
        sent_at = trio.current_time()
        for session in self._sessions:
            if not session.asleep:
                continue  # its task is at it, and looks again before it sleeps
            if session.health_sent != health:
                session.wake()  # a health message is made for each send (its countdown): rare, the task's
                continue
            if session.is_current(now, events):
                continue
            key = (session.step.number, session.events_sent)
            data = news.get(key)
            if data is None:
                data, lost = self._news_since(session.step, session.events_sent)
                if lost:
                    session.wake()  # the task says so in the log
                    continue
                news[key] = data
            written = session.wire.write_now(data)
            if written is None:
                session.wake()
                continue
            session.step, session.events_sent, session.sent_at = now, events, sent_at
            if written < len(data):
                session.unsent = data[written:]
                session.wake()

    def _news_since(self, step: _Step, events_sent: int) -> tuple[bytes, int]:
        """For a client at ``step`` that has had ``events_sent`` events: the framed events since then and the
        messages to the current step, in that order, as one write; and how many events it has lost (it is further
        behind than the log keeps)."""
        frames: list[bytes] = []
        lost = 0
        newer = self._event_count - events_sent
        if newer > len(self._events):
            lost, newer = newer - len(self._events), len(self._events)
            frames.append(text_frame(encode({"type": "event", "kind": "events_lost", "count": lost})))
        frames += [self._events[-back][2] for back in range(newer, 0, -1)]
        frames += self._frames_since(step)
        return frames[0] if len(frames) == 1 else b"".join(frames), lost

    def _frames_since(self, step: _Step) -> list[bytes]:
        """For a client at ``step``: the framed messages to the current step (shared: the same list for all)."""
        now = self._step
        if step.number + 1 == now.number:
            return now.frames
        key = (step.number, now.number)
        found = self._catch_up.get(key)
        if found is None:
            found = [text_frame(encode(message)) for message in state_messages(step.view, now.view)]
            if len(self._catch_up) >= _CATCH_UP_CACHE_SIZE:
                self._catch_up.pop(next(iter(self._catch_up)))
            self._catch_up[key] = found
        return found

    def router(self, request: Request) -> NativeHandler | None:
        if request.path == WS_PATH and is_websocket_upgrade(request):
            if cross_site(request.header("Origin"), request.header("Host")):
                # Browsers let any page open a WebSocket anywhere: without this, every site a visitor on the LAN
                # opens could read the printers' live state through the visitor's browser.
                return _refuse_cross_site
            return self.serve
        return None

    async def serve(self, stream: trio.abc.Stream, request: Request, replay: bytes) -> None:
        limits = self.limits
        # Reserve the slot before the first await, so a burst of handshakes cannot overshoot the limit.
        full = self.clients >= limits.max_clients or not self._running
        if not full:
            self.clients += 1
        try:
            async with trio.open_nursery() as nursery:
                ws: WebSocketConnection | None = None
                with trio.move_on_after(limits.handshake_timeout_s):
                    handshake = await wrap_server_stream(
                        nursery, ReplayStream(stream, replay), message_queue_size=4,
                        max_message_size=limits.max_incoming_bytes,
                    )
                    if full:
                        why = "too many live connections" if self._running else "the live feed is not running"
                        log.warning("WebSocket: refusing a client (%s)", why)
                        await handshake.reject(503, body=encode({"error": why, "status": 503}).encode())
                    else:
                        ws = await handshake.accept()
                if ws is not None:
                    await _Session(self, ws, stream, next(self._ids)).run()
                nursery.cancel_scope.cancel()  # trio-websocket's reader task
        finally:
            if not full:
                self.clients -= 1


async def _refuse_cross_site(stream: trio.abc.Stream, request: Request, replay: bytes) -> None:
    with trio.move_on_after(_CLOSE_WAIT_S):
        await stream.send_all(closing_error_response(403, "cross-site WebSocket refused: open the page from this box"))


class _Wire:
    """A connection's way out for the shared frames, beside trio-websocket (pinned below 0.13), which keeps the rest
    of the protocol (handshake, pings and pongs, close, what the client sends): the one place that knows its private
    parts, the connection's send lock and stream.

    Frames are written under that lock, so they never interleave with a pong or a close it sends meanwhile. Framing a
    message once for every client and writing it as is costs a third of going through the connection's
    ``send_message`` per client."""

    def __init__(self, ws: WebSocketConnection, stream: trio.abc.Stream) -> None:
        self.ws = ws
        self._lock: trio.StrictFIFOLock = ws._stream_lock
        self._stream: trio.abc.Stream = ws._stream
        # The front door serves plain TCP. Any other stream (TLS, should it ever wrap one) holds its own state
        # between the bytes and the socket: only :meth:`send` writes to it, through the stream.
        self._socket = stream.socket if isinstance(stream, trio.SocketStream) else None

    @property
    def open(self) -> bool:
        return self.ws.closed is None

    def write_now(self, data: bytes) -> int | None:
        """Write what the client's socket takes now, without waiting: how many bytes that was (0 when its buffer is
        full), or None when only :meth:`send` may write (trio-websocket is sending, the connection is closing, not
        a plain TCP stream, a broken socket that :meth:`send` will report)."""
        if self._socket is None or self._lock.locked() or self.ws.closed is not None:
            return None
        fd = self._socket.fileno()
        if fd < 0:
            return None
        try:
            # The socket is non-blocking (trio's): a full buffer raises instead of waiting. Python ignores SIGPIPE,
            # so a client gone is an OSError here, not a signal.
            return os.write(fd, data)
        except BlockingIOError:
            return 0
        except OSError:
            return None

    async def send(self, data: bytes) -> None:
        """Write ``data`` whole, waiting for the client as long as it takes (the caller bounds that)."""
        lock = self._lock
        # Taken without a checkpoint when free (nearly always): ``async with lock`` yields first, so the sessions a
        # change wakes would all take their turn at the lock before the first of them sends.
        try:
            lock.acquire_nowait()
        except trio.WouldBlock:
            await lock.acquire()
        try:
            await self._stream.send_all(data)
        finally:
            lock.release()


class _Session:
    def __init__(
        self, service: WebSocketService, ws: WebSocketConnection, stream: trio.abc.Stream, number: int
    ) -> None:
        self.service = service
        self.ws = ws
        self.wire = _Wire(ws, stream)
        self.stream = stream
        self.limits = service.limits
        self.name = f"websocket {number}"
        self.sent_at = trio.current_time()  # when the last message went out (trio's clock)
        # Where the client is: the step and the number of events it has been sent (or handed, in ``unsent``), and
        # the health version it was told. The watcher moves them for a session asleep; its task, for one awake.
        self.step = service._step
        self.events_sent = service._event_count
        self.health_sent = service._health_version()
        self.unsent = b""  # the end of a write the watcher began: the task finishes it before anything else
        self._sending = trio.CancelScope()
        self._asleep = trio.lowlevel.ParkingLot()

    @property
    def asleep(self) -> bool:
        """In step when it went to sleep: the watcher may write to it."""
        return bool(self._asleep)

    def is_current(self, step: _Step, events: int) -> bool:
        return self.step is step and self.events_sent == events

    def wake(self) -> None:
        self._asleep.unpark_all()

    async def run(self) -> None:
        self.service._sessions[self] = None
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._receive, nursery.cancel_scope)
                nursery.start_soon(self._keepalive, nursery.cancel_scope)
                # One scope for every send of the session, its deadline set for each send, instead of a new scope
                # per message: with fifty clients at 25 reports a second, making and dropping scopes was a fifth of
                # the service's time.
                with trio.CancelScope() as self._sending:
                    await self._send_loop()
                if self._sending.cancelled_caught:
                    log.info("%s: the client did not take a message within %.0f s; disconnected",
                             self.name, self.limits.send_timeout_s)
                    await trio.aclose_forcefully(self.stream)
                nursery.cancel_scope.cancel()
        finally:
            del self.service._sessions[self]

    async def _send_loop(self) -> None:
        service = self.service
        # The view and the events logged so far are read in one step: no event is both in the snapshot's recent
        # events and sent after it, and none between the two is missed.
        self.step, self.events_sent = service._step, service._event_count
        recent = [event for _, event, _ in list(service._events)[-RECENT_EVENTS:]]
        snapshot = {"type": "snapshot", "printers": dict(self.step.view), "events": recent}
        if not await self._send(text_frame(encode(snapshot))):
            return
        self.health_sent = service._health_version()
        failing = service._failing()  # made per send, for a countdown as of now: rare (a part fails or runs again)
        if failing and not await self._send(text_frame(encode({"type": "health", "failing": failing}))):
            return
        while True:
            if self.unsent:
                unsent, self.unsent = self.unsent, b""
                if not await self._send(unsent):
                    return
            while self.health_sent != service._health_version():  # again if it changed while it was sent
                self.health_sent = service._health_version()
                if not await self._send(text_frame(encode({"type": "health", "failing": service._failing()}))):
                    return
            if self.is_current(service._step, service._event_count):
                await self._asleep.park()  # the quiet line's heartbeat is _keepalive's
                continue
            news, lost = service._news_since(self.step, self.events_sent)
            if lost:
                log.error("%s: %d events lost (the client is too slow)", self.name, lost)
            self.step, self.events_sent = service._step, service._event_count
            # In one write: a client that fell behind gets its catch-up in one go.
            if news and not await self._send(news):
                return

    async def _send(self, frames: bytes) -> bool:
        """Send framed messages within ``send_timeout_s`` (else :meth:`run` cuts the client off); False when the
        connection is gone."""
        if not self.wire.open:
            return False
        self._sending.deadline = trio.current_time() + self.limits.send_timeout_s
        try:
            await self.wire.send(frames)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        self._sending.deadline = math.inf
        self.sent_at = trio.current_time()
        return True

    async def _receive(self, done: trio.CancelScope) -> None:
        try:
            while True:
                message = await self.ws.get_message()
                problem = _incoming_problem(message)
                if problem is not None:
                    log.info("%s: %s; closing", self.name, problem)
                    with trio.move_on_after(_CLOSE_WAIT_S):
                        await self.ws.aclose(CLOSE_UNSUPPORTED_DATA, problem)
                    break
        except ConnectionClosed:
            pass  # the client left, or sent a frame over the size limit (closed with 1009 by trio-websocket)
        done.cancel()

    async def _keepalive(self, done: trio.CancelScope) -> None:
        """After ``heartbeat_s`` without a message: a heartbeat (the page's sign of life) and a ping the client
        must answer within ``heartbeat_s`` (the box's). A client that is busy receiving needs neither: a dead one
        is cut off by the send timeout instead."""
        heartbeat_s = self.limits.heartbeat_s
        try:
            while True:
                await trio.sleep_until(self.sent_at + heartbeat_s)
                if trio.current_time() < self.sent_at + heartbeat_s:
                    continue  # a message went out meanwhile
                with trio.move_on_after(heartbeat_s) as waited:
                    await self.ws.send_message(_HEARTBEAT)
                    self.sent_at = trio.current_time()
                    await self.ws.ping()
                if waited.cancelled_caught:
                    log.info("%s: no answer to a ping within %.0f s; disconnected", self.name, heartbeat_s)
                    await trio.aclose_forcefully(self.stream)
                    break
        except ConnectionClosed:
            pass
        done.cancel()


def _incoming_problem(message: str | bytes) -> str | None:
    if isinstance(message, bytes):
        return "binary frames are not accepted"
    try:
        parsed = json.loads(message)
    except (ValueError, RecursionError):
        return "expected a JSON object"
    return None if isinstance(parsed, dict) else "expected a JSON object"


_HEARTBEAT: Final = encode({"type": "heartbeat"})
