"""The minute before auto-off on the panel: the countdown takes the screen, the button keeps the printer on."""

from __future__ import annotations

from typing import Any

import trio

from bambupi.alerts import QuietHours
from bambupi.config import AlertsConfig, PanelConfig
from bambupi.panel.screens import NetworkInfo, View, render
from bambupi.panel.service import Panel
from bambupi.state_hub import StateHub
from tests.support import printer_config, report

WALL = 1_800_000_000.0


def test_countdown_screen_shows_the_seconds_left_in_inverse_title() -> None:
    image = render(View(screen="auto_off", printer={"id": "p1", "name": "Garage"}, now=WALL, off_at=WALL + 42))
    assert image.getpixel((0, 0)) and not image.getpixel((0, 12))  # the lit title bar, then dark
    other = render(View(screen="auto_off", printer={"id": "p1", "name": "Garage"}, now=WALL, off_at=WALL + 7))
    assert image.tobytes() != other.tobytes()  # the number of seconds is drawn


async def test_button_cancels_the_pending_auto_off(autojump_clock: Any) -> None:
    hub = StateHub([printer_config("p1")])
    config = PanelConfig(oled="virtual", gpio="virtual", dim_after_s=60, off_after_s=120)
    pending = {"p1": WALL + 50}
    cancelled: list[str] = []

    class Plugs:
        def auto_off_warnings(self) -> dict[str, float]:
            return dict(pending)

        def cancel_auto_off(self, printer_id: str) -> bool:
            cancelled.append(printer_id)
            return pending.pop(printer_id, None) is not None

    panel = Panel(hub, config, QuietHours(AlertsConfig()), auto_off=Plugs(), clock_synced=lambda: True,
                  wall=lambda: WALL, network=lambda url: NetworkInfo("box", "10.0.0.2", url), boot_network_s=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(panel.run)
        hub.set_connection("p1", "online")
        hub.apply_message("p1", report(gcode_state="IDLE", hms=[]))
        await trio.sleep(200)  # long idle: the screen would be off, but a countdown keeps it on
        assert panel.current == ("auto_off", "p1") and panel.display != "off"
        assert panel.status()["screen"] == "auto_off"
        panel.factory.pin(23).drive_low()
        await trio.sleep(0.1)
        panel.factory.pin(23).drive_high()
        await trio.sleep(1.5)
        assert cancelled == ["p1"] and panel.current != ("auto_off", "p1")
        nursery.cancel_scope.cancel()
