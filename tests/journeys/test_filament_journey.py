"""The filament a person sees on the card: real reports (tests/captures/) and the simulator's, through the service.

An owner glancing at the card must see which slots are empty, that an external spool's remaining filament is
unknown (not "0 %"), and both external holders of a dual-nozzle printer.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.capture_corpus import capture
from tests.journeys.harness import Journey, journey

WAIT = 60  # bounds only a hang, never a speed claim


def unit_text(j: Journey, field: str) -> str:
    return j.card(f"[data-field='{field}']") + "?.innerText ?? ''"


def trays_of(j: Journey, field: str) -> str:
    """A JS expression: each tray of a unit (or the external holders) as its text, in order."""
    unit = j.card(f"[data-field='{field}']")
    return f"Array.from({unit}?.querySelectorAll('.tray') ?? []).map((t) => t.innerText.replace(/\\s+/g, ' ').trim())"


async def test_a_real_h2d_pro_report_on_the_card(tmp_path: Path) -> None:
    """H2D Pro: four empty AMS slots (sent as {id, state: 0}), an AMS HT with PLA at 87 %, no vt_tray: its two
    external holders come only in vir_slot, the left empty and the right holding TPU of unknown remaining."""
    async with journey(tmp_path) as j:
        page = await j.phone()
        await j.set_password(page)
        await page.wait_for(f"{trays_of(j, 'ams-0')}.length === 4", WAIT)
        j.sim.printer.publish_report(capture("h2dpro-ams-ht").messages[0])
        await page.wait_for(f"{trays_of(j, 'external-spools')}.length === 2", WAIT)
        assert await page.evaluate(trays_of(j, "ams-0")) == ["1 empty", "2 empty", "3 empty", "4 empty"]
        assert await page.evaluate(trays_of(j, "ams-128")) == ["1 PLA 87 %"]
        assert await page.evaluate(trays_of(j, "external-spools")) == ["Left empty", "Right TPU ? %"]
        assert "0 %" not in await page.evaluate(unit_text(j, "external-spools"))


async def test_the_simulated_h2d_shows_what_a_real_one_would(tmp_path: Path) -> None:
    """The simulator's H2D speaks the current firmware's shapes (empty slot as {id, state}, tray_exist_bits,
    vir_slot for both holders): the card shows the empty slot, the AMS HT and both holders."""
    async with journey(tmp_path, model="H2D") as j:
        page = await j.phone()
        await j.set_password(page)
        await page.wait_for(f"{trays_of(j, 'external-spools')}.length === 2", WAIT)
        ams = await page.evaluate(trays_of(j, "ams-0"))
        assert len(ams) == 4 and ams[3] == "4 empty" and all("empty" not in t for t in ams[:3]), ams
        assert await page.evaluate(trays_of(j, "external-spools")) == ["Left empty", "Right PETG ? %"]
        report = j.sim.printer.full_report()
        assert "vt_tray" in report["print"] and [s["id"] for s in report["print"]["vir_slot"]] == ["254", "255"]
        assert json.dumps(report["print"]["ams"]["ams"][0]["tray"][3]) == '{"id": "3", "state": 0}'
