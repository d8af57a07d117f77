"""``GET /ws``: the live feed of the page (and of anything else that wants it), on the front door's port.

Messages (JSON text, each with a ``type``; docs/api.md, "WebSocket /ws", describes them for clients):

- ``{"type": "snapshot", "printers": {<id>: <printer object>}, "events": [...]}`` first, and again (without
  ``events``) whenever the set of printers changes (it replaces every printer the client holds); ``events`` are the
  hub's recent events, oldest first, so a page that just loaded shows what happened before it came;
- ``{"type": "delta", "printer": <id>, "changes": <RFC 7386 merge patch>}`` against what *this connection*
  last received, so a client that skipped states is still exactly right (null and missing mean the same, see
  :mod:`bambupi.web.merge_patch`);
- ``{"type": "event", "kind": ..., ...}`` from the connection's own hub event queue, in order;
- ``{"type": "heartbeat"}`` after ``heartbeat_s`` without any other message, so the page notices a dead link.

Each connection has one sender task. State is latest-value: the hub watcher hands the sender at most one "state
changed" token, and the sender diffs the *current* snapshot against what it sent last, so a slow client skips
states and holds no backlog. Every send is bounded by ``send_timeout_s`` and a WebSocket ping must be answered
within ``heartbeat_s``; a client that fails either is disconnected, so it never slows the others or grows memory.
Clients may send small JSON objects (none are defined yet; they are ignored); binary or non-JSON frames are
refused with close code 1003 and frames over ``max_incoming_bytes`` with 1009.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, wrap_server_stream

from bambupi.hub import EventQueue, PrinterObject, StateHub, Subscription
from bambupi.web.auth import cross_site
from bambupi.web.frontdoor import NativeHandler, ReplayStream, Request, closing_error_response
from bambupi.web.merge_patch import diff

log = logging.getLogger("bambupi.web.ws")

WS_PATH: Final = "/ws"
CLOSE_UNSUPPORTED_DATA: Final = 1003
_CLOSE_WAIT_S: Final = 2.0
_ENCODED_CACHE_SIZE: Final = 16


@dataclass(frozen=True)
class WsLimits:
    max_clients: int = 100  # phones and tabs at once; the next handshake is answered 503
    heartbeat_s: float = 15.0
    send_timeout_s: float = 10.0
    handshake_timeout_s: float = 10.0
    max_incoming_bytes: int = 4096


Message = dict[str, Any]
_STATE_CHANGED: Final = object()


def encode(message: Message) -> str:
    return json.dumps(message, separators=(",", ":"), allow_nan=False)


def state_messages(sent: Mapping[str, PrinterObject], current: Mapping[str, PrinterObject]) -> list[Message]:
    """What brings a client holding ``sent`` up to ``current``: a snapshot if printers came or went, else deltas."""
    if sent.keys() != current.keys():
        return [{"type": "snapshot", "printers": dict(current)}]
    messages: list[Message] = []
    for printer_id, printer in current.items():
        changes = diff(sent[printer_id], printer)
        if changes:
            messages.append({"type": "delta", "printer": printer_id, "changes": changes})
    return messages


def is_websocket_upgrade(request: Request) -> bool:
    upgrade = (request.header("upgrade") or "").lower()
    return request.method == "GET" and "websocket" in upgrade


class WebSocketService:
    """The ``/ws`` endpoint. Add :meth:`router` to the service's ``native`` routers."""

    def __init__(self, hub: StateHub, limits: WsLimits | None = None) -> None:
        self.hub = hub
        self.limits = limits or WsLimits()
        self.clients = 0
        self._ids = itertools.count(1)
        # Clients that are in step receive the same bytes: the snapshot of a hub version and the encoded messages
        # from one version to another are computed once, not once per client.
        self._snapshot: tuple[int, dict[str, PrinterObject]] = (-1, {})
        self._encoded: dict[tuple[int, int], list[str]] = {}

    def current(self) -> tuple[int, dict[str, PrinterObject]]:
        """The hub's version and its snapshot (shared: never modify it)."""
        if self._snapshot[0] != self.hub.version:
            self._snapshot = (self.hub.version, self.hub.snapshot())
        return self._snapshot

    def catch_up(
        self, version: int, sent: Mapping[str, PrinterObject]
    ) -> tuple[int, dict[str, PrinterObject], list[str]]:
        """For a client holding ``sent`` (hub ``version``): the current version, its snapshot, the encoded messages."""
        now, current = self.current()
        key = (version, now)
        encoded = self._encoded.get(key)
        if encoded is None:
            encoded = [encode(message) for message in state_messages(sent, current)]
            if len(self._encoded) >= _ENCODED_CACHE_SIZE:
                self._encoded.pop(next(iter(self._encoded)))
            self._encoded[key] = encoded
        return now, current, encoded

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
        full = self.clients >= limits.max_clients
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
                        log.warning("WebSocket client limit (%d) reached; refusing a client", limits.max_clients)
                        body = encode({"error": "too many live connections", "status": 503})
                        await handshake.reject(503, body=body.encode())
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


