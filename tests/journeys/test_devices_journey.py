"""What an H2D's owner sees on the card: the tray its extruder really feeds from, and the door.

A real H2D report (tests/captures/h2d-two-ams.json) names AMS B slot 4 as loaded in ``device.extruder`` while its
``tray_now`` (3) reads as AMS A slot 4; the door comes from the simulated H2D, which reports it in ``stat``.
"""

from __future__ import annotations

from pathlib import Path

from tests.capture_corpus import capture
from tests.journeys.harness import Journey, journey

WAIT = 60  # bounds only a hang, never a speed claim


def tray_marks(j: Journey, unit: str) -> str:
    """A JS expression: for each tray of an AMS unit on the card, whether it is marked as in use."""
    box = j.card(f"[data-field='ams-{unit}']")
    return f"Array.from({box}?.querySelectorAll('.tray') ?? []).map((t) => t.classList.contains('active'))"


async def test_an_h2d_card_shows_the_tray_in_use_and_the_door(tmp_path: Path) -> None:
    async with journey(tmp_path, model="H2D") as j:
        page = await j.phone()
        await page.navigate(j.base + "/")
        door = j.card("[data-field='door']") + "?.textContent ?? ''"
        await page.wait_for(f"{door}.includes('Door closed')", WAIT)

        j.sim.printer.set_door(True)
        await page.wait_for(f"{door}.includes('Door open')", WAIT)
        j.sim.printer.set_door(False)
        await page.wait_for(f"{door}.includes('Door closed')", WAIT)

        # From here on only the real report speaks (the simulated H2D would send its own trays every second).
        j.sim.printer.go_silent()
        j.sim.printer.publish_report(capture("h2d-two-ams").messages[0])
        await page.wait_for(f"JSON.stringify({tray_marks(j, '1')}) === '[false,false,false,true]'", WAIT)
        assert await page.evaluate(tray_marks(j, "0")) == [False, False, False, False]
        in_use = await page.evaluate(j.card("[data-field='ams-1'] .tray.active") + "?.innerText")
        assert "in use" in in_use
        assert page.exceptions == []
