"""Report -> state latency through a real mosquitto: 500 messages/s of ~3 KB JSON, p50/p99.

A publisher process stamps each report with ``time.perf_counter_ns()`` (CLOCK_MONOTONIC, shared by
processes on Linux); the service's hub records when the same report has been applied to the state.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import trio

from bambupi.config import PrinterConfig
from bambupi.printer.link import PrinterLink
from bambupi.printer.tls_pins import PinStore
from bambupi.secret import Secret
from bambupi.state_hub import StateHub
from tests.mosquitto import Mosquitto

SERIAL = "01P00A000000001"
CODE = "12345678"
RATE = 500
SECONDS = 6

PUBLISHER = textwrap.dedent(
    """
    import json, ssl, sys, time
    import paho.mqtt.client as mqtt
    port, rate, seconds, serial = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-pub")
    c.username_pw_set("bblp", "12345678")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    c.tls_set_context(ctx)
    import socket
    c.on_socket_open = lambda cl, ud, s: s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.connect("127.0.0.1", port)
    c.loop_start()
    time.sleep(0.5)
    pad = "x" * 2600
    n = int(rate * seconds)
    start = time.perf_counter()
    for i in range(n):
        target = start + i / rate
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        body = {"print": {"command": "push_status", "msg": 1, "mc_percent": i % 100,
                "nozzle_temper": 200 + (i % 20) / 4, "layer_num": i, "subtask_name": pad,
                "sequence_id": str(time.perf_counter_ns())}}
        c.publish(f"device/{serial}/report", json.dumps(body), qos=0)
    time.sleep(1)
    c.loop_stop()
    """
)


async def _measure(port: int, folder: Path) -> tuple[list[float], int]:
    config = PrinterConfig(
        id="bench", name="bench", model="P1S", host="127.0.0.1", serial=SERIAL,
        access_code=Secret(CODE), mqtt_port=port,
    )
    hub = StateHub([config])
    latencies: list[float] = []
    apply = hub.apply_message

    def timed_apply(printer_id: str, payload: bytes):  # type: ignore[no-untyped-def]
        applied = apply(printer_id, payload)
        done = time.perf_counter_ns()
        sent = json.loads(payload)["print"].get("sequence_id")
        if sent is not None:
            latencies.append((done - int(sent)) / 1e6)
        return applied

    hub.apply_message = timed_apply  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        await nursery.start(PrinterLink(config, hub, PinStore(folder / "pins.json")).run)
        with trio.fail_after(60):
            # A printer is online once a report arrives (a login alone is not): a few, until one has.
            while hub.printer("bench")["connection"] != "online":
                await trio.run_process([sys.executable, "-c", PUBLISHER, str(port), "10", "0.3", SERIAL], check=True)
        latencies.clear()
        pub = await trio.run_process(
            [sys.executable, "-c", PUBLISHER, str(port), str(RATE), str(SECONDS), SERIAL], check=True
        )
        del pub
        nursery.cancel_scope.cancel()
    return latencies, int(RATE * SECONDS)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp), {"bblp": CODE})
        broker.start()
        try:
            latencies, sent = trio.run(_measure, broker.port, Path(tmp))
        finally:
            broker.stop()
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    print(
        f"report->state latency at {RATE} msg/s, ~3 KB, through mosquitto: "
        f"received {len(latencies)}/{sent}, p50 {q[49]:.2f} ms, p99 {q[98]:.2f} ms, max {latencies[-1]:.2f} ms"
    )


if __name__ == "__main__":
    main()
