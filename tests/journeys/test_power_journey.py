"""The smart plug as its owner uses it, on a phone (issue 12, defects 1 and 5).

While a print runs, Off on /power asks first, naming the print, and "Keep it on" keeps it on. A print finishes and
cools, auto-off warns and switches the plug off once; the owner logs in, opens /power, presses On, and it stays on
through many later plug readings; Recent events shows one warning and one switch-off.

The printer is the simulator, powered by the simulated Tasmota plug (a real HTTP server) as in ``bambupi demo``:
switching the plug off makes the printer fall silent. Short settings (auto-off right after the print, a few
seconds of warning, 0.2 s plug readings) and waits on what the plug and the page show, never on elapsed time.
"""

from __future__ import annotations

from pathlib import Path

from tests.browser import Page
from tests.journeys.harness import PRINTER, Journey, journey, tap
from tests.support import wait_for

WAIT = 30  # generous: a busy CPU only slows the waits, it never fails them
PLUG = """
[printer.plug]
kind = "tasmota"
address = "{plug_url}"
auto_off = true
auto_off_after_min = 0
auto_off_warning_s = 3
"""
POWER = """
[power]
sample_interval_s = 0.2
flush_interval_s = 1
"""


def button(text: str) -> str:
    return f"[...document.querySelectorAll('button')].find((b) => b.textContent === {text!r})"


def page_text(needle: str) -> str:
    """True once the page shows ``needle`` (no body yet while the page reloads)."""
    return f"Boolean(document.body?.innerText.includes({needle!r}))"


def plug_commands(j: Journey, command: str) -> int:
    assert j.sim_plug is not None
    return j.sim_plug.commands.count(command)


def gcode_state(j: Journey) -> object:
    assert j.running is not None
    return j.running.hub.printer(PRINTER)["state"]["gcode_state"]


async def open_power_page(j: Journey, page: Page) -> None:
    await page.navigate(j.base + "/power")
    await page.wait_for(f"document.getElementById('confirm-{PRINTER}') != null", WAIT)


async def test_auto_off_fires_once_and_the_owners_on_stays_on(tmp_path: Path) -> None:
    async with journey(tmp_path, sim_plug=True, plug=PLUG, extra=POWER) as j:
        assert j.sim_plug is not None
        j.sim.printer.tick_s = 0.1  # a report every 0.1 s: the print and the cooling take seconds
        page = await j.phone()
        await j.set_password(page)

        # While printing, one tap on Off asks first, naming the print; "Keep it on" keeps it on.
        j.sim.printer.start_print("bracket", layers=40, minutes=120)
        await wait_for(lambda: gcode_state(j) == "RUNNING", WAIT)
        await open_power_page(j, page)
        await tap(page, button("Off"))
        question = f"document.getElementById('confirm-{PRINTER}')"
        text = await page.wait_for(f"!{question}.hidden && {question}.innerText", WAIT)
        assert "This stops the print 'bracket' at " in text and " %" in text, text
        await tap(page, button("Keep it on"))
        await page.wait_for(f"{question}.hidden && document.getElementById('msg-{PRINTER}').textContent === 'kept on'",
                            WAIT)
        assert j.sim_plug.on and plug_commands(j, "Power Off") == 0
        j.sim.printer.stop()  # a cancelled print does not arm auto-off (auto_off_after_failure is off)
        await wait_for(lambda: gcode_state(j) not in ("PREPARE", "RUNNING", "PAUSE"), WAIT)

        # A print finishes and cools: auto-off warns, then switches the plug off, once.
        j.sim.printer.start_print("cube", layers=5, minutes=1)
        await wait_for(lambda: plug_commands(j, "Power Off") == 1, WAIT)
        await wait_for(lambda: not j.sim_plug.on, WAIT)

        # The owner logs in, opens /power: the plug is off and nothing is left to cancel.
        await j.log_in(page)
        await open_power_page(j, page)
        await page.wait_for(page_text("— off"), WAIT)
        assert await page.evaluate(page_text("the plug was switched off after the print"))
        await tap(page, button("Cancel auto-off"))
        await page.wait_for(f"document.getElementById('msg-{PRINTER}').textContent.startsWith('nothing to cancel')",
                            WAIT)

        # On is honoured and stays: many plug readings later it is still on, switched off only that once.
        await tap(page, button("On"))
        await wait_for(lambda: j.sim_plug.on, WAIT)
        await page.wait_for(page_text("— on"), WAIT)  # the page reloads after "done"
        readings = plug_commands(j, "Status 8")
        await wait_for(lambda: plug_commands(j, "Status 8") >= readings + 15, WAIT)
        await open_power_page(j, page)
        await page.wait_for(page_text("— on"), WAIT)
        assert j.sim_plug.on and plug_commands(j, "Power Off") == 1
        assert plug_commands(j, "Power On") == 1

        # Recent events on the dashboard: one warning, one switch-off.
        await page.navigate(j.base + "/")
        events = "[...document.querySelectorAll('#events li')].map((li) => li.textContent)"
        await page.wait_for(f"{events}.some((t) => t.includes('switched off after cooling down'))", WAIT)
        shown = await page.evaluate(events)
        assert sum("switched off after cooling down" in t for t in shown) == 1, shown
        assert sum("switching the printer off in" in t for t in shown) == 1, shown
        assert page.exceptions == []
