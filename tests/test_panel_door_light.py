"""The door light for real: the service (virtual panel, ``panel.door_light = true``) against the simulated H2D over
MQTT/TLS. Opening the door of an idle printer switches both chamber light bars on through the printers' controls
(the same checks and command log as the page's button, origin "the box (door light)"); closing it switches them off.
Real clock: every wait is for a condition, with a limit only against a hang.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio

from bambupi.config import Config, PanelConfig, PrinterConfig, WebConfig
from bambupi.secret import Secret
from bambupi.service import Running, Service
from bambupi.sim.simulator import Simulator
from tests.support import wait_for

SERIAL = "0948AD000000042"
CODE = "86420135"


async def test_the_door_switches_both_chamber_lights_through_the_controls(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bambupi")
    async with trio.open_nursery() as nursery:
        sim = Simulator("H2D", SERIAL, CODE, mqtt_port=0, scenario="idle")
        await nursery.start(sim.run)
        sim.printer.state.chamber_light = sim.printer.state.chamber_light2 = "off"
        printer = PrinterConfig(
            id="h2d", name="Studio H2D", model="H2D", host="127.0.0.1", serial=SERIAL, access_code=Secret(CODE),
            mqtt_port=sim.mqtt_port, reconnect_max_s=0.5, camera="off",
        )
        config = Config(
            printers=(printer,), web=WebConfig(host="127.0.0.1", port=0),
            panel=PanelConfig(oled="virtual", gpio="virtual", door_light=True, door_light_s=600),
        )
        running: Running = await nursery.start(Service(config, storage_folder=tmp_path).run)
        hub = running.hub
        await wait_for(lambda: hub.printer("h2d")["state"]["door_open"] is False, what="the door's first report")
        await wait_for(lambda: running.panel is not None and running.panel.alarm_state.door.get("h2d") is False,
                       what="the panel's first look at the door")

        sim.printer.set_door(True)
        await wait_for(lambda: (sim.printer.state.chamber_light, sim.printer.state.chamber_light2) == ("on", "on"),
                       what="both chamber lights on")
        await wait_for(lambda: hub.printer("h2d")["state"]["lights"].get("chamber_light2") == "on",
                       what="the printer reporting its lights on")
        assert running.panel is not None and running.panel.status()["door_light"] == ["h2d"]

        sim.printer.set_door(False)
        await wait_for(lambda: (sim.printer.state.chamber_light, sim.printer.state.chamber_light2) == ("off", "off"),
                       what="both chamber lights off")
        lines = [r.getMessage() for r in caplog.records if "via the box (door light)" in r.getMessage()]
        assert any("ledctrl" in line and "success" in line for line in lines), lines
        assert CODE not in caplog.text
        nursery.cancel_scope.cancel()
