"""Certificate pins on a full disk: the first connection to a printer pins its certificate in memory and goes online
instead of ending the service (it died in paho's on_connect with ENOSPC); the pin is written once there is room."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest
import trio

from bambupi.config import Config, PrinterConfig, WebConfig
from bambupi.printer.tls_pins import PinStore
from bambupi.secret import Secret
from bambupi.service import Service
from bambupi.sim.simulator import Simulator
from tests.support import fill

WAIT = 30
SERIAL = "01P00A000000271"
CODE = "16180339"


def test_a_pin_that_cannot_be_written_is_kept_in_memory_and_written_later(tiny_disk: Path) -> None:
    pins = PinStore(tiny_disk / "tls-pins.json")
    filler = fill(tiny_disk)
    assert pins.set("a", "sha256:aa") is False
    assert pins.get("a") == "sha256:aa" and pins.problem is not None and "kept in memory" in pins.problem
    assert not (tiny_disk / "tls-pins.json").exists()
    filler.unlink()
    assert pins.set("b", "sha256:bb") is True
    assert json.loads((tiny_disk / "tls-pins.json").read_text()) == {"a": "sha256:aa", "b": "sha256:bb"}
    assert pins.problem is None


async def test_first_connection_on_a_full_disk_goes_online_with_the_pin_in_memory(
    tiny_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with trio.open_nursery() as nursery:
        sim = Simulator("P1S", SERIAL, CODE, scenario="idle", time_scale=100)
        await nursery.start(sim.run)
        printer = PrinterConfig(id="garage", name="Garage", model="P1S", host="127.0.0.1", serial=SERIAL,
                                access_code=Secret(CODE), mqtt_port=sim.mqtt_port, camera="off")
        config = Config(printers=(printer,), web=WebConfig(host="127.0.0.1", port=0))
        fill(tiny_disk)
        running = await nursery.start(Service(config, storage_folder=tiny_disk).run)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.port}", timeout=WAIT) as http:
            with trio.fail_after(WAIT):
                while (await http.get("/api/printers/garage")).json()["connection"] != "online":
                    await trio.sleep(0.05)
            assert (await http.get("/healthz")).status_code in (200, 503)  # the service still answers
        assert not (tiny_disk / "tls-pins.json").exists()
        assert "kept in memory" in caplog.text and CODE not in caplog.text
        nursery.cancel_scope.cancel()
