"""Soak: the real service under churn while its printer's broker is killed, with fds and RSS over time.

``bambupi run`` runs in its own process (its fds and RSS are the service's alone) against ``bambupi sim`` (MQTT over
TLS and the port-6000 camera) in another, which is killed with SIGKILL every ``SOAK_KILL_EVERY_S`` and started again
on the same ports after each of ``SOAK_DOWN_S`` in turn (seconds, comma-separated; default 1,5; the issue 14 pass
used 1, 30 and 120): a broker kill as the printer's reboot or a Wi-Fi drop looks to the box. For each it prints how
long after the broker returned the printer was online, and how many MQTT sessions the service opened to it.
Meanwhile this process churns WebSocket connects (snapshot, then close), MJPEG viewers (two frames, then close) and
page/API requests. It prints the service's open fds and RSS every ``SOAK_REPORT_EVERY_S`` and the totals at the end.

Then the power log is killed with SIGKILL mid-write ``KILLS_WHILE_LOGGING`` times (the sampler child of
``bench/power.py``, 100 samples/s, a batch every 0.1 s): every committed sample must be there, the file intact.

``make soak`` (``SOAK_SECONDS``, default 120). With ``SOAK_TRACEMALLOC=1`` the service runs under tracemalloc and
the end prints the lines whose allocations grew most between the end of warm-up and the end (slower, bigger RSS).
Not part of ``make test``: it measures, it does not pass or fail, except that any failed request is printed.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trio
from trio_websocket import HandshakeError, open_websocket_url

from bench.power import start_child
from bench.startup import _free_port, _rss_mib

SERIAL = "01P00A000000001"
CODE = "12345678"
SECONDS = float(os.environ.get("SOAK_SECONDS", "120"))
WARM_UP_S = 10.0
KILL_EVERY_S = float(os.environ.get("SOAK_KILL_EVERY_S", "30"))
DOWN_S = [float(s) for s in os.environ.get("SOAK_DOWN_S", "1,5").split(",")]
REPORT_EVERY_S = float(os.environ.get("SOAK_REPORT_EVERY_S", "15"))
TRACE = os.environ.get("SOAK_TRACEMALLOC") == "1"
PARALLEL_WS, PARALLEL_MJPEG, PARALLEL_HTTP = 4, 2, 2
# Paced near the issue 14 pass (10 min: 2,980 WebSockets, 750 MJPEG viewers, 5,630 requests), a little above it.
WS_PAUSE_S, HTTP_PAUSE_S = 0.5, 0.2
# Longer than the service's own limits (15 s for a camera's first frame, then 503), so a failure is the service's.
CLIENT_TIMEOUT_S = 30.0
PATHS = ("/", "/healthz", "/api/printers", "/api/printers/bench", "/api/printers/bench/snapshot.jpg", "/api/power",
         "/api/jobs", "/power")

# Runs the service under tracemalloc; SIGUSR1 dumps a snapshot to the next numbered file.
TRACED_SERVICE = """
import signal, sys, tracemalloc
tracemalloc.start(8)
dumps = [0]
def dump(signum, frame):
    tracemalloc.take_snapshot().dump(f"{sys.argv[1]}.{dumps[0]}")
    dumps[0] += 1
