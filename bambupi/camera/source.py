"""Camera sources: one upstream connection to a printer's camera, handing each JPEG frame to a callback.

* :class:`Tls6000Source` — P1/A1: TLS to port 6000, the 80-byte auth packet, then 16-byte header + JPEG frames.
* :class:`~bambupi.camera.rtsps.RtspsSource` — X1/H2/P2: RTSPS on port 322, TLS held here (pinned), decoded to
  JPEG by an ``ffmpeg`` process that reads a loopback proxy (:mod:`bambupi.camera.rtsps_proxy`).

A source's :meth:`stream` runs one connection until it fails and raises :class:`CameraError` with a reason meant for
people (never containing the access code); :class:`~bambupi.camera.frames.FrameHub` owns reconnects and backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import trio

from bambupi.camera.jpeg import (
    HEADER_SIZE,
    MAX_FRAME_BYTES,
    FrameError,
    auth_packet,
    is_jpeg,
    parse_header,
)
from bambupi.printer.tls_pins import CertificateRefused, TrustOnFirstUse, printer_tls_context
from bambupi.secret import Secret

log = logging.getLogger("bambupi.camera")

OnFrame = Callable[[bytes], None]

_RECEIVE_BYTES = 256 * 1024


class CameraError(Exception):
    """One upstream attempt failed; ``str()`` is the reason shown on the page. ``retry_s`` overrides the backoff."""

    def __init__(self, reason: str, *, retry_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_s = retry_s


class CameraSource(Protocol):
    kind: str

    async def stream(self, on_frame: OnFrame) -> None:
        """Connect, then call ``on_frame`` for every frame until the connection fails (raises CameraError)."""
        ...


async def receive_exactly(stream: trio.abc.ReceiveStream, size: int, into: bytearray) -> bool:
    """Append exactly ``size`` bytes to ``into``; False when the peer closed first (``into`` then holds fewer).

    A TLS close without close_notify (what the printer does to a wrong access code) counts as closed too."""
    goal = len(into) + size
    while len(into) < goal:
        try:
            chunk = await stream.receive_some(min(goal - len(into), _RECEIVE_BYTES))
        except trio.BrokenResourceError:
            return False
        if not chunk:
            return False
        into += chunk
    return True


class Tls6000Source:
    """The P1/A1 camera: TLS to ``host:port`` (6000), auth, then frames. ``read_timeout_s`` bounds the wait for
    each frame (these cameras send 0.5-5 fps), ``connect_timeout_s`` the TCP + TLS handshake. With ``trust``, its
    certificate is checked before the access code goes out and pinned once the camera accepted the code, as the
    MQTT link does with the printer's."""

    kind = "tls6000"

    def __init__(
        self,
        host: str,
        port: int,
        access_code: Secret,
        *,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 15.0,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        trust: TrustOnFirstUse | None = None,
    ) -> None:
        self.host, self.port = host, port
        self._access_code = access_code
        self._trust = trust
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._max = max_frame_bytes

    async def stream(self, on_frame: OnFrame) -> None:
        where = f"{self.host}:{self.port}"
        try:
            with trio.fail_after(self._connect_timeout_s):
                tcp = await trio.open_tcp_stream(self.host, self.port)
                stream = trio.SSLStream(tcp, printer_tls_context(), server_hostname=None)
                await stream.do_handshake()
        except trio.TooSlowError:
            raise CameraError(f"timeout connecting to the camera at {where}") from None
        except (OSError, trio.BrokenResourceError) as exc:
            raise CameraError(f"cannot connect to the camera at {where}: {_why(exc)}") from None
        try:
            seen = self._check_certificate(stream)  # before the access code goes out
            await self._converse(stream, on_frame, where, seen)
        except (OSError, trio.BrokenResourceError) as exc:
            raise CameraError(f"camera connection to {where} lost: {_why(exc)}") from None
        finally:
            await trio.aclose_forcefully(stream)

    def _check_certificate(self, stream: trio.SSLStream[trio.SocketStream]) -> str | None:
        if self._trust is None:
            return None
        try:
            return self._trust.check(stream.getpeercert(binary_form=True), f"the camera at {self.host}:{self.port}")
        except CertificateRefused as refused:
            raise CameraError(str(refused), retry_s=60.0) from None

    async def _converse(
        self, stream: trio.SSLStream[trio.SocketStream], on_frame: OnFrame, where: str, seen: str | None
    ) -> None:
        await stream.send_all(auth_packet(self._access_code.reveal()))
        frames = 0
        while True:
            buf = bytearray()
            with trio.move_on_after(self._read_timeout_s) as timeout:
                whole = await receive_exactly(stream, HEADER_SIZE, buf)
            if timeout.cancelled_caught:
                raise CameraError(f"no frame from the camera at {where} for {self._read_timeout_s:g} s")
            if not whole:
                if frames == 0 and not buf:
                    raise CameraError("camera refused the access code (it closed the connection after login)")
                raise CameraError(f"the camera at {where} closed the connection")
            try:
                size = parse_header(bytes(buf), max_size=self._max)
            except FrameError as exc:
                raise CameraError(f"bad data from the camera at {where}: {exc}") from None
            if frames == 0 and seen is not None and self._trust is not None:
                self._trust.accept(seen)  # the camera took the access code: pin what it presented
            payload = bytearray()
            with trio.move_on_after(self._read_timeout_s) as timeout:
                whole = await receive_exactly(stream, size, payload)
            if timeout.cancelled_caught or not whole:
                raise CameraError(f"the camera at {where} stopped in the middle of a frame")
            if not is_jpeg(payload):
                raise CameraError(f"bad data from the camera at {where}: a frame is not a JPEG")
            frames += 1
            on_frame(bytes(payload))


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
