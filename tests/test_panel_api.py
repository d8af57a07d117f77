"""The virtual panel end to end: the simulator raises a fatal HMS; /api/panel shows red blinking and the buzzer's
fatal pattern; a (mock) button press acknowledges it and the repeats stop. Real sockets, real TLS, real clock."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import trio
from PIL import Image

from bambupi.config import AlertsConfig, Config, PanelConfig, PrinterConfig, WebConfig
from bambupi.panel.routes import lit_grey
from bambupi.secret import Secret
from bambupi.service import Running, Service
from bambupi.sim.simulator import Simulator
from tests.support import wait_for

SERIAL = "01P00A000000005"
CODE = "24681357"
FATAL = (0x03000100, 0x00010007)  # 0300_0100_0001_0007: heatbed sensor, fatal


async def poll(client: httpx.AsyncClient, ok: Any, timeout: float = 30) -> dict[str, Any]:
    with trio.fail_after(timeout):
        while True:
            body: dict[str, Any] = (await client.get("/api/panel")).json()
            if ok(body):
                return body
            await trio.sleep(0.05)


async def test_virtual_panel_fatal_hms_buzzes_until_the_button_is_pressed(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        sim = Simulator("P1S", SERIAL, CODE, mqtt_port=0, scenario="idle")
        await nursery.start(sim.run)
        printer = PrinterConfig(
            id="p1", name="Workshop P1S", model="P1S", host="127.0.0.1", serial=SERIAL, access_code=Secret(CODE),
            mqtt_port=sim.mqtt_port, reconnect_max_s=0.5,
        )
        config = Config(
            printers=(printer,), web=WebConfig(host="127.0.0.1", port=0),
            panel=PanelConfig(oled="virtual", gpio="virtual", buzzer="passive"),
            alerts=AlertsConfig(quiet_hours=((0, 0), (23, 59))),  # quiet all day: fatal must still sound
        )
        running: Running = await nursery.start(Service(config, storage_folder=tmp_path).run)
        panel = running.panel
        assert panel is not None and panel.factory is not None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.port}") as client:
            body = await poll(client, lambda b: b["leds"]["green"]["mode"] == "on")
            assert body["hardware"] == {"oled": "virtual", "gpio": "virtual"}
            assert body["leds"]["red"]["mode"] == "off" and body["buzzer"]["count"] == 0

            sim.printer.set_hms([FATAL])
            body = await poll(client, lambda b: b["leds"]["red"]["mode"] == "blink")
            assert body["screen"] == "hms" and body["printer"] == "p1"
            assert body["pending"] == ["p1 0300_0100_0001_0007: fatal"]
            body = await poll(client, lambda b: b["buzzer"]["last"] == "fatal")
            # The red LED's mock pin really blinks, and the buzzer's pin played the fatal tone.
            with trio.fail_after(30):  # a hang, not a speed
                while len({v for _, v in panel.recorder.of("red")}) < 2:
                    await trio.sleep(0.05)
            assert panel.factory.pin(22).state in (0, 1)
            assert 2000 in {v for _, v in panel.recorder.of("buzzer")}

            png = await client.get("/api/panel.png")
            assert png.headers["content-type"] == "image/png"
            image = Image.open(io.BytesIO(png.content))
            assert image.size == (512, 256)
            # Fatal is inverse video: the screen is mostly lit, as dim as the night makes it (quiet all day).
            assert image.convert("L").histogram()[lit_grey(True, config.panel.night_contrast)] > 512 * 256 // 2
            assert body["brightness"]["mode"] == "night"

            button = panel.factory.pin(23)
            button.drive_low()  # a short press: the watcher gets both edges, in order, however busy the machine
            button.drive_high()
            body = await poll(client, lambda b: not b["pending"])
            assert body["buzzer"]["active"] is False
            count = body["buzzer"]["count"]
            # Still a live fault: red keeps blinking, but it is silenced.
            assert body["leds"]["red"]["mode"] == "blink"
            assert panel.alarm_state.fatal_due == {}
            # The next refresh sees the fault still there: had the press not acknowledged it, it would sound again.
            drawn = panel.image
            await wait_for(lambda: panel.image is not drawn, what="a refresh after the press")
            assert (await client.get("/api/panel")).json()["buzzer"]["count"] == count

            sim.printer.set_hms([])
            await poll(client, lambda b: b["leds"]["red"]["mode"] == "off")
        nursery.cancel_scope.cancel()