signal.signal(signal.SIGUSR1, dump)
from bambupi.cli import main
sys.exit(main(["run", "-c", sys.argv[2]]))
"""


@dataclass
class Tally:
    done: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    kills: list[str] = field(default_factory=list)

    def fail(self, kind: str, why: object) -> None:
        self.failed[kind] += 1
        if len(self.failures) < 20:
            self.failures.append(f"{kind}: {why!r}")


class Printer:
    """``bambupi sim`` in its own process, killed and started again on the same ports."""

    def __init__(self, mqtt_port: int, camera_port: int, folder: Path) -> None:
        self.mqtt_port, self.camera_port, self.folder = mqtt_port, camera_port, folder
        self.process: subprocess.Popen[bytes] | None = None
        self.runs = 0

    @property
    def log(self) -> Path:
        return self.folder / f"sim-{self.runs}.log"

    def start(self) -> None:
        self.runs += 1
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bambupi", "sim", "--serial", SERIAL, "--access-code", CODE, "--mqtt-port",
                 str(self.mqtt_port), "--camera-port", str(self.camera_port), "--scenario", "print",
                 "--time-scale", "5"],
                stdout=subprocess.DEVNULL, stderr=log,
            )

    def sessions(self) -> int:
        """MQTT sessions the service opened to this run of the broker (its log says each)."""
        return self.log.read_text(errors="replace").count("connected from")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


async def _ws_churn(base: str, tally: Tally) -> None:
    while True:
        try:
            with trio.fail_after(CLIENT_TIMEOUT_S):
                async with open_websocket_url(base.replace("http", "ws") + "/ws") as ws:
                    await ws.get_message()  # the snapshot
            tally.done["websocket"] += 1
            await trio.sleep(WS_PAUSE_S)
        except (OSError, HandshakeError, trio.TooSlowError) as exc:
            tally.fail("websocket", exc)
            await trio.sleep(0.5)


async def _mjpeg_viewer(http: httpx.AsyncClient, tally: Tally) -> None:
    while True:
        streaming = False
        try:
            with trio.fail_after(CLIENT_TIMEOUT_S):
                async with http.stream("GET", "/api/printers/bench/camera") as answer:
                    if answer.status_code != 200:
                        tally.done[f"mjpeg {answer.status_code}"] += 1  # camera down while the printer is
                        await trio.sleep(0.5)
                        continue
                    streaming = True
                    frames = 0
                    async for chunk in answer.aiter_bytes():
                        frames += chunk.count(b"\xff\xd9")
                        if frames >= 2:
                            break
            tally.done["mjpeg"] += 1
        except trio.TooSlowError as exc:
            if streaming:
                # A stream that started stays open while the camera is away and goes on when it is back: the
                # viewer gave up waiting, the service did not fail it.
                tally.done["mjpeg viewer gave up waiting (camera down)"] += 1
            else:
                tally.fail("mjpeg", exc)
        except httpx.HTTPError as exc:
            tally.fail("mjpeg", exc)
            await trio.sleep(0.5)


async def _requests(http: httpx.AsyncClient, tally: Tally, offset: int) -> None:
    i = offset
    while True:
        path = PATHS[i % len(PATHS)]
        i += 1
        try:
            answer = await http.get(path)
            # 503: /healthz while the printer is away, a snapshot with no camera; the service answered.
            if answer.status_code not in (200, 503):
                tally.fail("request", f"{path}: {answer.status_code}")
            tally.done["request"] += 1
            await trio.sleep(HTTP_PAUSE_S)
        except httpx.HTTPError as exc:
            tally.fail("request", f"{path}: {exc!r}")
            await trio.sleep(0.5)


async def _online(http: httpx.AsyncClient) -> bool:
    with contextlib.suppress(httpx.HTTPError, ValueError):
        return bool((await http.get("/api/printers/bench")).json()["connection"] == "online")
    return False


async def _kills(http: httpx.AsyncClient, printer: Printer, tally: Tally) -> None:
    for i in range(1_000_000):
        await trio.sleep(KILL_EVERY_S)
        down = DOWN_S[i % len(DOWN_S)]
        printer.kill()
        await trio.sleep(down)
        printer.start()
        back = trio.current_time()
        while not await _online(http):
            await trio.sleep(0.1)
        online = trio.current_time() - back
        await trio.sleep(1.0)  # a second reconnect, if there is one, shows in the count
        tally.kills.append(f"down {down:g} s: online {online:.1f} s after it returned, {printer.sessions()} session(s)")
        tally.done["broker kill"] += 1


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def _soak(folder: Path) -> None:
    web_port, mqtt_port, camera_port = _free_port(), _free_port(), _free_port()
    config = folder / "bambupi.toml"
    config.write_text(
        f'[web]\nlisten = "127.0.0.1:{web_port}"\nmax_connections_per_client = 200\n\n'
        f'[[printer]]\nid = "bench"\nname = "Bench"\nmodel = "P1S"\nhost = "127.0.0.1"\n'
        f'serial = "{SERIAL}"\naccess_code = "{CODE}"\nmqtt_port = {mqtt_port}\ncamera_port = {camera_port}\n'
        f'reconnect_max_s = 2\n\n[panel]\noled = "none"\ngpio = "none"\n\n'
        f'[storage]\npath = "{folder}/bambupi.sqlite3"\n'
    )
    printer = Printer(mqtt_port, camera_port, folder)
    printer.start()
    dumps = folder / "trace"
    command = ([sys.executable, "-c", TRACED_SERVICE, str(dumps), str(config)] if TRACE
               else [sys.executable, "-m", "bambupi", "run", "-c", str(config)])
    service = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{web_port}"
    tally = Tally()
    try:
        async with httpx.AsyncClient(base_url=base, timeout=CLIENT_TIMEOUT_S) as http:
            with trio.fail_after(60):
                while not await _online(http):
                    await trio.sleep(0.2)
            async with trio.open_nursery() as nursery:
                for _ in range(PARALLEL_WS):
                    nursery.start_soon(_ws_churn, base, tally)
                for _ in range(PARALLEL_MJPEG):
                    nursery.start_soon(_mjpeg_viewer, http, tally)
                for i in range(PARALLEL_HTTP):
                    nursery.start_soon(_requests, http, tally, i * 3)
                await trio.sleep(WARM_UP_S)
                nursery.start_soon(_kills, http, printer, tally)
                start = (trio.current_time(), _fds(service.pid), _rss_mib(service.pid))
                if TRACE:
                    service.send_signal(signal.SIGUSR1)
                downs = "/".join(f"{d:g}" for d in DOWN_S)
                print(f"soak: {SECONDS:.0f} s after {WARM_UP_S:.0f} s warm-up; broker killed every "
                      f"{KILL_EVERY_S:.0f} s, down {downs} s in turn")
                print(f"  start: fds {start[1]}, RSS {start[2]:.1f} MiB")
                while (elapsed := trio.current_time() - start[0]) < SECONDS:
                    await trio.sleep(min(REPORT_EVERY_S, SECONDS - elapsed))
                    print(f"  {trio.current_time() - start[0]:5.0f} s: fds {_fds(service.pid)}, "
                          f"RSS {_rss_mib(service.pid):.1f} MiB, {dict(tally.done)}", flush=True)
                end = (_fds(service.pid), _rss_mib(service.pid))
                if TRACE:
                    service.send_signal(signal.SIGUSR1)
                nursery.cancel_scope.cancel()
    finally:
        service.terminate()
        service.wait(20)
        printer.kill()
    print(f"  end: fds {end[0]} (start {start[1]}), RSS {end[1]:.1f} MiB (start {start[2]:.1f})")
    print(f"  done: {dict(tally.done)}; failed: {dict(tally.failed) or 0}")
    for kill in tally.kills:
        print(f"  broker kill, {kill}")
    for failure in tally.failures:
        print(f"  failure: {failure}")
    if TRACE:
        _print_growth(dumps)


def _print_growth(dumps: Path) -> None:
    first, last = Path(f"{dumps}.0"), Path(f"{dumps}.1")
    for _ in range(100):
        if last.exists():
            break
        time.sleep(0.1)
    if not (first.exists() and last.exists()):
        print("  tracemalloc: no snapshots")
        return
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen *>")]
    before = tracemalloc.Snapshot.load(str(first)).filter_traces(ignore)
    after = tracemalloc.Snapshot.load(str(last)).filter_traces(ignore)
    print("  tracemalloc, growth between the end of warm-up and the end (top 12 lines):")
    for stat in after.compare_to(before, "lineno")[:12]:
        print(f"    {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  {stat.traceback[0]}")


KILLS_WHILE_LOGGING = 5


def _kill_9_while_logging(folder: Path) -> None:
    """SIGKILL the power log's writer at arbitrary points; count committed samples kept and intact files."""
    kept = intact = 0
    for i in range(KILLS_WHILE_LOGGING):
        db = folder / f"kill-{i}.sqlite3"
        child = start_child(db, 0.01, 0.1)
        try:
            with contextlib.closing(sqlite3.connect(db)) as reader:
                committed: list[tuple[float, float]] = []
                while len(committed) < 100:
                    time.sleep(0.05)
                    committed = reader.execute(
                        "SELECT at, watts FROM power_samples WHERE span = 0 ORDER BY at"
                    ).fetchall()
            time.sleep(random.uniform(0.0, 0.1))  # somewhere in the next batch
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        with contextlib.closing(sqlite3.connect(db)) as after:
            intact += after.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            rows = after.execute("SELECT at, watts FROM power_samples WHERE span = 0 ORDER BY at").fetchall()
            kept += rows[: len(committed)] == committed
    print(f"kill -9 while logging, {KILLS_WHILE_LOGGING} times: integrity ok {intact}/{KILLS_WHILE_LOGGING}, "
          f"every committed sample kept {kept}/{KILLS_WHILE_LOGGING} (at most the unwritten batch is lost)")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        trio.run(_soak, Path(tmp))
        _kill_9_while_logging(Path(tmp))


if __name__ == "__main__":
    main()
