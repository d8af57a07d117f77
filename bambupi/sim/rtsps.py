"""The simulated X1/H2/P2 camera: RTSPS like a printer's port 322, H.264 made from the generated pictures.

It behaves like the printers' LIVE555 server where clients can tell: TLS with the simulator's certificate; request
lines must say ``rtsps://`` (an ``rtsp://`` one gets ``301`` with the ``rtsps://`` address); ``OPTIONS`` is free,
every other request needs Digest (``realm="LIVE555 Streaming Media"``, user ``bblp``, the access code; Basic is
answered with the challenge again); ``SETUP`` takes only RTP over the RTSP connection (``interleaved``); ``PLAY``
streams H.264 (RFC 6184: single NAL units, FU-A for big ones) until ``TEARDOWN`` or the client leaves. At most
``max_clients`` (2) are served; a further connection stalls before the TLS handshake, like the port-6000 camera.
As a P2S (firmware 01.02.00.00) it stamps every picture with the same RTP time (``frozen_timestamps``).

The H.264 comes from an ``ffmpeg`` (libx264) encoder fed the same pictures as the port-6000 camera
(:func:`~bambupi.sim.camera.render_frame`), run only while someone plays, a keyframe every two seconds (a client
starts at the next one). :func:`encoder_available` says whether this machine can (the simulator's RTSPS models
report Liveview off without it).
"""

from __future__ import annotations

import hmac
import logging
import secrets
import shutil
import ssl
import subprocess
from collections.abc import Callable
from dataclasses import replace
from typing import Final

import trio

from bambupi.camera.rtsps_proxy import PATH, RtspMessage, RtspReader, digest_authorization, parse_challenge
from bambupi.sim.camera import FrameInfo, render_frame

log = logging.getLogger(__name__)

REALM: Final = "LIVE555 Streaming Media"
HANDSHAKE_TIMEOUT_S: Final = 10.0
SEND_TIMEOUT_S: Final = 10.0
MAX_PAYLOAD: Final = 1400  # RTP payload per packet; bigger NAL units go as FU-A fragments
PAYLOAD_TYPE: Final = 96
SDP: Final = (
    "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=bambupi simulator\r\nt=0 0\r\na=control:*\r\n"
    "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:track1\r\n"
)
_START_CODE: Final = b"\x00\x00\x01"


def encoder_available(ffmpeg: str = "ffmpeg") -> bool:
    return shutil.which(ffmpeg) is not None


# --- pure parts: Annex B to NAL units to RTP packets ---------------------------------------------------------------


def split_nal_units(buffer: bytes) -> tuple[list[bytes], bytes]:
    """The complete NAL units in an Annex B byte stream, and the rest (the last unit may still grow)."""
    starts: list[tuple[int, int]] = []  # (where the start code begins, where the unit begins)
    at = buffer.find(_START_CODE)
    while at >= 0:
        begin = at - 1 if at > 0 and buffer[at - 1] == 0 else at  # a 4-byte start code
        starts.append((begin, at + 3))
        at = buffer.find(_START_CODE, at + 3)
    if not starts:
        return [], buffer
    units = [buffer[unit : starts[i + 1][0]] for i, (_, unit) in enumerate(starts[:-1])]
    return [u for u in units if u], buffer[starts[-1][0] :]


def rtp_packets(nal: bytes, *, seq: int, timestamp: int, ssrc: int, last: bool) -> list[bytes]:
    """One NAL unit as RTP packets (sequence numbers from ``seq``); ``last`` marks the end of a picture."""

    def packet(payload: bytes, number: int, marker: bool) -> bytes:
        header = bytes([0x80, (0x80 if marker else 0) | PAYLOAD_TYPE]) + (number & 0xFFFF).to_bytes(2, "big")
        return header + (timestamp & 0xFFFFFFFF).to_bytes(4, "big") + ssrc.to_bytes(4, "big") + payload

    if len(nal) <= MAX_PAYLOAD:
        return [packet(nal, seq, last)]
    indicator = (nal[0] & 0xE0) | 28  # FU-A
    kind = nal[0] & 0x1F
    chunks = [nal[i : i + MAX_PAYLOAD] for i in range(1, len(nal), MAX_PAYLOAD)]
    out = []
    for i, chunk in enumerate(chunks):
        start, end = i == 0, i == len(chunks) - 1
        fu_header = (0x80 if start else 0) | (0x40 if end else 0) | kind
        out.append(packet(bytes([indicator, fu_header]) + chunk, seq + i, last and end))
    return out


def interleaved(packet: bytes, channel: int = 0) -> bytes:
    return b"$" + bytes([channel]) + len(packet).to_bytes(2, "big") + packet


