"""Notifier: turns hub events into messages and delivers them to every configured channel.

Per channel: its own event filter and HMS threshold, a dedup window (the same news is sent once), an offline
grace period, quiet hours (non-urgent messages are held and sent when they end), retries with backoff on
network errors and 5xx (a 4xx is final), and a log of the last deliveries for the web page.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Any, Final

import httpx
import trio

from bambupi import outgoing
from bambupi.config import NotifyConfig
from bambupi.notify.channels import build_request, secrets_of
from bambupi.notify.messages import PERISHABLE, TEST_KIND, Message, message_for, sample_message, wanted
from bambupi.secret import redact
from bambupi.state_hub import PrinterObject, StateHub

log = logging.getLogger("bambupi.notify")
# httpx logs every request URL at INFO, and a Telegram bot token or a Discord webhook key is part of the URL.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

RETRY_DELAYS_S: Final = (2.0, 10.0, 30.0)
TIMEOUT_S: Final = 10.0  # the whole request, answer included
# Only the status matters, and a service's answer can be as large as it likes (a 200 MB one took a Pi 3's RSS from
# 80 to 424 MiB): a few KiB are read, the rest never.
MAX_ANSWER_BYTES: Final = 4096
LOG_SIZE: Final = 100
QUEUE_SIZE: Final = 200
QUIET_POLL_S: Final = 30.0

Snapshot = Callable[[str], Awaitable[bytes | None]]  # a recent camera frame of a printer, None without one
JobEnergy = Callable[[str], tuple[float | None, float | None, str]]  # (kWh, cost, currency) of a printer's last job


def no_energy(printer_id: str) -> tuple[float | None, float | None, str]:
    return None, None, ""


@dataclass(frozen=True)
class Delivery:
    at: float
    channel: str
    kind: str
    title: str
    status: str  # sent | failed | dropped | merged | held; queued only in the answer to a test click
    detail: str
    attempts: int

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at, "channel": self.channel, "kind": self.kind, "title": self.title,
            "status": self.status, "detail": self.detail, "attempts": self.attempts,
        }


class _Final(Exception):
    """A delivery that must not be retried (the service said no: 4xx)."""


class _Again(Exception):
    """The service could not take it now (5xx, 429): worth another try."""


class Channel:
    """One channel's queue and sender."""

    def __init__(self, config: NotifyConfig, notifier: Notifier) -> None:
        self.config = config
        self.notifier = notifier
        self.send_channel, self.receive_channel = trio.open_memory_channel[tuple[Message, str | None]](QUEUE_SIZE)
        self.recent: dict[str, float] = {}  # dedup key -> when sent
        self.held: deque[tuple[Message, str | None]] = deque(maxlen=QUEUE_SIZE)
        self.offline_told: set[str] = set()
        self.secrets = secrets_of(config)
        self.test_pending = False  # a test message waits in the queue or is on its way: more clicks add none

    def offer(self, message: Message, event: dict[str, Any]) -> None:
        if not self.config.enabled or not wanted(message, event, self.config.events, self.config.min_severity):
            return
        now = self.notifier.clock()
        if message.dedup_key:
            last = self.recent.get(message.dedup_key)
            if last is not None and now - last < self.config.dedup_window_s:
                self.notifier.record(self, message, "merged", "same news within the dedup window", 0)
                return
            self.recent[message.dedup_key] = now
            if len(self.recent) > 1000:
                self.recent = {k: t for k, t in self.recent.items() if now - t < self.config.dedup_window_s}
        if not message.urgent and self.notifier.quiet() and message.kind in PERISHABLE:
            self.notifier.record(self, message, "dropped", "quiet hours (stale by their end)", 0)
            return
        if not message.urgent and self.notifier.quiet():
            self.held.append((message, message.printer))
            self.notifier.record(self, message, "held", "quiet hours", 0)
            return
        self.enqueue(message, message.printer)

    def enqueue(self, message: Message, printer: str | None) -> None:
        try:
            self.send_channel.send_nowait((message, printer))
        except trio.WouldBlock:
            self.notifier.record(self, message, "dropped", "the queue is full (the service is unreachable?)", 0)

    async def run(self) -> None:
        async for message, printer in self.receive_channel:
            try:
                await self.deliver(message, printer)
            except Exception as exc:
                # A bug in one delivery costs that message, never the notifier (and with it the whole box). The
                # type only: the message of an unexpected error may quote a setting.
                log.error("notify %s: delivery failed unexpectedly (%s)", self.config.name, type(exc).__name__)
                self.notifier.record(self, message, "failed", f"internal error ({type(exc).__name__})", 1)
            finally:
                if message.kind == TEST_KIND:
                    self.test_pending = False

    def queue_test(self) -> Delivery:
        """Queue a test message (quiet hours and filters do not apply); its outcome goes to the delivery log.

        The web page's request does not wait for it: a service that hangs would hold a web thread per click."""
        message = sample_message()
        queued = Delivery(self.notifier.clock(), self.config.name, message.kind, message.title, "queued", "", 0)
        if self.test_pending:
            return replace(queued, detail="a test message is already on its way")
        try:
            self.send_channel.send_nowait((message, None))
        except (trio.WouldBlock, trio.ClosedResourceError):
            return self.notifier.record(self, message, "dropped", "the queue is full (the service is unreachable?)", 0)
        self.test_pending = True
        return queued

    async def deliver(self, message: Message, printer: str | None) -> Delivery:
        image = None
        if self.config.attach_snapshot and printer is not None and self.notifier.snapshot is not None:
            try:
                image = await self.notifier.snapshot(printer)
            except Exception:  # a camera problem must not cost the message
                log.exception("snapshot for a notification failed")
        attempts = 0
        detail = ""
        for delay in (*self.notifier.retry_delays, None):
            attempts += 1
            try:
                detail = await self._send_once(build_request(self.config, message, image))
                return self.notifier.record(self, message, "sent", detail, attempts)
            except _Final as exc:
                detail = str(exc)
                break
            except (httpx.HTTPError, OSError, _Again, trio.TooSlowError) as exc:
                detail = self._describe(exc)
            except (httpx.InvalidURL, ValueError) as exc:
                # The request cannot be built from these settings (a token httpx cannot put in a header, a URL it
                # cannot parse): no retry helps, and one channel's bad setting must not stop the notifier (and
                # with it the box). Name the type only: the message may quote the setting.
                detail = f"cannot send with these settings ({type(exc).__name__}); check the channel's token and URL"
                break
            if delay is not None:
                await trio.sleep(delay)
        log.warning("notify %s: giving up on %r after %d attempts: %s", self.config.name, message.title, attempts,
                    detail)
        return self.notifier.record(self, message, "failed", detail, attempts)

    async def _send_once(self, request: Any) -> str:
        answer = await outgoing.send(
            self.notifier.client, request.method, request.url, deadline_s=self.notifier.timeout_s,
            max_bytes=MAX_ANSWER_BYTES, headers=request.headers, json=request.json, data=request.data,
            content=request.content, files=request.files, timeout=self.notifier.timeout_s,
        )
        if 200 <= answer.status < 300:
            return f"HTTP {answer.status}"
        # The status and its standard phrase only, never the answer's body: an error page may repeat the request,
        # and with it the key in the URL or the form (a Discord webhook key came back that way).
        try:
            text = f"HTTP {answer.status} {HTTPStatus(answer.status).phrase}"
        except ValueError:
            text = f"HTTP {answer.status}"
        if 400 <= answer.status < 500 and answer.status != 429:
            raise _Final(text)
        raise _Again(text)

    def _describe(self, exc: Exception) -> str:
        # httpx messages can quote the URL, which holds a Telegram token or a Discord webhook key.
        if isinstance(exc, _Again):
            text = str(exc)
        elif isinstance(exc, trio.TooSlowError | httpx.TimeoutException):
            text = "timeout"
        else:
            text = f"{type(exc).__name__}: {exc}"
        return redact(text, *self.secrets)


