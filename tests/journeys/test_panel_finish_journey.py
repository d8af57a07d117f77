"""Journey: a print finishes, and the box's virtual panel on the dashboard keeps saying so until someone has seen it.

A phone-sized Chromium on the dashboard of the real service (from a config file, ``[panel]`` virtual as in
``bambupi demo``) against the simulated printer over MQTT/TLS: the print runs (the recent events say "done in 5 min")
and finishes; the panel's green LED goes to its fast blink and the OLED to PRINT FINISHED, and both stay while the
printer keeps reporting; the owner presses the box's button on the page and the panel goes to idle (green steady and
dimmed, the rotation).
"""

from __future__ import annotations

from pathlib import Path

import trio

from tests.journeys.harness import HANG_S, PRINTER, journey, tap

PANEL = """
[panel]
oled = "virtual"
gpio = "virtual"
buzzer = "passive"
finished_hold_s = 0
"""
GREEN = "document.querySelector('#panel .leds')?.textContent"
BUTTON = "document.querySelector('#panel .panel-button')"
PICTURE = "document.querySelector('#panel img')?.src"


async def test_the_finish_light_stays_on_the_page_until_the_button_is_pressed(tmp_path: Path) -> None:
    async with journey(tmp_path, extra=PANEL, time_scale=100) as j:
        page = await j.phone()
        await j.set_password(page)
        await page.wait_for(f"({GREEN} || '').includes('green: on')", HANG_S)
        assert await page.evaluate(f"{BUTTON} && !{BUTTON}.hidden")  # the owner sees the box's button

        j.sim.printer.start_print("Benchy", layers=20, minutes=10)  # 6 s of real time at 100x
        # Five minutes before the printer's estimated end, the heads-up: in the dashboard's recent events.
        await page.wait_for("document.getElementById('events')?.innerText.includes('Benchy done in 5 min')", HANG_S)
        await page.wait_for(f"({GREEN} || '').includes('green: fast_blink')", HANG_S)
        assert j.running is not None and j.running.panel is not None
        panel = j.running.panel
        assert panel.current == ("finished", PRINTER)

        # The printer goes on reporting (FINISH, every second of simulated time) and the page goes on reading the
        # panel (its picture is swapped at each read): the light stays. Waits for reports and reads, not for a time.
        hub = j.running.hub
        for _ in range(3):
            seen = hub.printer(PRINTER)["last_report_at"]
            with trio.fail_after(HANG_S):
                while hub.printer(PRINTER)["last_report_at"] == seen:
                    await trio.sleep(0.05)
            picture = await page.evaluate(PICTURE)
            await page.wait_for(f"{PICTURE} !== {picture!r}", HANG_S)
            assert "green: fast_blink" in await page.evaluate(GREEN)
        assert hub.printer(PRINTER)["state"]["gcode_state"] == "FINISH"

        await tap(page, BUTTON)
        await page.wait_for(f"({GREEN} || '').includes('green: on')", HANG_S)
        assert "fast_blink" not in await page.evaluate(GREEN)
        assert panel.current[0] != "finished" and panel.status()["pending"] == []
        assert page.exceptions == []