def check_digest(header: str | None, method: str, password: str, nonce: str) -> bool:
    """Whether an ``Authorization`` header is a right Digest answer to our challenge."""
    if header is None:
        return False
    scheme, params = parse_challenge(header)
    if scheme != "digest" or params.get("nonce") != nonce or params.get("username") != "bblp":
        return False
    challenge = {"realm": params.get("realm", ""), "nonce": nonce}
    count = 1
    if params.get("qop"):
        challenge["qop"] = params["qop"]
        try:
            count = int(params.get("nc", "1"), 16)
        except ValueError:
            return False
    expected = digest_authorization(
        challenge, method, params.get("uri", ""), password, count=count, cnonce=params.get("cnonce")
    )
    _, wanted = parse_challenge(expected)
    return params.get("realm") == REALM and hmac.compare_digest(wanted["response"], params.get("response", ""))


# --- the server ----------------------------------------------------------------------------------------------------


class _Picture:
    """One encoded picture: its NAL units, whether it starts a keyframe, its RTP time."""

    def __init__(self, units: list[bytes], timestamp: int) -> None:
        self.units = units
        self.timestamp = timestamp
        self.key = any(unit[0] & 0x1F in (5, 7) for unit in units)


class RtspsCameraServer:
    """See the module. ``connections`` counts accepted TCP connections, ``clients`` the ones playing now,
    ``logins`` the requests that carried a right access code, ``refused`` the wrong ones."""

    def __init__(
        self,
        access_code: str,
        ssl_context: ssl.SSLContext,
        snapshot: Callable[[], FrameInfo],
        *,
        fps: float = 2.0,
        max_clients: int = 2,
        ffmpeg: str = "ffmpeg",
        frozen_timestamps: bool = False,
    ) -> None:
        self._access_code = access_code
        self._ssl_context = ssl_context
        self._snapshot = snapshot
        self.fps = fps
        self._ffmpeg = ffmpeg
        self._frozen_timestamps = frozen_timestamps  # P2S firmware 01.02.00.00: every picture stamped alike
        self._slots = trio.Semaphore(max_clients)
        self._latest: _Picture | None = None
        self._number = 0
        self._new_picture = trio.lowlevel.ParkingLot()
        self._wanted = trio.Event()
        self.connections = 0
        self.clients = 0
        self.logins = 0
        self.refused = 0
        self.port = 0

    async def serve(
        self, host: str, port: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        self.port = int(listeners[0].socket.getsockname()[1])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._encode_while_watched)
            await nursery.start(trio.serve_listeners, self._serve_client, listeners)
            task_status.started(self.port)

    # -- the encoder ------------------------------------------------------------------------------------------------
    async def _encode_while_watched(self) -> None:
        while True:
            await self._wanted.wait()
            try:
                await self._encode()
            except OSError as exc:
                log.warning("simulated RTSPS camera: the encoder failed: %s", exc)
            self._wanted = trio.Event()
            if self.clients:
                await trio.sleep(1.0)  # an encoder that died while someone watches: start another
                self._wanted.set()

    async def _encode(self) -> None:
        gop = max(1, round(self.fps * 2))
        command = [
            self._ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
            "-f", "image2pipe", "-c:v", "mjpeg", "-framerate", f"{self.fps:g}", "-i", "pipe:0",
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
            "-g", str(gop), "-f", "h264", "pipe:1",
        ]  # fmt: skip
        process = await trio.lowlevel.open_process(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True
        )
        assert process.stdin is not None and process.stdout is not None
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._feed, process.stdin, nursery.cancel_scope)
                await self._read_pictures(process.stdout)
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                process.kill()
                await process.wait()

    async def _feed(self, stdin: trio.abc.SendStream, scope: trio.CancelScope) -> None:
        """Pictures into the encoder at ``fps`` while anyone plays; then the encoder is closed."""
        number = 0
        try:
            while self.clients:
                started = trio.current_time()
                number += 1
                info = replace(self._snapshot(), number=number)
                await stdin.send_all(await trio.to_thread.run_sync(render_frame, info))
                await trio.sleep_until(started + 1.0 / self.fps)
            await stdin.aclose()  # the encoder flushes and ends; _read_pictures sees the end
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            scope.cancel()

    async def _read_pictures(self, stdout: trio.abc.ReceiveStream) -> None:
        pending = b""
        units: list[bytes] = []
        while chunk := await stdout.receive_some(256 * 1024):
            found, pending = split_nal_units(pending + chunk)
            for unit in found:
                units.append(unit)
                if unit[0] & 0x1F in (1, 5):  # a slice: with zerolatency's one slice per picture, its end
                    self._publish(units)
                    units = []

    def _publish(self, units: list[bytes]) -> None:
        self._number += 1
        timestamp = 5400 if self._frozen_timestamps else int(self._number * 90_000 / self.fps)
        self._latest = _Picture(units, timestamp)
        self._new_picture.unpark_all()

    # -- a client ---------------------------------------------------------------------------------------------------
    async def _serve_client(self, tcp: trio.SocketStream) -> None:
        self.connections += 1
        async with self._slots:  # a third client waits here, before the TLS handshake, like the printer
            stream = trio.SSLStream(tcp, self._ssl_context, server_side=True)
            try:
                with trio.fail_after(HANDSHAKE_TIMEOUT_S):
                    await stream.do_handshake()
                await _Session(self, stream).run()
            except* (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, OSError):
                pass  # the client left (a decoder killed, a network gone): its session ends, the server goes on
            finally:
                await trio.aclose_forcefully(stream)


