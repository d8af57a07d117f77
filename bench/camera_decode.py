"""RTSPS camera decoding: what the ffmpeg decoder (and the TLS proxy in the service) cost per output rate and size.

GStreamer's RTSPS server (tests/rtsps_server.py, run with the system Python) plays the printer: H.264 at the size and
rate of an X1/H2/P2 camera (1920x1080; 15 fps by default, ``BAMBUPI_BENCH_CAMERA=WxH@fps`` to change). For each
output setting (``decoder_fps`` x ``decoder_width``) one :class:`~bambupi.camera.rtsps.RtspsSource` runs for
``MEASURE_S`` after its first frame; the figures are CPU seconds per second (% of one core) read from /proc for the
decoder process and for this process (the proxy: TLS and RTP relay, plus frame cutting), and the frames delivered.
CPU time, not wall time, so a busy machine skews the figures less (the server's own encoding is not counted).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

from bambupi.camera.rtsps import RtspsSource
from bambupi.camera.source import CameraError
from bambupi.secret import Secret

CODE = "12345678"
MEASURE_S = 10.0
SETTINGS = [(1.0, 640), (2.0, 640), (5.0, 640), (1.0, 1280), (2.0, 1280), (5.0, 1280)]
SERVER = Path(__file__).resolve().parent.parent / "tests" / "rtsps_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"
KBPS = "3000"  # a detailed picture (GStreamer's "snow") at about the bit rate of a printer's 1080p camera


def _cpu_seconds(pid: int | str) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _measure(port: int, fps: float, width: int) -> tuple[float, float, float, int]:
    """(decoder CPU %, proxy CPU %, delivered fps, mean frame bytes)."""
    source = RtspsSource("127.0.0.1", port, Secret(CODE), fps=fps, width=width)
    frames: list[int] = []
    window: dict[str, float] = {}

    def on_frame(data: bytes) -> None:
        frames.append(len(data))
        if len(frames) == 2 and source.decoder_pid is not None:  # the first frame is past the stream's probing
            window.update(start=time.monotonic(), decoder=_cpu_seconds(source.decoder_pid), own=_cpu_seconds("self"))
            window["first"] = len(frames)

    async with trio.open_nursery() as nursery:

        async def run() -> None:
            try:
                await source.stream(on_frame)
            except CameraError as exc:
                print(f"  camera error: {exc}")
            nursery.cancel_scope.cancel()

        nursery.start_soon(run)
        with trio.move_on_after(60):
            while "start" not in window:
                await trio.sleep(0.1)
        if "start" not in window:
            nursery.cancel_scope.cancel()
            return 0.0, 0.0, 0.0, 0
        await trio.sleep(MEASURE_S)
        assert source.decoder_pid is not None
        elapsed = time.monotonic() - window["start"]
        decoder = (_cpu_seconds(source.decoder_pid) - window["decoder"]) / elapsed * 100
        own = (_cpu_seconds("self") - window["own"]) / elapsed * 100
        delivered = (len(frames) - window["first"]) / elapsed
        nursery.cancel_scope.cancel()
    sizes = frames[int(window["first"]) :] or [0]
    return decoder, own, delivered, sum(sizes) // len(sizes)


def main() -> None:
    camera = os.environ.get("BAMBUPI_BENCH_CAMERA", "1920x1080@15")
    size, _, rate = camera.partition("@")
    if not Path(SYSTEM_PYTHON).exists() or subprocess.run(["which", "ffmpeg"], capture_output=True).returncode:
        print("camera decode: skipped (needs ffmpeg and the system Python with GStreamer's RTSP server)")
        return
    with tempfile.TemporaryDirectory() as folder:
        cert, key = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
             "-days", "2", "-subj", "/CN=bench"],
            check=True, capture_output=True,
        )  # fmt: skip
        server = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER), str(cert), str(key), "--digest", "--size", size, "--fps", rate or "15",
             "--pattern", "snow", "--kbps", KBPS],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert server.stdin is not None and server.stdout is not None
            server.stdin.write(CODE + "\n")
            server.stdin.flush()
            line = server.stdout.readline()
            if not line.startswith("PORT"):
                print("camera decode: skipped (the RTSPS server did not start)")
                return
            port = int(line.split()[1])
            print(
                f"camera decode: an H.264 camera of {size} at {rate or 15} fps, {KBPS} kbit/s over RTSPS, "
                f"{MEASURE_S:g} s per setting"
            )
            print("  decoder_fps  decoder_width  decoder CPU %  proxy CPU %  delivered fps  JPEG KB")
            for fps, width in SETTINGS:
                decoder, own, delivered, frame = trio.run(_measure, port, fps, width)
                print(f"  {fps:11g}  {width:13d}  {decoder:13.1f}  {own:11.1f}  {delivered:13.1f}  {frame / 1024:7.0f}")
        finally:
            server.kill()
            server.wait()


if __name__ == "__main__":
    sys.exit(main())
