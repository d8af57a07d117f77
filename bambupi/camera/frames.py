"""FrameHub: the latest camera frame of every printer, from exactly one upstream connection per printer.

Every consumer (MJPEG viewers, snapshot.jpg, the snapshot history) reads frames here; nobody else opens a camera
connection. The upstream connects on demand, when the first viewer arrives or a snapshot is wanted, and closes
``linger_s`` after the last one leaves (a viewer that reloads the page does not cost a reconnect). With
``keep_open_while_printing`` it stays open while the printer prints, so an end-of-print photo is always at hand.

Frames are latest-value: a :class:`Frame` replaces the previous one, and a consumer asks for "a frame newer than the
one I have" (:meth:`FrameHub.next_frame`), so a slow consumer skips frames and costs no memory.

Example::

    frames = FrameHub(state_hub, config.printers)
    await nursery.start(frames.run)
    with frames.viewer("workshop"):
        frame = await frames.next_frame("workshop", after=-1)
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import trio

from bambupi.camera.rtsps import LIVEVIEW_OFF, RtspsSource
from bambupi.camera.source import CameraError, CameraSource, Tls6000Source
from bambupi.config import CameraConfig, PrinterConfig
from bambupi.printer.phase import IN_JOB
from bambupi.printer.tls_pins import PinStore, TrustOnFirstUse, camera_pin_key
from bambupi.printer_models import model_info
from bambupi.state_hub import CameraStatus, PrinterObject, StateHub

log = logging.getLogger("bambupi.camera")

_FPS_WINDOW_S = 5.0
STATUS_INTERVAL_S = 2.0  # how often the frame rate and last-frame time go to the hub's camera stream
BOUNDARY = "bambupi-frame"


@dataclass(frozen=True, eq=False)
class Frame:
    """One JPEG with its place in the stream: ``seq`` grows by one per frame, ``at`` is UTC epoch seconds,
    ``received`` is trio's clock (for ages). ``part`` is the frame as one multipart/x-mixed-replace part, built
    once here instead of once per viewer."""

    data: bytes
    seq: int
    at: float
    received: float
    part: bytes = field(repr=False)

    @classmethod
    def make(cls, data: bytes, seq: int, at: float, received: float) -> Frame:
        head = (
            f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n"
            f"X-Frame-Seq: {seq}\r\nX-Timestamp: {at:.3f}\r\n\r\n"
        ).encode("ascii")
        return cls(data, seq, at, received, head + data + b"\r\n")

    def age(self) -> float:
        return trio.current_time() - self.received


SourceFactory = Callable[[PrinterConfig], CameraSource]


def default_source(
    config: PrinterConfig, pins: PinStore | None = None, camera: CameraConfig | None = None
) -> CameraSource:
    """The printer's camera; with ``pins``, its certificate is pinned like the MQTT link's; ``camera`` sets the
    RTSPS decoder's output rate and size and its stall limit."""
    info = model_info(config.model)
    port = config.camera_port or info.camera_port
    trust = None if pins is None else TrustOnFirstUse(pins, camera_pin_key(config.id), printer_id=config.id)
    if info.camera_kind == "tls6000":
        return Tls6000Source(
            config.host, port, config.access_code, connect_timeout_s=config.connect_timeout_s, trust=trust
        )
    camera = camera or CameraConfig()
    return RtspsSource(
        config.host, port, config.access_code, trust=trust, connect_timeout_s=config.connect_timeout_s,
        fps=camera.decoder_fps, width=camera.decoder_width, stall_s=camera.decoder_stall_s,
    )


@dataclass(eq=False)
class _Camera:
    config: PrinterConfig
    source: CameraSource
    kind: str
    disabled: bool
    frame: Frame | None = None
    seq: int = 0
    session_start_seq: int = 0  # frames up to this one came from an earlier upstream session (stale)
    viewers: int = 0
    printing: bool = False
    liveview_off: bool = False
    status: str = "idle"
    reason: str | None = None
    logged_reason: str | None = None
    upstream_connections: int = 0  # attempts, for health and tests
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=64))
    frames_lot: trio.lowlevel.ParkingLot = field(default_factory=trio.lowlevel.ParkingLot)
    demand_lot: trio.lowlevel.ParkingLot = field(default_factory=trio.lowlevel.ParkingLot)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    removed: bool = False


class CameraGone(LookupError):
    """The printer was removed (or never had a camera here) while a consumer waited for its frames."""


