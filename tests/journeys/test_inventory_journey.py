"""The filament inventory on a phone (issue 17), against the real service and ``bambupi sim`` printing jobs whose
3MF it serves over FTPS, in headless Chromium 390 px wide.

A person opens /filament: the AMS's Bambu spools are there by themselves (their RFID tags); the owner adds a spool
from the shelf and puts it on the external holder; after a print, the spools it used show their weight lower by the
job's grams (as /api/jobs records them); a print that takes a spool under the threshold makes it say "Low", puts the
low-filament event in the dashboard's recent events and FILAMENT LOW on the box's screen once the printer is idle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.browser import Page
from tests.journeys.harness import HANG_S, PHONE, Journey, journey, tap

SLOT_2 = "Garage P1S: AMS 1 slot 2"  # the tray the simulator prints from (its accent colour from slot 1)
LOW_G = 100  # [filament] low_g's default


def card(where: str) -> str:
    """A JS expression: the /filament card of the spool at ``where`` (as the page words it)."""
    return (f"Array.from(document.querySelectorAll('#spools [data-spool]')).find((li) =>"
            f" li.querySelector('.where').textContent === {json.dumps(where)})")


def titled(title: str) -> str:
    return (f"Array.from(document.querySelectorAll('#spools [data-spool]')).find((li) =>"
            f" li.querySelector('h2').textContent === {json.dumps(title)})")


async def open_filament(j: Journey, page: Page) -> None:
    await page.navigate(j.base + "/filament")
    await settled(page)


async def settled(page: Page, expression: str = "true") -> None:
    """Until ``expression`` holds on a /filament whose script runs and has asked who is looking (the owner's
    controls shown): the page reloads after each change, and a card can be there before the script is."""
    await page.wait_for(f"document.readyState === 'complete' && document.body?.dataset.session === 'owner'"
                        f" && ({expression})", HANG_S)  # fmt: skip


async def api(page: Page, path: str) -> Any:
    return await page.evaluate(f"fetch({json.dumps(path)}).then((r) => r.json())")


async def spool_at(page: Page, ams: int, tray: int) -> dict[str, Any]:
    spools = (await api(page, "/api/spools"))["spools"]
    (found,) = [s for s in spools if s["location"] == {"kind": "ams", "printer": "garage", "ams": ams, "tray": tray}]
    return dict(found)


async def print_and_wait(j: Journey, page: Page, name: str) -> dict[str, Any]:
    """A print on the simulator, to its end; the job as /api/jobs records it (its grams known)."""
    j.sim.printer.start_print(name, layers=20, minutes=20)
    done = (f"fetch('/api/jobs').then((r) => r.json()).then((a) => a.jobs[0]?.name === {json.dumps(name)}"
            " && a.jobs[0].result === 'finished' && a.jobs[0].used_g !== null)")
    await page.wait_for(done, HANG_S)
    job = (await api(page, "/api/jobs"))["jobs"][0]
    return dict(job)


async def fits(page: Page) -> None:
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE[0]


async def test_rfid_spools_appear_a_shelf_spool_is_added_and_each_print_takes_its_grams(tmp_path: Path) -> None:
    async with journey(tmp_path, ftps=True, extra="[panel]\nrotate_s = 1\n") as j:
        page = await j.phone()
        # Before anyone logs in: the list, no owner's controls (the API would refuse them anyway) and how to log in.
        await page.navigate(j.base + "/filament")
        await page.wait_for("document.readyState === 'complete' && document.querySelector('#spools [data-spool]')"
                            " != null", HANG_S)  # fmt: skip
        shown = "Array.from(document.querySelectorAll('.owner')).filter((e) => getComputedStyle(e).display !== 'none')"
        await page.wait_for("document.body?.dataset.session === 'anonymous'", HANG_S)
        assert await page.evaluate(f"{shown}.length") == 0
        assert await page.evaluate("getComputedStyle(document.getElementById('login-hint')).display") != "none"
        await j.set_password(page)
        await open_filament(j, page)
        assert await page.evaluate(f"{shown}.length") == 4  # each spool's buttons and the add form
        # The AMS's three Bambu spools, each from its tag: the printer's remaining % of the tag's 1000 g.
        tagged = "document.querySelectorAll('#spools [data-spool]').length === 3"
        await page.wait_for(f"(() => {{ if (!({tagged})) setTimeout(() => location.reload(), 500);"
                            f" return {tagged}; }})()", HANG_S)  # fmt: skip
        await settled(page)
        words = f"['h2', '.meta', '.remaining'].map((q) => {card(SLOT_2)}.querySelector(q).textContent)"
        assert await page.evaluate(words) == [
            "PLA · Bambu Lab", "#00AE42 · Garage P1S: AMS 1 slot 2 · RFID", "640 g of 1000 g"]
        await fits(page)

        # The owner adds a spool from the shelf and puts it on the external holder.
        await page.evaluate(
            "(() => { const f = document.getElementById('add-form');"
            " f.material.value = 'PETG'; f.brand.value = 'Sunlu'; f.colour.value = '#2850e0';"
            " f.net_g.value = '1000'; f.remaining_g.value = '750'; f.requestSubmit(); })()"
        )
        await settled(page, f"{titled('PETG · Sunlu')}?.querySelector('.where').textContent === 'shelf'")
        select = f"{titled('PETG · Sunlu')}.querySelector('select')"
        holder = await page.evaluate(
            f"Array.from({select}.options).find((o) => o.textContent.endsWith('external holder')).value")
        await page.evaluate(f"(() => {{ const s = {select}; s.value = {json.dumps(holder)};"
                            " s.dispatchEvent(new Event('change', {bubbles: true})); })()")
        await settled(page, f"{titled('PETG · Sunlu')}?.querySelector('.where').textContent"
                            " === 'Garage P1S: external holder'")  # fmt: skip
        assert "750 g of 1000 g" in await page.evaluate(f"{titled('PETG · Sunlu')}.innerText")
        # Its colour unknown (the API allows it), the owner corrects its weight on the page: the colour stays unknown.
        await page.evaluate(f"call('PATCH', '/api/spools/' + {titled('PETG · Sunlu')}.dataset.spool, {{colour: ''}})")
        await open_filament(j, page)
        await tap(page, f"{titled('PETG · Sunlu')}.querySelector('button[data-action=edit]')")
        form = f"{titled('PETG · Sunlu')}.querySelector('form.edit')"
        await page.wait_for(f"{form}.querySelector('input[name=remaining_g]') != null", HANG_S)
        await page.evaluate(f"(() => {{ const f = {form}; f.remaining_g.value = '700'; f.requestSubmit(); }})()")
        await settled(page, f"{titled('PETG · Sunlu')}?.innerText.includes('700 g of 1000 g')")
        assert "colour unknown" in await page.evaluate(f"{titled('PETG · Sunlu')}.innerText")

        # A print: the spools it used lose the job's grams, as /api/jobs records them; the others keep theirs.
        before = {tray: await spool_at(page, 0, tray) for tray in (0, 1, 2)}
        job = await print_and_wait(j, page, "phone_stand")
        used = {f["tray"]: f["used_g"] for f in job["filaments"] if f["ams"] == 0}
        assert set(used) == {0, 1} and all(grams > 0 for grams in used.values()), job["filaments"]
        for tray in (0, 1, 2):
            expected = round(before[tray]["remaining_g"] - used.get(tray, 0.0), 2)
            left = f"{expected:.0f} g of 1000 g"
            await page.wait_for(f"(() => {{ const ok = {card(f'Garage P1S: AMS 1 slot {tray + 1}')}?.innerText"
                                f".includes({json.dumps(left)}); if (!ok) setTimeout(() => location.reload(), 500);"
                                " return ok; })()", HANG_S)  # fmt: skip
            await settled(page)
            assert (await spool_at(page, 0, tray))["remaining_g"] == expected
        assert "700 g of 1000 g" in await page.evaluate(f"{titled('PETG · Sunlu')}.innerText")

        # The owner sets slot 2's spool just above the threshold; the next print takes it under.
        await tap(page, f"{card(SLOT_2)}.querySelector('button[data-action=edit]')")
        form = f"{card(SLOT_2)}.querySelector('form.edit')"
        await page.wait_for(f"{form}.querySelector('input[name=remaining_g]') != null", HANG_S)
        just_above = round(LOW_G + used[1] / 2)
        await page.evaluate(f"(() => {{ const f = {form}; f.remaining_g.value = '{just_above}';"
                            " f.requestSubmit(); })()")
        await settled(page, f"{card(SLOT_2)}?.innerText.includes('{just_above} g of 1000 g')")
        assert await page.evaluate(f"{card(SLOT_2)}.querySelector('.low-flag')") is None
        assert (await spool_at(page, 0, 1))["colour"] == "#00AE42"  # the edit kept what it did not change

        await print_and_wait(j, page, "hook")
        await open_filament(j, page)
        await page.wait_for(f"{card(SLOT_2)}?.querySelector('.low-flag')?.textContent === 'Low'", HANG_S)
        assert "1 low (under 100 g)" in await page.evaluate("document.getElementById('summary').textContent")
        await fits(page)
        await page.screenshot(tmp_path / "filament-low.png")

        # The dashboard's recent events say it, in words; the box's screen shows it while the printer is idle.
        await page.navigate(j.base + "/")
        await page.wait_for("document.getElementById('events')?.innerText.includes('AMS 1 slot 2')", HANG_S)
        events = await page.evaluate("document.getElementById('events').innerText")
        assert "Garage P1S: PLA #00AE42 low:" in events and "filament_low" not in events, events
        # The print's end holds the box's screen until someone has seen it: the owner presses the box's button.
        await page.wait_for("fetch('/api/panel').then((r) => r.json()).then((p) => p.screen === 'finished')", HANG_S)
        await page.wait_for("document.querySelector('#panel .panel-button')?.hidden === false", HANG_S)
        await tap(page, "document.querySelector('#panel .panel-button')")
        await page.wait_for("fetch('/api/panel').then((r) => r.json()).then((p) => p.screen === 'filament'"
                            " && p.printer === 'garage')", HANG_S)  # fmt: skip
