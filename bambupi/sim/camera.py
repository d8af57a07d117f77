"""The simulated printer's camera: the P1/A1 port-6000 protocol over TLS, with generated 1280x720 JPEGs.

Like a real P1/A1: a client has 10 s to send the 80-byte auth packet; a wrong access code gets the connection
closed at once (the client reads 0 bytes); at most ``max_clients`` (2) are served, and a further connection stalls
at the TLS handshake until a slot frees up. Each frame is a 16-byte header in a TLS record of its own, then a JPEG
drawn by :func:`render_frame` (a pure function of :class:`FrameInfo`) showing the print's progress.

Tests break the stream on purpose with :meth:`CameraServer.inject`: ``"garbage_header"``, ``"oversized"``,
``"not_jpeg"`` or ``"cut_mid_frame"`` replace the next frame sent to every client, then the server closes them.
"""

from __future__ import annotations

import io
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final

import trio
from PIL import Image, ImageDraw, ImageFont

from bambupi.camera.jpeg import AUTH_SIZE, auth_accepted, frame_header
from bambupi.camera.source import receive_exactly

log = logging.getLogger(__name__)

WIDTH: Final = 1280
HEIGHT: Final = 720
AUTH_TIMEOUT_S: Final = 10.0
SEND_TIMEOUT_S: Final = 10.0
FAULTS: Final = frozenset({"garbage_header", "oversized", "not_jpeg", "cut_mid_frame"})


@dataclass(frozen=True)
class FrameInfo:
    model: str
    gcode_state: str
    percent: int
    job: str | None
    at: float  # epoch seconds, shown as a clock so a frozen picture is obvious
    number: int


def render_frame(info: FrameInfo, *, quality: int = 80) -> bytes:
    """A 1280x720 JPEG: a build plate with a part growing with ``percent``, and the status written on it."""
    image = Image.new("RGB", (WIDTH, HEIGHT), (28, 30, 36))
    draw = ImageDraw.Draw(image)
    plate = (240, 470, 1040, 650)
    draw.polygon([(plate[0], plate[3]), (plate[2], plate[3]), (plate[2] - 120, plate[1]), (plate[0] + 120, plate[1])],
                 fill=(60, 62, 70))  # fmt: skip
    height = int(300 * info.percent / 100)
    if height:
        draw.rectangle((540, 560 - height, 740, 560), fill=(0, 174, 66))
    head_x = 440 + (info.number * 37) % 400
    draw.rectangle((head_x, 560 - height - 70, head_x + 60, 560 - height - 10), fill=(200, 200, 205))
    big = ImageFont.load_default(size=44)
    small = ImageFont.load_default(size=28)
    draw.text((40, 30), f"bambupi simulator - {info.model}", font=big, fill=(235, 235, 235))
    stamp = time.strftime("%H:%M:%S", time.localtime(info.at))
    draw.text((40, 90), f"{info.gcode_state}  {info.percent}%  {info.job or ''}", font=small, fill=(180, 220, 180))
    draw.text((40, 130), f"{stamp}  frame {info.number}", font=small, fill=(160, 160, 170))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


class CameraServer:
    """Serves frames from ``snapshot()`` (called in trio, cheap) rendered in a worker thread at ``fps``.

    ``frames`` replaces the renderer with a fixed JPEG (benchmarks). ``connections`` counts accepted TCP connections,
    ``clients`` the ones currently authenticated and streaming.
    """

    def __init__(
        self,
        access_code: str,
        ssl_context: ssl.SSLContext,
        snapshot: Callable[[], FrameInfo],
        *,
        fps: float = 2.0,
        max_clients: int = 2,
        frame: bytes | None = None,
    ) -> None:
        self._access_code = access_code
        self._ssl_context = ssl_context
        self._snapshot = snapshot
        self.fps = fps
        self._slots = trio.Semaphore(max_clients)
        self._fixed = frame
        self._latest: tuple[int, bytes] = (0, b"")
        self._new_frame = trio.lowlevel.ParkingLot()
        self._fault: str | None = None
        self.connections = 0
        self.clients = 0
        self.refused = 0
        self.logins = 0  # auth packets received, right or wrong
        self.sent: deque[bytes] = deque(maxlen=32)  # the latest frames, for tests comparing bytes

    def inject(self, fault: str) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose one of: {', '.join(sorted(FAULTS))}")
        self._fault = fault

    async def serve(
        self, host: str, port: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        bound = int(listeners[0].socket.getsockname()[1])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._produce)
            await nursery.start(trio.serve_listeners, self._serve_client, listeners)
            task_status.started(bound)

    async def _produce(self) -> None:
        """Render one frame per tick while anyone watches; every client sends that same frame."""
        number = 0
        while True:
            started = trio.current_time()
            if self.clients:
                number += 1
                if self._fixed is not None:
                    data = self._fixed
                else:
                    info = self._snapshot()
                    data = await trio.to_thread.run_sync(render_frame, replace(info, number=number))
                self._latest = (number, data)
                self.sent.append(data)
                self._new_frame.unpark_all()
            await trio.sleep_until(started + 1.0 / self.fps)

    async def _serve_client(self, tcp: trio.SocketStream) -> None:
        self.connections += 1
        async with self._slots:  # the third client waits here, before the TLS handshake, like the printer
            stream = trio.SSLStream(tcp, self._ssl_context, server_side=True)
            try:
                await self._converse(stream)
            except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, OSError):
                pass
            finally:
                await trio.aclose_forcefully(stream)

    async def _converse(self, stream: trio.SSLStream[trio.SocketStream]) -> None:
        packet = bytearray()
        with trio.fail_after(AUTH_TIMEOUT_S):
            await stream.do_handshake()
            if not await receive_exactly(stream, AUTH_SIZE, packet):
                return
        self.logins += 1
        if not auth_accepted(bytes(packet), self._access_code.encode()):
            self.refused += 1
            return  # the printer just closes: the client reads 0 bytes
        self.clients += 1
        log.info("simulator: a camera client logged in (%d watching)", self.clients)
        try:
            seen = self._latest[0]
            while True:
                while self._latest[0] == seen:
                    await self._new_frame.park()
                seen, data = self._latest
                fault = self._fault
                header, payload = (frame_header(len(data)), data) if fault is None else _faulty(fault, data)
                with trio.fail_after(SEND_TIMEOUT_S):
                    # Two writes, two TLS records, like the printer: readers that take one record as the header
                    # (ha-bambulab's, bambulabs_api's) get no frame from a header sent together with its JPEG.
                    await stream.send_all(header)
                    await stream.send_all(payload)
                if fault is None:
                    continue
                # Give the client a moment to read the bad bytes before the close, as a real glitch would.
                await trio.sleep(0.05)
                self._fault = None
                return
        finally:
            self.clients -= 1


def _faulty(fault: str, data: bytes) -> tuple[bytes, bytes]:
    """The 16 bytes sent as the header and what follows them, for ``fault``."""
    if fault == "garbage_header":
        return b"HTTP/1.1 400 Bad", data
    if fault == "oversized":
        return frame_header(512 * 1024 * 1024), data
    if fault == "not_jpeg":
        return frame_header(len(data)), b"\0" * len(data)
    return frame_header(len(data)), data[: len(data) // 2]  # cut_mid_frame