class FrameHub:
    def __init__(
        self,
        hub: StateHub,
        printers: Iterable[PrinterConfig],
        *,
        linger_s: float = 10.0,
        keep_open_while_printing: bool = False,
        backoff_min_s: float = 1.0,
        backoff_max_s: float = 60.0,
        source_for: SourceFactory = default_source,
        clock: Callable[[], float] = time.time,
        status_interval_s: float = STATUS_INTERVAL_S,
    ) -> None:
        self._hub = hub
        self._linger_s = linger_s
        self._keep_open_while_printing = keep_open_while_printing
        self._backoff = (backoff_min_s, backoff_max_s)
        self._source_for = source_for
        self._clock = clock
        self._status_interval_s = status_interval_s
        self._configs = {p.id: p for p in printers}  # what a (re)start connects
        self._cameras: dict[str, _Camera] = {}
        self._nursery: trio.Nursery | None = None

    # -- the service -----------------------------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[FrameHub] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for config in self._configs.values():
                    self._start_camera(config)
                nursery.start_soon(self._watch_printers)
                nursery.start_soon(self._report_rates)
                task_status.started(self)
        finally:
            # Stopped (or failed): viewers waiting for frames are told at once; a restart connects afresh.
            self._nursery = None
            for printer_id in list(self._cameras):
                self._drop(printer_id)

    def add_printer(self, config: PrinterConfig) -> None:
        self._configs[config.id] = config
        if self._nursery is not None:
            self._start_camera(config)

    def remove_printer(self, printer_id: str) -> None:
        self._configs.pop(printer_id, None)
        self._drop(printer_id)

    def update_printer(self, config: PrinterConfig) -> None:
        """New settings (host, access code, camera on/off): the upstream reconnects with them."""
        self.remove_printer(config.id)
        self.add_printer(config)

    def _start_camera(self, config: PrinterConfig) -> None:
        assert self._nursery is not None
        camera = _Camera(
            config=config,
            source=self._source_for(config),
            kind=model_info(config.model).camera_kind,
            disabled=config.camera == "off",
        )
        self._cameras[config.id] = camera
        self._update_flags(camera, self._hub.printer(config.id) if self._hub.has(config.id) else None)
        self._report(camera)
        self._nursery.start_soon(self._supervise, camera)

    def _drop(self, printer_id: str) -> None:
        camera = self._cameras.pop(printer_id, None)
        if camera is not None:
            camera.removed = True
            camera.scope.cancel()
            camera.frames_lot.unpark_all()

    # -- reading ---------------------------------------------------------------------------------------------------
    def has(self, printer_id: str) -> bool:
        return printer_id in self._cameras

    def latest(self, printer_id: str) -> Frame | None:
        return self._camera(printer_id).frame

    def status(self, printer_id: str) -> CameraStatus:
        return _status_json(self._camera(printer_id))

    def upstream_connections(self, printer_id: str) -> int:
        return self._camera(printer_id).upstream_connections

    def live_after(self, printer_id: str) -> int:
        """The sequence number a new viewer waits past: the current session's latest frame is served at once,
        a frame left over from an earlier session is not (it may be minutes old)."""
        return self._camera(printer_id).session_start_seq

    async def next_frame(self, printer_id: str, after: int) -> Frame:
        """The latest frame with ``seq > after``, waiting for one if needed. Raises :class:`CameraGone`."""
        camera = self._camera(printer_id)
        while camera.frame is None or camera.frame.seq <= after:
            await camera.frames_lot.park()
            if camera.removed:
                raise CameraGone(printer_id)
        return camera.frame

    @contextmanager
    def viewer(self, printer_id: str) -> Iterator[None]:
        """Hold the upstream open (connect it if needed) for the duration of the block."""
        camera = self._camera(printer_id)
        camera.viewers += 1
        camera.demand_lot.unpark_all()
        self._report(camera)
        try:
            yield
        finally:
            camera.viewers -= 1
            camera.demand_lot.unpark_all()
            if not camera.removed:
                self._report(camera)

    async def fresh_frame(self, printer_id: str, *, max_age_s: float, timeout_s: float) -> Frame | None:
        """A frame at most ``max_age_s`` old, connecting briefly if needed; None when none came in ``timeout_s``."""
        camera = self._camera(printer_id)
        if camera.frame is not None and camera.frame.age() <= max_age_s:
            return camera.frame
        if camera.disabled or camera.liveview_off:
            return None
        with self.viewer(printer_id), trio.move_on_after(timeout_s):
            return await self.next_frame(printer_id, camera.seq)
        return None

    # -- internals -------------------------------------------------------------------------------------------------
    def _camera(self, printer_id: str) -> _Camera:
        try:
            return self._cameras[printer_id]
        except KeyError:
            raise CameraGone(printer_id) from None

    def _wanted(self, camera: _Camera) -> bool:
        if camera.disabled or camera.liveview_off:
            return False
        return camera.viewers > 0 or (self._keep_open_while_printing and camera.printing)

    async def _supervise(self, camera: _Camera) -> None:
        with camera.scope:
            while True:
                while not self._wanted(camera):
                    await camera.demand_lot.park()
                with trio.CancelScope() as upstream:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._linger, camera, upstream)
                        await self._connect_loop(camera)
                camera.session_start_seq = camera.seq
                camera.recent.clear()
                self._set_status(camera, "idle", None)

    async def _linger(self, camera: _Camera, upstream: trio.CancelScope) -> None:
        """Cancel ``upstream`` once nobody has wanted it for ``linger_s``."""
        while True:
            while self._wanted(camera):
                await camera.demand_lot.park()
            with trio.move_on_after(self._linger_s) as waited:
                while not self._wanted(camera):
                    await camera.demand_lot.park()
            if waited.cancelled_caught:
                log.debug("%s: camera unused for %g s; closing the upstream", camera.config.id, self._linger_s)
                upstream.cancel()
                return

    async def _connect_loop(self, camera: _Camera) -> None:
        low, high = self._backoff
        delay = low
        while True:
            camera.upstream_connections += 1
            self._set_status(camera, "connecting", None)
            seq_before = camera.seq
            try:
                await camera.source.stream(lambda data: self._on_frame(camera, data))
                error = CameraError("the camera stream ended")
            except CameraError as exc:
                error = exc
            if camera.seq > seq_before:
                delay = low  # it worked for a while: this is a fresh failure, not a persistent one
            self._set_status(camera, "error", error.reason)
            camera.recent.clear()
            wait = error.retry_s if error.retry_s is not None else delay * random.uniform(0.8, 1.2)
            await trio.sleep(wait)
            delay = min(delay * 2, high)

    def _on_frame(self, camera: _Camera, data: bytes) -> None:
        camera.seq += 1
        now = trio.current_time()
        camera.frame = Frame.make(data, camera.seq, self._clock(), now)
        camera.recent.append(now)
        camera.frames_lot.unpark_all()
        if camera.status != "live":
            self._set_status(camera, "live", None)

    def _set_status(self, camera: _Camera, status: str, reason: str | None) -> None:
        if (camera.status, camera.reason) == (status, reason):
            return
        # Once per distinct problem, and "recovered" once, never on every retry.
        if status == "error" and reason != camera.logged_reason:
            log.warning("%s: camera: %s", camera.config.id, reason)
            camera.logged_reason = reason
        elif status == "live" and camera.logged_reason is not None:
            log.info("%s: camera recovered", camera.config.id)
            camera.logged_reason = None
        camera.status, camera.reason = status, reason
        self._report(camera)

    def _report(self, camera: _Camera) -> None:
        printer_id = camera.config.id
        if not camera.removed and self._hub.has(printer_id):
            self._hub.set_camera(printer_id, _status_json(camera))

    def _update_flags(self, camera: _Camera, printer: PrinterObject | None) -> None:
        state = printer["state"] if printer else {}
        camera.printing = printer is not None and printer["phase"] in IN_JOB
        camera.liveview_off = camera.kind == "rtsps" and state.get("liveview") is False
        camera.demand_lot.unpark_all()

    async def _watch_printers(self) -> None:
        async with self._hub.subscribe() as updates:
            while True:
                snapshot = await updates.next()
                for printer_id, camera in list(self._cameras.items()):
                    was_off = camera.liveview_off
                    self._update_flags(camera, snapshot.get(printer_id))
                    if camera.liveview_off != was_off:
                        self._report(camera)

    async def _report_rates(self) -> None:
        # The frame rate changes a little with every frame; reporting it every few seconds keeps the page's deltas
        # calm. It goes to the hub's camera stream, which wakes no printer subscriber (see bambupi.state_hub).
        while True:
            await trio.sleep(self._status_interval_s)
            for camera in list(self._cameras.values()):
                self._report(camera)


def _fps(recent: deque[float]) -> float:
    if len(recent) < 2:
        return 0.0
    now = trio.current_time()
    window = [t for t in recent if now - t <= _FPS_WINDOW_S]
    if len(window) < 2 or window[-1] == window[0]:
        return 0.0
    return round((len(window) - 1) / (window[-1] - window[0]), 1)


def _status_json(camera: _Camera) -> CameraStatus:
    reason: str | None
    if camera.disabled:
        status, reason = "disabled", 'camera = "off" in the config'
    elif camera.liveview_off:
        status, reason = "off", LIVEVIEW_OFF
    else:
        status, reason = camera.status, camera.reason
    frame = camera.frame
    return {
        "kind": camera.kind,
        "status": status,
        "reason": reason,
        "viewers": camera.viewers,
        "fps": _fps(camera.recent) if status == "live" else 0.0,
        "last_frame_at": round(frame.at, 3) if frame is not None else None,
    }
