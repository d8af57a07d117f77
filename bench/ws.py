"""MQTT report published -> WebSocket delta received, with 1, 20 and 50 clients on /ws.

The simulated printer (MQTT over TLS) and the WebSocket clients run in this process; ``bambupi run`` runs in its
own process, so its CPU time and RSS are the service's alone. Each report carries its publish time
(``time.perf_counter_ns()``) as the job name; a client records the latency when a delta with that name arrives.
Reports go out at RATE per second: faster than a printer reports (1-2 per second), so the figure includes load.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio
from trio_websocket import HandshakeError, open_websocket_url

from bambupi.sim.simulator import Simulator
from bench.startup import _free_port, _rss_mib

SERIAL = "01P00A000000001"
CODE = "12345678"
RATE = 20
SECONDS = 5
CLIENT_COUNTS = (1, 20, 50)
MARKER = '"subtask_name":"bench-'


async def _client(url: str, latencies: list[float], seen: set[str], ready: trio.Semaphore) -> None:
    async with open_websocket_url(url) as ws:
        await ws.get_message()  # the snapshot
        ready.release()
        while True:
            text = await ws.get_message()
            # A substring search, not a JSON parse: the clients share this process with the simulator, and
            # their own work should not be counted as the service's latency.
            start = text.find(MARKER)
            if start >= 0:
                stamp = text[start + len(MARKER):text.index('"', start + len(MARKER))]
                latencies.append((time.perf_counter_ns() - int(stamp)) / 1e6)
                seen.add(stamp)


async def _run(clients: int, web_port: int, sim: Simulator, process: trio.Process) -> str:
    latencies: list[float] = []
    seen: list[set[str]] = [set() for _ in range(clients)]
    ready = trio.Semaphore(0)
    async with trio.open_nursery() as nursery:
        for i in range(clients):
            nursery.start_soon(_client, f"ws://127.0.0.1:{web_port}/ws", latencies, seen[i], ready)
        with trio.fail_after(20):
            for _ in range(clients):
                await ready.acquire()
        cpu_before = _cpu_seconds(process.pid)
        started = time.perf_counter()
        sent = RATE * SECONDS
        for i in range(sent):
            await trio.sleep_until(trio.current_time() + max(0.0, started + i / RATE - time.perf_counter()))
            sim.printer.publish_report(
                {"print": {"command": "push_status", "msg": 1, "subtask_name": f"bench-{time.perf_counter_ns()}",
                           "mc_percent": i % 100}}
            )
        await trio.sleep(1.0)
        cpu = (_cpu_seconds(process.pid) - cpu_before) / (time.perf_counter() - started) * 100
        rss = _rss_mib(process.pid)
        nursery.cancel_scope.cancel()
    delivered = sum(len(s) for s in seen) / (sent * clients)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
    return (
        f"report->WebSocket delta, {clients:>2} client(s), {RATE} reports/s: p50 {q[49]:.2f} ms, "
        f"p99 {q[98]:.2f} ms, delivered {delivered * 100:.1f} %, service CPU {cpu:.1f} %, RSS {rss:.1f} MiB"
    )


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _measure(folder: Path) -> list[str]:
    web_port = _free_port()
    async with trio.open_nursery() as nursery:
        sim = Simulator("P1S", SERIAL, CODE, mqtt_port=0, scenario="idle")
        await nursery.start(sim.run)
        config = folder / "bambupi.toml"
        config.write_text(
            f'[web]\nlisten = "127.0.0.1:{web_port}"\nmax_connections_per_client = 200\n\n'
            f'[[printer]]\nid = "bench"\nname = "Bench"\nmodel = "P1S"\nhost = "127.0.0.1"\n'
            f'serial = "{SERIAL}"\naccess_code = "{CODE}"\nmqtt_port = {sim.mqtt_port}\n\n'
            f'[panel]\noled = "none"\ngpio = "none"\n\n'
            f'[storage]\npath = "{folder}/bambupi.sqlite3"\n'
        )
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "bambupi", "run", "-c", str(config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            await _wait_online(web_port)
            return [await _run(n, web_port, sim, process) for n in CLIENT_COUNTS]
        finally:
            process.terminate()
            await process.wait()
            nursery.cancel_scope.cancel()


async def _wait_online(web_port: int) -> None:
    with trio.fail_after(20):
        while True:
            try:
                async with open_websocket_url(f"ws://127.0.0.1:{web_port}/ws") as ws:
                    snapshot = json.loads(await ws.get_message())
                    if snapshot["printers"]["bench"]["connection"] == "online":
                        return
            except (OSError, HandshakeError):
                pass  # not listening yet
            await trio.sleep(0.2)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for line in trio.run(_measure, Path(tmp)):
            print(line)


if __name__ == "__main__":
    main()
