"""MQTT report published -> WebSocket delta received, with 1, 20 and 50 clients on /ws; and the service's CPU per
report when it watches 1, 5 and 20 printers.

The simulated printers (MQTT over TLS) run in this process, ``bambupi run`` in its own, so its CPU time is the
service's alone, and the WebSocket clients in a third (``bench/ws_clients.py``, started for each round). Each report
carries its publish time (``time.time_ns()``) as the job name; a client's latency for it is when the delta reached
the client's socket, as the kernel stamped it, so the clients' own work is not counted as the service's. Reports go
out at RATE per second, REPORTS per run, faster than a printer reports (1-2 a second), so the figures include load.
The client counts take turns over ROUNDS rounds (1, 20, 50, 1, 20, 50, ...), so a slow moment of the machine falls
on all of them alike; the figures are over all rounds. docs/performance.md has the figures, Bambuddy's beside them.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio
from trio_websocket import HandshakeError, open_websocket_url

from bambupi.sim.simulator import Simulator
from bench.startup import _free_port

CODE = "12345678"
RATE = 25
REPORTS = 150
ROUNDS = 5
CLIENT_COUNTS = (1, 20, 50)
PRINTER_COUNTS = (1, 5, 20)


@dataclass
class Figures:
    latencies: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    wall_s: float = 0.0
    delta_bytes: int = 0
    deltas: int = 0
    sent: int = 0
    delivered: int = 0

    def row(self, label: str) -> str:
        q = statistics.quantiles(self.latencies, n=100) if len(self.latencies) > 1 else [float("nan")] * 99
        return (
            f"{label}: p50 {q[49]:5.2f} ms, p99 {q[98]:5.2f} ms, CPU {self.cpu_s / self.wall_s * 100:4.1f} %, "
            f"{self.delta_bytes / max(1, self.deltas):.0f} bytes per update, "
            f"delivered {self.delivered / max(1, self.sent) * 100:.1f} %"
        )


def serial(n: int) -> str:
    return f"01P00A0000000{n:02d}"


async def _round(clients: int, web_port: int, sim: Simulator, process: trio.Process, figures: Figures) -> None:
    since_ns = time.time_ns()
    readers = await trio.lowlevel.open_process(
        [sys.executable, "-m", "bench.ws_clients", f"ws://127.0.0.1:{web_port}/ws", str(clients), str(since_ns)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    assert readers.stdin is not None and readers.stdout is not None
    try:
        lines = _lines(readers.stdout)
        with trio.fail_after(30):
            assert await anext(lines) == "ready"
        cpu_before = _cpu_seconds(process.pid)
        started = time.perf_counter()
        for i in range(REPORTS):
            await trio.sleep_until(trio.current_time() + max(0.0, started + i / RATE - time.perf_counter()))
            sim.printer.publish_report(
                {"print": {"command": "push_status", "msg": 1, "subtask_name": f"bench-{time.time_ns()}",
                           "mc_percent": i % 100}}
            )
        await trio.sleep(1.0)
        figures.cpu_s += _cpu_seconds(process.pid) - cpu_before
        figures.wall_s += time.perf_counter() - started
        await readers.stdin.send_all(b"stop\n")
        with trio.fail_after(30):
            result = json.loads(await anext(lines))
    finally:
        with trio.move_on_after(5):
            await readers.wait()
        if readers.returncode is None:
            readers.kill()
    figures.latencies += result["latencies_ms"]
    figures.delta_bytes += result["update_bytes"]
    figures.deltas += len(result["latencies_ms"])
    figures.sent += REPORTS * clients
    figures.delivered += result["seen"]


async def _lines(stream: trio.abc.ReceiveStream) -> AsyncIterator[str]:
    buffer = b""
    while True:
        while b"\n" not in buffer:
            chunk = await stream.receive_some()
            if not chunk:
                raise EOFError("bench.ws_clients exited")
            buffer += chunk
        line, buffer = buffer.split(b"\n", 1)
        yield line.decode()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


Body = Callable[[int, Sequence[Simulator], trio.Process], Awaitable[None]]


async def _service(folder: Path, printers: int, body: Body) -> None:
    """Run ``bambupi run`` against ``printers`` simulated printers and ``await body(web_port, sims, process)``."""
    web_port = _free_port()
    async with trio.open_nursery() as nursery:
        sims = []
        for n in range(printers):
            sim = Simulator("P1S", serial(n), CODE, mqtt_port=0, scenario="idle")
            await nursery.start(sim.run)
            sims.append(sim)
        config = folder / "bambupi.toml"
        text = (
            f'[web]\nlisten = "127.0.0.1:{web_port}"\nmax_connections_per_client = 200\n\n'
            f'[panel]\noled = "none"\ngpio = "none"\n\n[storage]\npath = "{folder}/bambupi.sqlite3"\n'
        )
        for n, sim in enumerate(sims):
            text += (
                f'\n[[printer]]\nid = "bench{n}"\nname = "Bench {n}"\nmodel = "P1S"\nhost = "127.0.0.1"\n'
                f'serial = "{serial(n)}"\naccess_code = "{CODE}"\nmqtt_port = {sim.mqtt_port}\ncamera = "off"\n'
            )
        config.write_text(text)
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "bambupi", "run", "-c", str(config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            await _wait_online(web_port, printers)
            await body(web_port, sims, process)
        finally:
            process.terminate()
            await process.wait()
            nursery.cancel_scope.cancel()


async def _fan_out(web_port: int, sims: Sequence[Simulator], process: trio.Process) -> None:
    figures = {n: Figures() for n in CLIENT_COUNTS}
    for _ in range(ROUNDS):
        for clients in CLIENT_COUNTS:
            await _round(clients, web_port, sims[0], process, figures[clients])
    for n in CLIENT_COUNTS:
        print(figures[n].row(f"report->WebSocket delta, {n:>2} client(s), {RATE}/s"), flush=True)


async def _per_report(web_port: int, sims: Sequence[Simulator], process: trio.Process) -> None:
    figures = Figures()
    for _ in range(ROUNDS):
        await _round(1, web_port, sims[0], process, figures)
    reports = REPORTS * ROUNDS
    print(f"service CPU per report, {len(sims):>2} printer(s), 1 client: {figures.cpu_s / reports * 1000:.2f} ms "
          f"(p50 {statistics.median(figures.latencies):.2f} ms)", flush=True)


async def _wait_online(web_port: int, printers: int) -> None:
    with trio.fail_after(60):
        while True:
            try:
                async with open_websocket_url(f"ws://127.0.0.1:{web_port}/ws") as ws:
                    snapshot = json.loads(await ws.get_message())
                    online = [p for p in snapshot["printers"].values() if p["connection"] == "online"]
                    if len(online) == printers:
                        return
            except (OSError, HandshakeError):
                pass  # not listening yet
            await trio.sleep(0.2)


async def _measure(folder: Path) -> None:
    print(f"{ROUNDS} interleaved rounds of {REPORTS} reports at {RATE}/s; {time.strftime('%Y-%m-%d')}, "
          f"{os.cpu_count()} CPU(s)", flush=True)
    await _service(folder, 1, _fan_out)
    for printers in PRINTER_COUNTS:
        await _service(folder, printers, _per_report)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        trio.run(_measure, Path(tmp))


if __name__ == "__main__":
    main()
