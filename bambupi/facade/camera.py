"""The facade's camera: the printer's port-6000 protocol, fed from the box's FrameHub (never a second upstream).

An app connects over TLS, sends the 80-byte auth packet (user ``bblp``, the *facade's* access code), then receives
frames as a P1/A1 printer sends them: a 16-byte header in a TLS record of its own, then the JPEG (readers such as
ha-bambulab's and bambulabs_api's take one record as the header). Frames are latest-value: a slow app skips to the
newest frame and costs no memory; one that cannot take a frame for :data:`SEND_TIMEOUT_S` is closed.

While any app watches, the facade holds the printer's camera open through the FrameHub's viewer mechanism, exactly
as a phone watching the page does (the upstream closes ``[camera] linger_s`` after the last viewer of any kind).

For an RTSPS camera (X1, H2, P2S, X2D, whose H.264 an ESP32 screen cannot decode) the FrameHub's frames are turned
into JPEGs of the configured size at the configured rate, once per frame for every app (:class:`CameraFeed`, Pillow
in a worker thread). P1/A1 frames pass on as the printer sent them.

A printer whose camera is switched off (``camera = "off"`` in the box's config, or "LAN Only Liveview" off on an
RTSPS printer) has nothing to show: the facade closes the connection right after the auth packet, as a printer
closes on a wrong code, and logs why once. A camera that is down (connecting, an error) keeps the app connected
and waiting: frames flow again when the box's upstream recovers.
"""

from __future__ import annotations

import io
import logging
import ssl
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Final, Protocol

import trio
from PIL import Image

from bambupi.camera.frames import CameraGone, Frame
from bambupi.camera.jpeg import AUTH_SIZE, auth_accepted, frame_header
from bambupi.camera.source import receive_exactly
from bambupi.mqtt_server import MAX_PENDING
from bambupi.state_hub import CameraStatus

log = logging.getLogger("bambupi.facade")

AUTH_TIMEOUT_S: Final = 10.0  # TLS handshake and the auth packet
SEND_TIMEOUT_S: Final = 10.0  # an app that cannot take one frame for this long is closed
JPEG_QUALITY: Final = 80


class FrameSource(Protocol):
    """What the facade reads of the box's FrameHub (bambupi.camera.frames)."""

    def has(self, printer_id: str) -> bool: ...

    def viewer(self, printer_id: str) -> AbstractContextManager[None]: ...

    async def next_frame(self, printer_id: str, after: int) -> Frame: ...

    def live_after(self, printer_id: str) -> int: ...

    def status(self, printer_id: str) -> CameraStatus: ...


