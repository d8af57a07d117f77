"""The X1/H2/P2 camera (RTSPS, port 322): the service holds the TLS connection, an ``ffmpeg`` process decodes.

Why a subprocess and not an in-process binding (PyAV): a decoder that crashes, hangs or leaks in a process of its
own is killed and restarted while the service goes on, and its CPU shows apart; inside the service it would take
the service (and its event loop's thread) with it. PyAV's wheels also bring an FFmpeg build of their own (tens of
MB, and none for the 32-bit Raspberry Pi OS many Pi 3 run), where Debian's ffmpeg is one ``apt install``.

Why not hand ffmpeg the printer's URL: the access code would sit in its command line for every local user to read
in ``ps``, and Debian's ffmpeg (GnuTLS) neither verifies nor pins the printer's certificate (and a peer found the
P2S needs an OpenSSL TLS path). So :class:`~bambupi.camera.rtsps_proxy.RtspsProxy`
terminates TLS here with the pinned certificate and gives ffmpeg a one-time loopback URL without the code.

Supervision: no decoded frame for ``stall_s`` (twice that for the first one: ffmpeg probes the stream and waits
for a keyframe, slow on P2S firmware 01.02.00.00) kills the decoder and ends the attempt with a
:class:`CameraError`; :class:`~bambupi.camera.frames.FrameHub` reconnects with its backoff. The decoder runs in a
session of its own and the whole process group is killed whenever an attempt ends (also when the task is
cancelled). If the service itself dies (even SIGKILL), the decoder's input (the proxy's socket) and output (the
pipe) close with it, and ffmpeg ends on the broken stream. ``prctl(PR_SET_PDEATHSIG)`` is not used: trio starts
processes from a worker thread, and the signal fires when that *thread* exits, which would kill a healthy decoder.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
from collections import deque
from typing import Final

import trio

from bambupi.camera.jpeg import JpegSplitter
from bambupi.camera.rtsps_proxy import RtspsProxy
from bambupi.camera.source import CameraError, OnFrame
from bambupi.printer.tls_pins import TrustOnFirstUse
from bambupi.secret import Secret, redact

log = logging.getLogger("bambupi.camera")

DEFAULT_FPS: Final = 2.0
DEFAULT_WIDTH: Final = 1280
DEFAULT_STALL_S: Final = 20.0
# The printer said so (``ipcam.rtsp_url: "disable"``): shown as the camera's status; nothing connects until the
# report carries a URL again.
LIVEVIEW_OFF: Final = (
    "LAN Only Liveview is off on the printer: turn it on in the settings on the printer's screen "
    "(X1: Settings → General)"
)
_RECEIVE_BYTES: Final = 256 * 1024
_STDERR_LINES: Final = 5


class RtspsSource:
    """The X1/H2/P2 camera: :class:`RtspsProxy` + an ``ffmpeg`` decoder writing MJPEG at ``fps`` frames per second,
    at most ``width`` pixels wide (0: as the camera sends it). ``decoder_pid`` is the running decoder's, for tests."""

    kind = "rtsps"

    def __init__(
        self,
        host: str,
        port: int,
        access_code: Secret,
        *,
        trust: TrustOnFirstUse | None = None,
        ffmpeg: str = "ffmpeg",
        fps: float = DEFAULT_FPS,
        width: int = DEFAULT_WIDTH,
        stall_s: float = DEFAULT_STALL_S,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self.host, self.port = host, port
        self._access_code = access_code
        self._trust = trust
        self._ffmpeg = ffmpeg
        self._fps = fps
        self._width = width
        self._stall_s = stall_s
        self._connect_timeout_s = connect_timeout_s
        self.decoder_pid: int | None = None

    def command(self, executable: str, url: str) -> list[str]:
        """ffmpeg's arguments: nothing secret in them (``url`` is the proxy's)."""
        scale = f",scale='min({self._width},iw)':-2" if self._width else ""
        return [
            executable, "-hide_banner", "-nostdin", "-loglevel", "error",
            "-rtsp_transport", "tcp",
            # P2S firmware 01.02.00.00: keyframes come slowly (probe enough to find one) and RTP timestamps do not
            # advance (stamp packets by arrival, or the fps filter drops every frame after the first).
            "-probesize", "1000000", "-analyzeduration", "1000000", "-use_wallclock_as_timestamps", "1",
            "-i", url,
            "-an", "-vf", f"fps={self._fps:g}{scale}", "-c:v", "mjpeg", "-q:v", "5", "-f", "mjpeg", "pipe:1",
        ]  # fmt: skip

    async def stream(self, on_frame: OnFrame) -> None:
        executable = shutil.which(self._ffmpeg)
        if executable is None:
            raise CameraError(
                "ffmpeg is not installed: this printer's camera (RTSPS) needs it (sudo apt install ffmpeg)",
                retry_s=300.0,
            )
        proxy = RtspsProxy(
            self.host, self.port, self._access_code, trust=self._trust, connect_timeout_s=self._connect_timeout_s
        )
        await proxy.open()  # TLS and the certificate check first: a closed port or a stranger costs no decoder
        stderr: deque[str] = deque(maxlen=_STDERR_LINES)
        stalled = False
        try:
            process = await trio.lowlevel.open_process(
                self.command(executable, proxy.url), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, start_new_session=True, env=_decoder_environment(),
            )  # fmt: skip
        except BaseException:
            with trio.CancelScope(shield=True):
                await proxy.aclose()
            raise
        self.decoder_pid = process.pid
        assert process.stdout is not None and process.stderr is not None
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._serve, proxy, process.pid, nursery.cancel_scope)
                nursery.start_soon(_collect_lines, process.stderr, stderr)
                stalled = await self._read_frames(process.stdout, on_frame)
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                _kill_group(process)
                await process.wait()
                await proxy.aclose()
            self.decoder_pid = None
        if proxy.failure is not None:
            raise proxy.failure
        if stalled:
            raise CameraError(
                f"no picture from the camera at {self.host}:{self.port} for {self._stall_s:g} s; restarting the decoder"
            )
        raise CameraError(self._reason(list(stderr), proxy))

    @staticmethod
    async def _serve(proxy: RtspsProxy, pid: int, scope: trio.CancelScope) -> None:
        await proxy.serve(pid)
        if proxy.failure is not None:
            scope.cancel()  # the reason is known: do not wait for ffmpeg to notice

    async def _read_frames(self, stdout: trio.abc.ReceiveStream, on_frame: OnFrame) -> bool:
        """Hand on frames until ffmpeg's output ends (False) or no frame came in time (True: a stall)."""
        splitter = JpegSplitter()
        allowance = 2 * self._stall_s  # the first frame: stream probing and the first keyframe
        deadline = trio.current_time() + allowance
        while True:
            with trio.move_on_at(deadline):
                chunk = await stdout.receive_some(_RECEIVE_BYTES)
                if not chunk:
                    return False
                for frame in splitter.feed(chunk):
                    on_frame(frame)
                    deadline = trio.current_time() + self._stall_s
                continue
            return True

    def _reason(self, lines: list[str], proxy: RtspsProxy) -> str:
        where = f"{self.host}:{self.port}"
        text = redact(" ".join(lines).replace(proxy.url, "<camera>"), self._access_code)
        if proxy.last_status is not None:
            return f"the camera at {where} answered {proxy.last_status}"
        if proxy.accepted_code and not text:
            return f"the camera at {where} ended the stream"
        return f"camera stream from {where} ended: {text[-300:] or 'ffmpeg stopped without output'}"


def _decoder_environment() -> dict[str, str]:
    """ffmpeg gets only what it needs: nothing of the service's environment is passed on."""
    return {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C"}


def _kill_group(process: trio.Process) -> None:
    if process.returncode is not None:
        return  # reaped: its pid may belong to another process now
    try:
        os.killpg(process.pid, signal.SIGKILL)  # its own session: the group is the decoder and anything it started
    except (ProcessLookupError, PermissionError):
        process.kill()


async def _collect_lines(stream: trio.abc.ReceiveStream, into: deque[str]) -> None:
    pending = b""
    while chunk := await stream.receive_some(4096):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        into.extend(line.decode("utf-8", "replace").strip() for line in lines if line.strip())
        pending = pending[-4096:]
