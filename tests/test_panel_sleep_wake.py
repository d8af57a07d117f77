"""A box asleep because its printer's plug is off stays asleep while that printer falls silent.

Switching the plug off puts the box to sleep at once. The printer, without power, then stops reporting: a minute
later its connection goes stale (the hub's connection_lost event), a minute after that offline. That is the
expected end of a printer switched off, not printer activity: the screen and LEDs lit up in a dark room for a minute,
a minute after the owner switched the printer off for the night (seen in ``bambupi demo``). The printer coming back
(connection_restored), any other printer event and the button still wake it.
"""

from __future__ import annotations

from typing import Any

import trio

from bambupi.panel.brightness import WAKE_S
from bambupi.state_hub import StateHub
from tests.support import printer_config, report
from tests.test_panel_brightness import AMBER, BUTTON, GREEN, RED, Plugs, duty, make_panel


def dark(panel: Any) -> bool:
    leds = (duty(panel, GREEN), duty(panel, AMBER), duty(panel, RED))
    return panel.status()["brightness"]["mode"] == "asleep" and panel.screen.on is False and leds == (0, 0, 0)


async def test_the_printer_falling_silent_after_its_plug_went_off_does_not_wake_the_box(autojump_clock: Any) -> None:
    hub = StateHub([printer_config("p1")])
    plugs = Plugs()
    panel = make_panel(hub, plugs=plugs)
    async with trio.open_nursery() as nursery:
        await nursery.start(panel.run)
        hub.set_connection("p1", "online")
        hub.apply_message("p1", report(gcode_state="IDLE", hms=[]))
        await trio.sleep(2)
        assert panel.screen.on
        plugs.off.add("p1")  # the owner switches the printer off for the night
        await trio.sleep(2)
        assert dark(panel)
        hub.set_connection("p1", "stale", "no report from the printer for 60 s")  # connection_lost
        for _ in range(20):  # through the time a wake would last
            await trio.sleep(WAKE_S / 10)
            assert dark(panel), panel.status()
        hub.set_connection("p1", "offline", "no report from the printer for 120 s")
        await trio.sleep(2)
        assert dark(panel)

        # The button still wakes it; so does the printer coming back.
        panel.factory.pin(BUTTON).drive_low()
        panel.factory.pin(BUTTON).drive_high()
        await trio.sleep(1)
        assert panel.screen.on
        await trio.sleep(WAKE_S + 2)
        assert dark(panel)
        plugs.off.discard("p1")
        hub.set_connection("p1", "online")  # connection_restored
        hub.apply_message("p1", report(gcode_state="IDLE", hms=[]))
        await trio.sleep(1)
        assert panel.screen.on and panel.status()["brightness"]["mode"] == "day"
        nursery.cancel_scope.cancel()
    panel.factory.reset()


async def test_a_printer_its_plug_switched_off_is_no_offline_fault_beside_its_finished_print(
    autojump_clock: Any,
) -> None:
    """The box's auto-off switches the printer off after a print; the finish waits to be seen (green fast blink,
    the box awake). The printer, switched off, stops reporting: that is no fault, so no amber and red "offline"
    blinks beside the finish. A printer whose plug still reads on and that stops reporting is still a fault."""
    hub = StateHub([printer_config("p1"), printer_config("p2", serial="01P00A000000002")])
    plugs = Plugs()
    panel = make_panel(hub, plugs=plugs)
    async with trio.open_nursery() as nursery:
        await nursery.start(panel.run)
        for pid in ("p1", "p2"):
            hub.set_connection(pid, "online")
            hub.apply_message(pid, report(gcode_state="IDLE", hms=[]))
        hub.apply_message("p1", report(gcode_state="RUNNING", mc_percent=50, hms=[]))
        await trio.sleep(2)
        hub.apply_message("p1", report(gcode_state="FINISH", mc_percent=100, hms=[]))
        await trio.sleep(60)
        plugs.off.add("p1")  # auto-off, once the nozzle cooled
        hub.set_connection("p1", "stale", "no report from the printer for 60 s")
        await trio.sleep(60)
        hub.set_connection("p1", "offline", "no report from the printer for 120 s")
        await trio.sleep(180)  # well past panel.offline_grace_s
        modes = {name: led["mode"] for name, led in panel.status()["leds"].items()}
        assert modes == {"green": "fast_blink", "amber": "off", "red": "off"}, panel.status()["leds"]
        assert panel.screen.on  # the finish is still to be seen

        hub.set_connection("p2", "offline", "no report from the printer for 120 s")  # its plug reads on: lost
        await trio.sleep(180)
        leds = panel.status()["leds"]
        assert leds["red"]["mode"] == "slow_blink" and leds["red"]["reason"].startswith("p2"), leds
        assert leds["amber"]["mode"] == "slow_blink" and leds["amber"]["reason"].startswith("p2"), leds
        nursery.cancel_scope.cancel()
    panel.factory.reset()