class _Session:
    def __init__(
        self, service: WebSocketService, ws: WebSocketConnection, stream: trio.abc.Stream, number: int
    ) -> None:
        self.service = service
        self.hub = service.hub
        self.ws = ws
        self.stream = stream
        self.limits = service.limits
        self.name = f"websocket {number}"

    async def run(self) -> None:
        # The queue opens before the snapshot is taken, so no event between the two is lost; the recent events
        # are read in the same step, so none is both replayed and queued.
        queue = self.hub.open_event_queue(self.name)
        recent = self.hub.recent_events()
        subscription = self.hub.subscribe()
        try:
            async with trio.open_nursery() as nursery:
                work_in, work_out = trio.open_memory_channel[object](0)
                nursery.start_soon(self._watch_state, subscription, work_in.clone())
                nursery.start_soon(self._watch_events, queue, work_in)
                nursery.start_soon(self._receive, nursery.cancel_scope)
                nursery.start_soon(self._keepalive, nursery.cancel_scope)
                await self._send_loop(subscription, work_out, recent)
                nursery.cancel_scope.cancel()
        finally:
            self.hub.close_event_queue(queue)

    async def _watch_state(self, subscription: Subscription, work: trio.MemorySendChannel[object]) -> None:
        # With a 0-size channel this holds at most one token while the sender is busy: latest-value.
        async with work:
            while True:
                await subscription.wait()
                await work.send(_STATE_CHANGED)

    async def _watch_events(self, queue: EventQueue, work: trio.MemorySendChannel[object]) -> None:
        async with work:
            while True:
                await work.send(await queue.get())

    async def _send_loop(
        self, subscription: Subscription, work: trio.MemoryReceiveChannel[object], recent: list[Message]
    ) -> None:
        await subscription.wait()
        version, sent = self.service.current()
        if not await self._send(encode({"type": "snapshot", "printers": sent, "events": recent})):
            return
        while True:
            item: object = None
            with trio.move_on_after(self.limits.heartbeat_s):
                item = await work.receive()
            if item is None:
                messages = [encode({"type": "heartbeat"})]
            elif item is _STATE_CHANGED:
                version, sent, messages = self.service.catch_up(version, sent)
            else:
                assert isinstance(item, dict)
                messages = [encode({**item, "type": "event"})]
            for message in messages:
                if not await self._send(message):
                    return

    async def _send(self, message: str) -> bool:
        """Send one encoded message; False when the connection is gone or was cut off for being too slow."""
        try:
            with trio.fail_after(self.limits.send_timeout_s):
                await self.ws.send_message(message)
        except ConnectionClosed:
            return False
        except trio.TooSlowError:
            log.info("%s: the client did not take a message within %.0f s; disconnected",
                     self.name, self.limits.send_timeout_s)
            await trio.aclose_forcefully(self.stream)
            return False
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
        try:
            while True:
                await trio.sleep(self.limits.heartbeat_s)
                with trio.move_on_after(self.limits.heartbeat_s) as waited:
                    await self.ws.ping()
                if waited.cancelled_caught:
                    log.info("%s: no answer to a ping within %.0f s; disconnected", self.name,
                             self.limits.heartbeat_s)
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