def scale_jpeg(data: bytes, width: int, height: int, quality: int = JPEG_QUALITY) -> bytes | None:
    """``data`` scaled down to fit ``width`` x ``height`` (aspect kept), as a baseline JFIF JPEG; None when it is
    not a picture. A frame that fits already is re-encoded only if it is not a plain JFIF (ESP32 decoders and
    bambu-connect look for the JFIF start)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            fits = image.width <= width and image.height <= height
            if fits and image.format == "JPEG" and data[2:4] == b"\xff\xe0" and not image.info.get("progressive"):
                return data
            image.draft("RGB", (width, height))  # the JPEG decoder scales by 1/2, 1/4, 1/8 while decoding: cheap
            picture = image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    picture.thumbnail((width, height), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=quality)
    return out.getvalue()


class CameraFeed:
    """One printer's frames for the facade's apps: latest-value, taken from the FrameHub while anyone watches.

    ``rescale`` (RTSPS cameras): each frame is scaled to ``size`` at most ``fps`` times a second, once for all apps.
    """

    def __init__(
        self, frames: FrameSource, printer_id: str, *, rescale: bool, fps: float, size: tuple[int, int]
    ) -> None:
        self._frames = frames
        self.printer_id = printer_id
        self._rescale = rescale
        self._interval = 1.0 / fps
        self._size = size
        self.viewers = 0
        self._latest: tuple[int, bytes] | None = None
        self._seq = 0
        self._lot = trio.lowlevel.ParkingLot()
        self._demand = trio.lowlevel.ParkingLot()
        self._upstream: trio.CancelScope | None = None
        self._session_start = 0  # frames up to this one were made before the current viewers came: stale
        self.gone = False
        self.frames_made = 0  # for health and tests

    @contextmanager
    def watching(self) -> Iterator[None]:
        if self.viewers == 0:
            self._session_start = self._seq  # the last picture may be minutes old: wait for a fresh one
        self.viewers += 1
        self._demand.unpark_all()
        try:
            yield
        finally:
            self.viewers -= 1
            if self.viewers == 0 and self._upstream is not None:
                self._upstream.cancel()  # the FrameHub lingers (camera.linger_s): a reconnecting app costs nothing

    async def next(self, after: int) -> tuple[int, bytes]:
        """The newest frame after sequence ``after``, waiting for one. Raises :class:`CameraGone`."""
        after = max(after, self._session_start)
        while self._latest is None or self._latest[0] <= after:
            if self.gone:
                raise CameraGone(self.printer_id)
            await self._lot.park()
        return self._latest

    async def run(self) -> None:
        try:
            while True:
                while self.viewers == 0:
                    await self._demand.park()
                with trio.CancelScope() as self._upstream:
                    await self._follow()
                self._upstream = None
        except CameraGone:
            pass
        finally:
            self.gone = True
            self._lot.unpark_all()

    async def _follow(self) -> None:
        with self._frames.viewer(self.printer_id):
            after = self._frames.live_after(self.printer_id)
            while True:
                frame = await self._frames.next_frame(self.printer_id, after)
                after = frame.seq
                if not self._rescale:
                    self._publish(frame.data)
                    continue
                started = trio.current_time()
                data = await trio.to_thread.run_sync(scale_jpeg, frame.data, *self._size)
                if data is not None:
                    self._publish(data)
                await trio.sleep_until(started + self._interval)  # at most fps: frames between are skipped

    def _publish(self, data: bytes) -> None:
        self._seq += 1
        self.frames_made += 1
        self._latest = (self._seq, data)
        self._lot.unpark_all()


class CameraEndpoint:
    """The port-6000 server for one printer's :class:`CameraFeed`.

    ``off()`` says why the camera has nothing to show (switched off), or None. ``connections`` counts the TLS
    connections accepted, ``clients`` the apps logged in now, ``refused`` wrong codes."""

    def __init__(
        self,
        feed: CameraFeed,
        access_code: bytes,
        ssl_context: ssl.SSLContext,
        *,
        off: Callable[[], str | None],
        max_clients: int,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.feed = feed
        self._code = access_code
        self._ssl_context = ssl_context
        self._off = off
        self._max_clients = max_clients
        self._logged_off: str | None = None
        self.connections = 0
        self.clients = 0
        self.refused = 0
        self.max_pending = max_pending  # connections before their auth packet, as the MQTT server's (file descriptors)
        self.pending = 0
        self.turned_away = 0

    async def serve(
        self, host: str, port: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        bound = int(listeners[0].socket.getsockname()[1])
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._serve_client, listeners)
            task_status.started(bound)

    async def _serve_client(self, tcp: trio.SocketStream) -> None:
        if self.pending >= self.max_pending:
            self.turned_away += 1
            await trio.aclose_forcefully(tcp)
            return
        self.connections += 1
        stream = trio.SSLStream(tcp, self._ssl_context, server_side=True)
        try:
            await self._converse(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, OSError, CameraGone):
            pass  # this app's connection ends; the others and the feed go on
        finally:
            await trio.aclose_forcefully(stream)

    async def _converse(self, stream: trio.SSLStream[trio.SocketStream]) -> None:
        self.pending += 1
        try:
            packet = bytearray()
            with trio.fail_after(AUTH_TIMEOUT_S):
                await stream.do_handshake()
                if not await receive_exactly(stream, AUTH_SIZE, packet):
                    return
        finally:
            self.pending -= 1
        if not auth_accepted(bytes(packet), self._code):
            self.refused += 1
            return  # as a printer: the app reads 0 bytes
        off = self._off()
        if off is not None:
            if off != self._logged_off:
                log.info("facade: %s camera: an app asked for frames, but %s", self.feed.printer_id, off)
                self._logged_off = off
            return
        if self.clients >= self._max_clients:
            return
        self.clients += 1
        try:
            with self.feed.watching():
                seq = 0
                while True:
                    seq, data = await self.feed.next(seq)
                    with trio.fail_after(SEND_TIMEOUT_S):
                        await stream.send_all(frame_header(len(data)))  # a TLS record of its own, as a printer
                        await stream.send_all(data)
        finally:
            self.clients -= 1
