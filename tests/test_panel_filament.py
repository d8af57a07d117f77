"""The OLED's low-filament screen: what it shows (pixels and words), and that the panel shows it for an idle
printer with a spool below the threshold, never while that printer has a job, and no more once the spool is
refilled."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import trio
from PIL import Image, ImageChops

from bambupi.alerts import QuietHours
from bambupi.config import AlertsConfig, PanelConfig
from bambupi.filament.inventory import LowSpool
from bambupi.panel.screens import FILAMENT_PAGE_S, HEIGHT, SHIFTS, WIDTH, NetworkInfo, Text, View, layout, render
from bambupi.panel.service import Panel
from bambupi.state_hub import StateHub
from tests.support import printer_config, report

GOLDEN = Path(__file__).parent / "golden" / "panel"
NOW = 1_760_000_000.0
PRINTER = {"id": "p1", "name": "Garage", "connection": "online", "state": {"gcode_state": "IDLE", "hms": []}}
RED = LowSpool(spool=4, printer="p1", material="PLA", colour="#FF0000", remaining_g=42.4, where="AMS 1 slot 2")
HOLDER = LowSpool(spool=9, printer="p1", material="PETG-CF", colour="", remaining_g=87.0,
                  where="left external holder")
CASES = {
    "filament-low": View("filament", PRINTER, now=NOW, low=(RED,)),
    "filament-low-second-of-two": View("filament", PRINTER, now=NOW, low=(RED, HOLDER), shown_s=FILAMENT_PAGE_S),
}


def texts(view: View) -> list[str]:
    return [item.text for item in layout(view) if isinstance(item, Text)]


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str) -> None:
    image = render(CASES[name])
    path = GOLDEN / f"{name}.png"
    if os.environ.get("BAMBUPI_UPDATE_GOLDEN") or not path.exists():
        assert not os.environ.get("CI"), f"golden image {path} missing"
        image.save(path)
    golden = Image.open(path).convert("L")
    assert ImageChops.difference(image.convert("L"), golden).getbbox() is None, f"{name} differs from {path}"


def test_the_screen_says_how_much_is_left_of_which_spool_and_where() -> None:
    assert texts(CASES["filament-low"]) == ["FILAMENT LOW", "Garage", "42 g left", "PLA #FF0000", "AMS 1 slot 2"]
    image = render(CASES["filament-low"])
    assert image.getpixel((0, 0)) and image.getpixel((WIDTH - 3, 11)) and not image.getpixel((0, 12))  # lit title
    # Two low spools turn like the HMS pages, each counted.
    assert texts(View("filament", PRINTER, low=(RED, HOLDER)))[1:4] == ["1/2", "Garage", "42 g left"]
    assert texts(CASES["filament-low-second-of-two"])[1:] == [
        "2/2", "Garage", "87 g left", "PETG-CF", "left external holder"]


def test_text_the_fonts_cannot_draw_and_long_names_stay_in_the_frame() -> None:
    odd = LowSpool(spool=1, printer="p1", material="PLA\u2009Silk 絹 with a very long name", colour="#00FF00",
                   remaining_g=99.96, where="AMS HT 1")
    long_name = {**PRINTER, "name": "The printer on the left of the workshop window"}
    for shift in SHIFTS:
        for low in ((odd,), (odd, RED, HOLDER), ()):
            view = View("filament", long_name, now=NOW, shift=shift, low=low, shown_s=3 * FILAMENT_PAGE_S)
            for item in layout(view):
                x0, y0, x1, y1 = item.box
                assert x0 >= 0 and y0 >= 0 and x1 <= WIDTH and y1 <= HEIGHT, item
                if isinstance(item, Text):
                    assert all(32 <= ord(c) <= 255 and not 127 <= ord(c) < 160 for c in item.text), item
    assert "100 g left" in texts(View("filament", PRINTER, low=(odd,)))


class Inventory:
    """The panel's view of the inventory (service.LowFilament): the test sets which spools are low."""

    def __init__(self) -> None:
        self.low: tuple[LowSpool, ...] = ()

    def low_spools(self) -> tuple[LowSpool, ...]:
        return self.low


async def screens_over(panel: Panel, seconds: float) -> set[tuple[str, str | None]]:
    """Every screen the panel chose during ``seconds`` (sampled twice a second on the fake clock)."""
    seen: set[tuple[str, str | None]] = set()
    for _ in range(int(seconds * 2)):
        seen.add(panel.current)
        await trio.sleep(0.5)
    return seen


async def test_an_idle_printer_shows_its_low_spool_never_while_printing_and_not_after_a_refill(
    autojump_clock: Any,
) -> None:
    hub = StateHub([printer_config("p1"), printer_config("p2", name="Attic")])
    inventory = Inventory()
    config = PanelConfig(oled="virtual", gpio="none", dim_after_s=3600, off_after_s=7200)
    panel = Panel(hub, config, QuietHours(AlertsConfig()), filament=inventory, clock_synced=lambda: True,
                  network=lambda url: NetworkInfo("box", "10.0.0.2", url), boot_network_s=0)
    rotation = 12 * config.rotate_s  # longer than the whole rotation of both printers
    async with trio.open_nursery() as nursery:
        await nursery.start(panel.run)
        for pid in ("p1", "p2"):
            hub.set_connection(pid, "online")
            hub.apply_message(pid, report(gcode_state="IDLE", hms=[]))
        assert ("filament", "p1") not in await screens_over(panel, rotation)  # nothing low yet

        inventory.low = (RED,)
        seen = await screens_over(panel, rotation)
        assert ("filament", "p1") in seen and ("filament", "p2") not in seen  # on its own printer's pages only
        while panel.current != ("filament", "p1"):
            await trio.sleep(0.5)
        await trio.sleep(0.5)
        assert panel.status()["screen"] == "filament"
        title = panel.image.crop((0, 0, WIDTH, 12)).convert("L")
        assert title.histogram()[255] > WIDTH * 12 // 2  # the picture on the OLED: the lit title bar

        hub.apply_message("p1", report(gcode_state="RUNNING", mc_percent=10, hms=[]))
        await trio.sleep(1.5)  # the next refresh
        seen = await screens_over(panel, rotation)
        assert ("status", "p1") in seen and not any(screen == "filament" for screen, _ in seen)
        hub.apply_message("p1", report(gcode_state="PAUSE", hms=[]))  # a paused job is still the job's time
        await trio.sleep(1.5)
        assert not any(screen == "filament" for screen, _ in await screens_over(panel, rotation))

        hub.apply_message("p1", report(gcode_state="FINISH", mc_percent=100, hms=[]))
        await trio.sleep(1.5)
        assert panel.current == ("finished", "p1")  # the end holds the screen until someone has seen it
        panel.short_press()
        assert ("filament", "p1") in await screens_over(panel, rotation)  # the job is over: shown again
        while panel.current != ("filament", "p1"):
            await trio.sleep(0.5)
        inventory.low = ()  # refilled while it shows
        await trio.sleep(1.5)
        assert panel.current != ("filament", "p1")
        assert not any(screen == "filament" for screen, _ in await screens_over(panel, rotation))
        nursery.cancel_scope.cancel()
