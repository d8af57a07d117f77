"""Camera relay: 1, 10 and 50 MJPEG viewers of a 5 fps x ~100 KB stream through ``bambupi run``.

The bench process plays the printer (MQTT simulator + port-6000 camera serving one fixed ~100 KB JPEG at 5 fps)
and the viewers; the service runs as its own process so its CPU, RSS and threads are measured alone.
Figures: delivered fps per viewer (min/median), service CPU % of one core, RSS, threads, time from request to
first frame for a new viewer while the upstream is live, upstream connections; then one stalled viewer: RSS growth.
"""

from __future__ import annotations

import io
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio
from PIL import Image

from bambupi.sim.broker import server_ssl_context
from bambupi.sim.camera import CameraServer, FrameInfo, render_frame
from bambupi.sim.simulator import Simulator
from bench.startup import _free_port, _rss_mib

SERIAL = "01P00A000000001"
CODE = "12345678"
FPS = 5.0
MEASURE_S = 10.0
STALL_S = 30.0


def _frame_of_about(size: int) -> bytes:
    """A 1280x720 JPEG of roughly ``size`` bytes: the simulator's picture with a noisy patch."""
    base = Image.open(io.BytesIO(render_frame(FrameInfo("P1S", "RUNNING", 40, "bench", time.time(), 1))))
    rng = random.Random(1)
    side = 64
    while True:
        noise = Image.frombytes("L", (side, side), bytes(rng.getrandbits(8) for _ in range(side * side)))
        image = base.copy()
        image.paste(noise.convert("RGB"), (900, 300))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=80)
        if out.tell() >= size or side >= 700:
            return out.getvalue()
        side += 32


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


class _Viewer:
    def __init__(self) -> None:
        self.frames = 0
        self.first_frame_s: float | None = None

    async def run(self, port: int) -> None:
        started = trio.current_time()
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(f"GET /api/printers/bench/camera HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += await stream.receive_some(65536)
            buf = buf.split(b"\r\n\r\n", 1)[1]
            while True:
                while b"\r\n\r\n" not in buf:
                    buf += await stream.receive_some(65536)
                head, buf = buf.split(b"\r\n\r\n", 1)
                size = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                while len(buf) < size + 2:
                    buf += await stream.receive_some(262144)
                buf = buf[size + 2 :]
                self.frames += 1
                if self.first_frame_s is None:
                    self.first_frame_s = trio.current_time() - started


async def _measure(port: int, pid: int, count: int) -> dict[str, float]:
    viewers = [_Viewer() for _ in range(count)]
    async with trio.open_nursery() as nursery:
        for viewer in viewers:
            nursery.start_soon(viewer.run, port)
        await trio.sleep(2.0)  # connect, warm up
        before = [v.frames for v in viewers]
        cpu0, t0 = _cpu_seconds(pid), time.monotonic()
        await trio.sleep(MEASURE_S)
        cpu1, t1 = _cpu_seconds(pid), time.monotonic()
        rates = [(v.frames - b) / (t1 - t0) for v, b in zip(viewers, before, strict=True)]
        # A new viewer while the upstream is live: how long until its first whole frame.
        late = _Viewer()
        nursery.start_soon(late.run, port)
        with trio.fail_after(5):
            while late.first_frame_s is None:
                await trio.sleep(0.001)
        result = {
            "fps_min": min(rates), "fps_median": statistics.median(rates), "cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0),
            "rss_mib": _rss_mib(pid), "threads": _threads(pid), "first_frame_ms": late.first_frame_s * 1000,
        }  # fmt: skip
        nursery.cancel_scope.cancel()
    return result


async def _stalled(port: int, pid: int) -> tuple[float, float]:
    """RSS before and after ``STALL_S`` with one viewer that never reads, beside one that does."""
    reader = _Viewer()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader.run, port)
        stalled = await trio.open_tcp_stream("127.0.0.1", port)
        await stalled.send_all(f"GET /api/printers/bench/camera HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        await trio.sleep(2.0)
        before = _rss_mib(pid)
        await trio.sleep(STALL_S)
        after = _rss_mib(pid)
        await stalled.aclose()
        nursery.cancel_scope.cancel()
    return before, after


async def _bench() -> None:
    frame = _frame_of_about(100 * 1024)
    web_port = _free_port()
    async with trio.open_nursery() as nursery:
        sim = Simulator("P1S", SERIAL, CODE, scenario="idle")
        await nursery.start(sim.run)
        camera = CameraServer(CODE, server_ssl_context(), lambda: FrameInfo("P1S", "", 0, None, 0, 0), fps=FPS,
                              frame=frame)  # fmt: skip
        camera_port = await nursery.start(camera.serve, "127.0.0.1", 0)
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "bambupi.toml"
            config.write_text(
                f'[web]\nlisten = "127.0.0.1:{web_port}"\nmax_connections_per_client = 200\n\n'
                f'[[printer]]\nid = "bench"\nmodel = "P1S"\nhost = "127.0.0.1"\nserial = "{SERIAL}"\n'
                f'access_code = "{CODE}"\nmqtt_port = {sim.mqtt_port}\ncamera_port = {camera_port}\n\n'
                f'[storage]\npath = "{tmp}/bambupi.sqlite3"\n\n[discovery]\nenabled = false\n'
            )
            service = subprocess.Popen(
                [sys.executable, "-m", "bambupi", "run", "-c", str(config)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                with trio.fail_after(20):
                    while True:
                        try:
                            await (await trio.open_tcp_stream("127.0.0.1", web_port)).aclose()
                            break
                        except OSError:
                            await trio.sleep(0.1)
                print(f"camera relay: {FPS:g} fps x {len(frame) // 1024} KB frames, {MEASURE_S:g} s per row")
                for count in (1, 10, 50):
                    r = await _measure(web_port, service.pid, count)
                    print(
                        f"  {count:3d} viewers: fps/viewer min {r['fps_min']:.2f} median {r['fps_median']:.2f}, "
                        f"service CPU {r['cpu_pct']:.1f} % of one core, RSS {r['rss_mib']:.0f} MiB, "
                        f"threads {r['threads']:.0f}, first frame {r['first_frame_ms']:.1f} ms, "
                        f"upstream connections {camera.connections}"
                    )
                before, after = await _stalled(web_port, service.pid)
                print(f"  one stalled viewer for {STALL_S:g} s: RSS {before:.1f} -> {after:.1f} MiB")
            finally:
                service.terminate()
                service.wait(10)
        nursery.cancel_scope.cancel()


def main() -> None:
    trio.run(_bench)


if __name__ == "__main__":
    main()
