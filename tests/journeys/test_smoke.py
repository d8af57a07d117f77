"""The harness itself: a first visit sets the password and lands on a dashboard that shows the printer."""

from __future__ import annotations

from pathlib import Path

from tests.journeys.harness import journey


async def test_first_visit_sees_the_printer(tmp_path: Path) -> None:
    async with journey(tmp_path) as j:
        page = await j.phone()
        await j.set_password(page)
        await page.wait_for(j.card() + " != null", 15)
        await j.restart_service()
        await page.navigate(j.base + "/")
        await page.wait_for(j.card() + " != null", 15)
