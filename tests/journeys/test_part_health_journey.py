"""A part of the box that fails, as the person on the page sees it (issue 16, item 2): a line saying what stopped
working and when it restarts, gone once it runs again, while the rest of the page stays live.

The failure is real: the panel's refresh raises inside the running service, the Supervisor restarts the panel with
backoff, and the page learns each change from its WebSocket (a ``health`` message), read by a phone-sized Chromium.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bambupi.panel.service import Panel
from tests.browser import ARTIFACTS
from tests.journeys.harness import journey

WAIT = 60.0  # a limit for a hang only: every wait is for something the page shows
BANNER = "document.getElementById('health')"


async def test_a_failing_part_is_shown_on_the_page_until_it_runs_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = {"panel": False}
    real_refresh = Panel._refresh

    def refresh(panel: Panel) -> None:
        if broken["panel"]:
            raise ValueError("the panel's picture could not be drawn")
        real_refresh(panel)

    monkeypatch.setattr(Panel, "_refresh", refresh)
    async with journey(tmp_path) as j:
        assert j.running is not None
        page = await j.phone()
        await page.navigate(j.base + "/")
        await page.wait_for(j.card("[data-field=connection]") + "?.textContent.includes('Online')", WAIT)
        assert await page.evaluate(f"{BANNER}.hidden") is True  # every part runs: nothing to say

        broken["panel"] = True  # its next refresh raises; so does each restart's first one
        await page.wait_for(f"!{BANNER}.hidden && {BANNER}.textContent.includes('Panel stopped working (ValueError')",
                            WAIT)
        line = await page.evaluate(f"{BANNER}.textContent")
        assert "restarting" in line and "picture" not in line  # what broke and when it is tried again, not the message
        right = await page.evaluate(f"{BANNER}.getBoundingClientRect().right")
        assert 0 < right <= await page.evaluate("innerWidth")  # on the phone's screen, not beside it
        await page.screenshot(ARTIFACTS / "journey-part-failing-390.png")

        j.sim.printer.start_print("bracket", layers=40, minutes=120)  # the rest of the box keeps the page live
        await page.wait_for(j.card("[data-field=state]") + "?.textContent.includes('Printing')", WAIT)

        broken["panel"] = False
        await page.wait_for(f"{BANNER}.hidden", WAIT)
        assert j.running.supervisor.health()["panel"]["state"] == "running"