class _Session:
    def __init__(self, server: RtspsCameraServer, stream: trio.SSLStream[trio.SocketStream]) -> None:
        self.server = server
        self.stream = stream
        self.nonce = secrets.token_hex(16)
        self.session = secrets.token_hex(4).upper()
        self.set_up = False
        self.lock = trio.Lock()

    async def send(self, data: bytes) -> None:
        async with self.lock:
            with trio.fail_after(SEND_TIMEOUT_S):
                await self.stream.send_all(data)

    async def reply(self, request: RtspMessage, status: str, headers: list[tuple[str, str]] | None = None,
                    body: bytes = b"") -> None:  # fmt: skip
        message = RtspMessage(f"RTSP/1.0 {status}", [("CSeq", request.get("CSeq") or "0"), *(headers or [])], body)
        await self.send(message.to_bytes())

    async def run(self) -> None:
        reader = RtspReader()
        async with trio.open_nursery() as nursery:
            while data := await self.stream.receive_some(64 * 1024):
                for item in reader.feed(data):
                    if isinstance(item, bytes) or item.is_response:
                        continue  # the client's RTCP reports, or a reply: nothing to answer
                    if not await self.answer(item, nursery):
                        nursery.cancel_scope.cancel()
                        return
            nursery.cancel_scope.cancel()

    async def answer(self, request: RtspMessage, nursery: trio.Nursery) -> bool:
        """Answer one request; False ends the connection."""
        server = self.server
        base = request.uri.split("/streaming/", 1)[0]
        if request.uri.startswith("rtsp://"):
            await self.reply(request, "301 Moved Permanently", [("Location", "rtsps://" + request.uri[7:])])
            return True
        if request.method == "OPTIONS":
            public = "OPTIONS, DESCRIBE, SETUP, TEARDOWN, PLAY, PAUSE, GET_PARAMETER, SET_PARAMETER"
            await self.reply(request, "200 OK", [("Public", public)])
            return True
        authorization = request.get("Authorization")
        if not check_digest(authorization, request.method, server._access_code, self.nonce):
            if authorization is not None:
                server.refused += 1
            challenge = f'Digest realm="{REALM}", nonce="{self.nonce}"'
            await self.reply(request, "401 Unauthorized", [("WWW-Authenticate", challenge)])
            return True
        server.logins += 1
        if request.method == "DESCRIBE":
            if PATH not in request.uri:
                await self.reply(request, "404 Stream Not Found")
                return True
            headers = [("Content-Base", f"{base}{PATH}/"), ("Content-Type", "application/sdp")]
            await self.reply(request, "200 OK", headers, SDP.encode())
        elif request.method == "SETUP":
            transport = request.get("Transport") or ""
            if "RTP/AVP/TCP" not in transport:
                await self.reply(request, "461 Unsupported Transport")
                return True
            self.set_up = True
            transport_reply = "RTP/AVP/TCP;unicast;interleaved=0-1"
            await self.reply(
                request, "200 OK", [("Transport", transport_reply), ("Session", f"{self.session};timeout=65")]
            )
        elif request.method == "PLAY":
            if not self.set_up:
                await self.reply(request, "455 Method Not Valid in This State")
                return True
            await self.reply(request, "200 OK", [("Session", self.session), ("Range", "npt=0.000-")])
            nursery.start_soon(self.play)
        elif request.method in ("GET_PARAMETER", "SET_PARAMETER", "PAUSE"):
            await self.reply(request, "200 OK", [("Session", self.session)])
        elif request.method == "TEARDOWN":
            await self.reply(request, "200 OK")
            return False
        else:
            await self.reply(request, "405 Method Not Allowed")
        return True

    async def play(self) -> None:
        server = self.server
        server.clients += 1
        server._wanted.set()
        seq = secrets.randbelow(0x10000)
        ssrc = secrets.randbits(32)
        started = False
        seen: _Picture | None = None
        try:
            while True:
                while server._latest is seen or server._latest is None:
                    await server._new_picture.park()
                picture = seen = server._latest
                started = started or picture.key  # a decoder can begin only at a keyframe
                if not started:
                    continue
                packets = []
                for i, unit in enumerate(picture.units):
                    made = rtp_packets(
                        unit, seq=seq, timestamp=picture.timestamp, ssrc=ssrc, last=i == len(picture.units) - 1
                    )
                    seq += len(made)
                    packets += [interleaved(p) for p in made]
                await self.send(b"".join(packets))
        finally:
            server.clients -= 1
