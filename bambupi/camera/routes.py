"""The camera's HTTP routes, served natively in trio by the front door (one task per viewer, no threads).

| route | what |
|---|---|
| ``GET /api/printers/<id>/camera[?fps=N]`` | MJPEG (``multipart/x-mixed-replace``), a Content-Length per part |
| ``GET /api/printers/<id>/snapshot.jpg`` | the latest frame; ``X-Frame-Age`` (seconds) and ``X-Frame-Timestamp`` |
| ``GET /api/printers/<id>/snapshots`` | the snapshot history, newest first |
| ``GET /api/printers/<id>/snapshots/<name>`` | one saved snapshot |
| ``POST /api/printers/<id>/snapshots`` | take one now |

Each viewer gets the newest frame when it is ready for one: a slow phone skips frames and never delays another
viewer, and holds at most the one frame it is sending. A send that blocks longer than ``write_timeout_s`` closes
that viewer. When the camera cannot give a first frame within ``first_frame_timeout_s`` the answer is a 503 with
the camera's reason instead of a stream that never starts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import trio

from bambupi.camera.frames import BOUNDARY, CameraGone, Frame, FrameHub
from bambupi.camera.snapshots import SnapshotTaker
from bambupi.web.frontdoor import NativeHandler, Request

log = logging.getLogger("bambupi.camera")

_ROUTE = re.compile(r"^/api/printers/([^/]+)/(camera|snapshot\.jpg|snapshots)(?:/([^/]+))?$")
MAX_VIEWER_FPS = 30.0
# (request, changes) -> None when allowed, else (status, message)
Refusal = Callable[[Request, bool], "tuple[int, str] | None"]


class CameraRoutes:
    def __init__(
        self,
        frames: FrameHub,
        snapshots: SnapshotTaker | None = None,
        *,
        write_timeout_s: float = 10.0,
        first_frame_timeout_s: float = 15.0,
        refusal: Refusal | None = None,
    ) -> None:
        self._frames = frames
        self._refusal = refusal
        self._snapshots = snapshots
        self._write_timeout_s = write_timeout_s
        self._first_frame_timeout_s = first_frame_timeout_s

    def __call__(self, request: Request) -> NativeHandler | None:
        """The native router: claims the camera routes, leaves everything else to the other routers."""
        match = _ROUTE.match(request.path)
        if match is None:
            return None
        printer_id, what, name = match.groups()
        if what == "snapshots" and self._snapshots is None:
            return None

        async def handle(stream: trio.abc.Stream, request: Request, _already_read: bytes) -> None:
            # The viewer left, or the printer was removed meanwhile: nobody to answer.
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, CameraGone):
                await self._dispatch(stream, request, printer_id, what, name)

        return handle

    async def _dispatch(
        self, stream: trio.abc.Stream, request: Request, printer_id: str, what: str, name: str | None
    ) -> None:
        if self._refusal is not None:
            # Taking a snapshot writes to the box: always the owner's. Watching: as configured.
            refused = self._refusal(request, request.method == "POST")
            if refused is not None:
                status, message = refused
                await self._send_json(stream, status, {"error": message, "status": status})
                return
        if not self._frames.has(printer_id):
            await self._send_json(stream, 404, {"error": f"no printer with id {printer_id!r}", "status": 404})
            return
        allowed = ("GET", "POST") if what == "snapshots" and name is None else ("GET", "HEAD")
        if request.method not in allowed or (what != "snapshots" and name is not None):
            status = 405 if name is None or what == "snapshots" else 404
            message = f"method {request.method} not allowed here"
            await self._send_json(stream, status, {"error": message, "status": status})
            return
        if what == "camera":
            await self._stream(stream, request, printer_id)
        elif what == "snapshot.jpg":
            await self._snapshot(stream, request, printer_id)
        elif name is not None:
            await self._saved(stream, request, printer_id, name)
        elif request.method == "POST":
            await self._take(stream, printer_id)
        else:
            await self._history(stream, printer_id)

    # -- MJPEG -----------------------------------------------------------------------------------------------------
    async def _stream(self, stream: trio.abc.Stream, request: Request, printer_id: str) -> None:
        try:
            fps = _fps_param(request.query)
        except ValueError as exc:
            await self._send_json(stream, 400, {"error": f"fps: {exc}", "status": 400})
            return
        head = _head(200, [
            ("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}"),
            ("Cache-Control", "no-store, no-cache, must-revalidate"),
            ("Pragma", "no-cache"),
            ("X-Accel-Buffering", "no"),
        ])  # fmt: skip
        if request.method == "HEAD":  # what a GET would start with; no body, and no reason to wake the camera
            await self._send(stream, head)
            return
        frames = self._frames
        with frames.viewer(printer_id):
            first = await self._first_frame(printer_id)
            if first is None:
                await self._unavailable(stream, printer_id)
                return
            if not await self._send(stream, head):
                return
            async with trio.open_nursery() as nursery:
                # A viewer that closes while the camera is quiet must not hold the upstream open until the next frame.
                nursery.start_soon(_cancel_on_eof, stream, nursery.cancel_scope)
                await self._relay(stream, printer_id, first, fps)
                nursery.cancel_scope.cancel()

    async def _first_frame(self, printer_id: str) -> Frame | None:
        with trio.move_on_after(self._first_frame_timeout_s):
            return await self._frames.next_frame(printer_id, self._frames.live_after(printer_id))
        return None

    async def _relay(self, stream: trio.abc.Stream, printer_id: str, frame: Frame, fps: float | None) -> None:
        interval = 1.0 / fps if fps else 0.0
        next_at = trio.current_time()
        while True:
            if not await self._send(stream, frame.part):
                log.debug("%s: a camera viewer stopped reading; closing it", printer_id)
                return
            if interval:
                next_at = max(next_at + interval, trio.current_time() - interval)
                await trio.sleep_until(next_at)
            frame = await self._frames.next_frame(printer_id, frame.seq)

    # -- single pictures -------------------------------------------------------------------------------------------
    async def _snapshot(self, stream: trio.abc.Stream, request: Request, printer_id: str) -> None:
        frame = await self._frames.fresh_frame(
            printer_id, max_age_s=2.0, timeout_s=self._first_frame_timeout_s
        )
        if frame is None:
            await self._unavailable(stream, printer_id)
            return
        headers = [
            ("Content-Type", "image/jpeg"),
            ("Content-Length", str(len(frame.data))),
            ("Cache-Control", "no-store"),
            ("X-Frame-Age", f"{frame.age():.3f}"),
            ("X-Frame-Timestamp", f"{frame.at:.3f}"),
            ("X-Frame-Seq", str(frame.seq)),
        ]
        body = b"" if request.method == "HEAD" else frame.data
        await self._send(stream, _head(200, headers) + body)

    async def _take(self, stream: trio.abc.Stream, printer_id: str) -> None:
        assert self._snapshots is not None
        snap = await self._snapshots.take(printer_id, "manual")
        if snap is None:
            await self._unavailable(stream, printer_id)
            return
        await self._send_json(stream, 201, snap.to_json())

    async def _history(self, stream: trio.abc.Stream, printer_id: str) -> None:
        assert self._snapshots is not None
        snaps = await trio.to_thread.run_sync(self._snapshots.store.snapshots, printer_id)
        await self._send_json(stream, 200, {"printer": printer_id, "snapshots": [s.to_json() for s in snaps]})

    async def _saved(self, stream: trio.abc.Stream, request: Request, printer_id: str, name: str) -> None:
        assert self._snapshots is not None
        data = await trio.to_thread.run_sync(self._snapshots.store.read, printer_id, name)
        if data is None:
            await self._send_json(stream, 404, {"error": f"no snapshot {name!r}", "status": 404})
            return
        headers = [("Content-Type", "image/jpeg"), ("Content-Length", str(len(data))),
                   ("Cache-Control", "max-age=86400, immutable")]  # fmt: skip
        await self._send(stream, _head(200, headers) + (b"" if request.method == "HEAD" else data))

    # -- plumbing --------------------------------------------------------------------------------------------------
    async def _unavailable(self, stream: trio.abc.Stream, printer_id: str) -> None:
        status = self._frames.status(printer_id)
        reason = status.get("reason") or f"no frame from the camera (status {status.get('status')})"
        await self._send_json(stream, 503, {"error": f"camera unavailable: {reason}", "status": 503, "camera": status})

    async def _send_json(self, stream: trio.abc.Stream, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                   ("Cache-Control", "no-store")]  # fmt: skip
        await self._send(stream, _head(status, headers) + data)

    async def _send(self, stream: trio.abc.Stream, data: bytes) -> bool:
        """False when the client could not take ``data`` within the write timeout."""
        with trio.move_on_after(self._write_timeout_s):
            await stream.send_all(data)
            return True
        return False


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", *(f"{k}: {v}" for k, v in headers), "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _fps_param(query: str) -> float | None:
    values = parse_qs(query).get("fps")
    if not values:
        return None
    try:
        fps = float(values[-1])
    except ValueError:
        raise ValueError("must be a number") from None
    if not 0 < fps <= MAX_VIEWER_FPS:
        raise ValueError(f"must be above 0 and at most {MAX_VIEWER_FPS:g}")
    return fps


async def _cancel_on_eof(stream: trio.abc.Stream, scope: trio.CancelScope) -> None:
    try:
        while await stream.receive_some(4096):
            pass  # a client sends nothing more on a stream; whatever it sends is ignored
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    scope.cancel()
