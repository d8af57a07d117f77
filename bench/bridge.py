"""The home broker's bridge: the box's work for one printer change, and a stalled broker's cost in memory.

1. CPU per change: what the bridge does each time a printer's object changes (a P1 reports every second while
   printing): the state document made and encoded, and the discovery configs looked up (made again only when the
   trays change). Measured on a real capture (an H2D with an AMS and an AMS HT, the largest document in
   tests/captures) and, for comparison, with the configs made afresh each time.
2. A stalled broker: the real service bridged to a real mosquitto, the simulated printer reporting every 50 ms, and
   the broker stopped (SIGSTOP) for a while: the messages held by the bridge and by paho stay at one per topic, and
   the hub does not slow down. Skipped when mosquitto is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import trio

ROUNDS = 2000


def per_change() -> None:
    from bambupi.bridge.messages import Printer, discovery_configs, encode, state_document
    from bambupi.config import BridgeConfig, PrinterConfig
    from bambupi.secret import Secret
    from bambupi.state_hub import StateHub

    captures = Path(__file__).resolve().parent.parent / "tests" / "captures"
    messages = json.loads((captures / "h2d-ams-ht.json").read_text())
    config = PrinterConfig(id="p", name="Bench", model="H2D", host="127.0.0.1", serial="0948AB000000001",
                           access_code=Secret("12345678"))
    settings = BridgeConfig(enabled=True, host="broker", allow_control=True)
    printer = Printer("p", config.serial, config.name, config.model, True)

    async def build() -> dict[str, object]:
        hub = StateHub([config])
        for message in messages if isinstance(messages, list) else [messages]:
            hub.apply_message("p", json.dumps(message).encode())
        return dict(hub.printer("p"))

    obj = trio.run(build)
    start = time.perf_counter()
    for _ in range(ROUNDS):
        document = state_document(obj)
        encode(document)
    state_us = (time.perf_counter() - start) / ROUNDS * 1e6
    start = time.perf_counter()
    for _ in range(ROUNDS // 10):
        configs = discovery_configs(printer, document, settings)
    configs_us = (time.perf_counter() - start) / (ROUNDS // 10) * 1e6
    size = len(encode(document))
    print(f"bridge: state document {state_us:.0f} µs per change ({size} bytes, {len(document['trays'])} trays); "
          f"discovery configs made afresh {configs_us:.0f} µs ({len(configs)} configs, only when the trays change)")


def stalled_broker() -> None:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        print("bridge: stalled broker skipped (mosquitto is not installed)")
        return
    from bambupi.config import load_config
    from bambupi.service import Running, Service
    from bambupi.sim.simulator import Simulator
    from tests.mosquitto import Mosquitto

    async def main(folder: Path) -> None:
        broker = Mosquitto(folder, {"box": "bench pass"})
        broker.ca.cert_pem.write_to_path(str(folder / "ca.pem"))
        broker.start()
        try:
            async with trio.open_nursery() as nursery:
                sim = Simulator("P1S", "01P00A000000123", "11223344", scenario="idle", time_scale=50)
                await nursery.start(sim.run)
                sim.printer.tick_s = 0.05
                path = folder / "bambupi.toml"
                path.write_text(
                    f'[web]\nlisten = "127.0.0.1:0"\n\n[[printer]]\nid = "p"\nmodel = "P1S"\nhost = "127.0.0.1"\n'
                    f'serial = "01P00A000000123"\naccess_code = "11223344"\nmqtt_port = {sim.mqtt_port}\n'
                    f'camera = "off"\n\n[storage]\npath = "{folder}/db.sqlite3"\n\n[bridge]\nenabled = true\n'
                    f'host = "127.0.0.1"\nport = {broker.port}\ntls = true\nca = "{folder / "ca.pem"}"\n'
                    f'username = "box"\npassword = "bench pass"\n'
                )
                config, _ = load_config(path)
                running: Running = await nursery.start(Service(config, storage_folder=folder).run)
                with trio.fail_after(60):
                    while running.bridge.session is None:
                        await trio.sleep(0.05)
                sim.printer.start_print("Benchy", layers=5000, minutes=6000)
                await trio.sleep(2)
                session = running.bridge.session
                assert session is not None and broker.proc is not None
                os.kill(broker.proc.pid, signal.SIGSTOP)
                try:
                    version, began = running.hub.version, time.monotonic()
                    await trio.sleep(10)
                    changes = running.hub.version - version
                    rate = changes / (time.monotonic() - began)
                    held = len(session.client._out_messages)
                    waiting = len(session._waiting)
                finally:
                    os.kill(broker.proc.pid, signal.SIGCONT)
                print(f"bridge: broker stalled 10 s: {changes} printer changes ({rate:.0f}/s, the hub unslowed), "
                      f"paho held {held} unacknowledged messages and the bridge {waiting} waiting (one per topic)")
                nursery.cancel_scope.cancel()
        finally:
            broker.stop()

    with tempfile.TemporaryDirectory() as folder:
        trio.run(main, Path(folder))


def main() -> None:
    per_change()
    stalled_broker()


if __name__ == "__main__":
    main()