class Notifier:
    def __init__(
        self,
        hub: StateHub,
        channels: tuple[NotifyConfig, ...],
        *,
        quiet: Callable[[], bool] = lambda: False,
        snapshot: Snapshot | None = None,
        job_energy: JobEnergy = no_energy,
        retry_delays: tuple[float, ...] = RETRY_DELAYS_S,
        timeout_s: float = TIMEOUT_S,
        quiet_poll_s: float = QUIET_POLL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.hub = hub
        self.quiet = quiet
        self.snapshot = snapshot
        self.job_energy = job_energy
        self.retry_delays = retry_delays
        self.timeout_s = timeout_s
        self.quiet_poll_s = quiet_poll_s
        self.clock = clock
        self.channels = {c.name: Channel(c, self) for c in channels}
        self.log: deque[Delivery] = deque(maxlen=LOG_SIZE)
        self.client: httpx.AsyncClient
        self._nursery: trio.Nursery | None = None
        self._job_started: dict[str, float] = {}  # trio clock, when each printer's job started
        self._progress: dict[str, tuple[str | None, int]] = {}  # printer -> (job, last milestone crossed)
        self._offline_since: dict[str, float] = {}

    def record(self, channel: Channel, message: Message, status: str, detail: str, attempts: int) -> Delivery:
        delivery = Delivery(self.clock(), channel.config.name, message.kind, message.title, status, detail, attempts)
        self.log.append(delivery)
        return delivery

    async def run(self, *, task_status: trio.TaskStatus[Notifier] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with self.hub.events("notify") as queue, httpx.AsyncClient() as client, \
                    trio.open_nursery() as nursery:
                self.client = client
                self._nursery = nursery
                for channel in self.channels.values():
                    nursery.start_soon(channel.run)
                nursery.start_soon(self._release_held)
                if any(c.config.progress and "progress" in c.config.events for c in self.channels.values()):
                    nursery.start_soon(self._watch_progress)
                task_status.started(self)
                while True:
                    event = await queue.get()
                    self.handle(event, nursery)
        finally:
            self._nursery = None

    def handle(self, event: Mapping[str, Any], nursery: trio.Nursery) -> None:
        printer = event.get("printer")
        if not isinstance(printer, str) or not self.hub.has(printer):
            return
        kind = event.get("kind")
        if kind == "job_started":
            self._job_started[printer] = trio.current_time()  # monotonic: "Took" whatever NTP does meanwhile
        if kind == "connection_lost":
            self._offline_since[printer] = self.clock()
            for channel in self.channels.values():
                nursery.start_soon(self._offline_after_grace, channel, printer, dict(event))
            return
        if kind == "connection_restored":
            self._offline_since.pop(printer, None)
            for channel in self.channels.values():
                if printer in channel.offline_told:
                    channel.offline_told.discard(printer)
                    self._offer(channel, {**event, "kind": "printer_online"})
            return
        started = None
        if kind in ("job_finished", "job_failed", "job_cancelled"):
            began = self._job_started.pop(printer, None)
            at = event.get("at")
            if began is not None and isinstance(at, int | float):
                started = at - (trio.current_time() - began)  # the wall-clock start its monotonic length gives
            energy, cost, currency = self.job_energy(printer)
            event = {**event, "energy_kwh": energy, "cost": cost, "currency": currency}
        for channel in self.channels.values():
            self._offer(channel, dict(event), started_at=started)

    def _offer(self, channel: Channel, event: dict[str, Any], *, started_at: float | None = None) -> None:
        name = self.hub.printer(event["printer"])["name"] if self.hub.has(event["printer"]) else event["printer"]
        message = message_for(event, name, started_at=started_at)
        if message is not None:
            channel.offer(message, event)

    async def _offline_after_grace(self, channel: Channel, printer: str, event: dict[str, Any]) -> None:
        lost_at = self._offline_since.get(printer)
        await trio.sleep(channel.config.offline_grace_s)
        if self._offline_since.get(printer) != lost_at or not self.hub.has(printer):
            return  # back online (or lost again: that loss has its own timer)
        if self.hub.printer(printer)["connection"] == "online":
            return
        reason = self.hub.printer(printer)["connection_reason"] or event.get("reason")
        channel.offline_told.add(printer)
        self._offer(channel, {**event, "kind": "printer_offline", "reason": reason})

    async def _release_held(self) -> None:
        while True:
            await trio.sleep(self.quiet_poll_s)
            if self.quiet():
                continue
            for channel in self.channels.values():
                while channel.held:
                    channel.enqueue(*channel.held.popleft())

    async def _watch_progress(self) -> None:
        async with self.hub.subscribe() as updates:
            while True:
                for printer_id, printer in (await updates.next()).items():
                    self._check_progress(printer_id, printer)

    def _check_progress(self, printer_id: str, printer: PrinterObject) -> None:
        state = printer["state"]
        percent, job = state.get("percent"), state.get("subtask_name")
        if printer["phase"] != "printing" or not isinstance(percent, int):
            return
        last_job, last = self._progress.get(printer_id, (None, 0))
        if job != last_job:
            last = 0
        for channel in self.channels.values():
            crossed = [m for m in channel.config.progress if last < m <= percent]
            if crossed:
                self._offer(channel, {"kind": "progress", "printer": printer_id, "job": job, "percent": crossed[-1]})
        self._progress[printer_id] = (job, max(last, percent))

    def set_channels(self, configs: tuple[NotifyConfig, ...]) -> None:
        """New channel settings, live: old channels finish what they are sending, new ones take over."""
        for channel in self.channels.values():
            channel.send_channel.close()
        self.channels = {c.name: Channel(c, self) for c in configs}
        if self._nursery is None:
            return  # not running now: :meth:`run` starts them
        for channel in self.channels.values():
            self._nursery.start_soon(channel.run)

    def queue_test(self, name: str) -> Delivery | None:
        """Queue a test message on channel ``name``: what was queued, or None when there is no such channel."""
        channel = self.channels.get(name)
        return channel.queue_test() if channel is not None else None

    def deliveries(self) -> list[dict[str, Any]]:
        return [d.to_json() for d in self.log]
