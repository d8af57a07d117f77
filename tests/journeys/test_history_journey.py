"""The print history on a phone (issue 17): what an owner sees on /history, a job's detail, /stats and the CSV, in
headless Chromium 360 px wide, against the real service.

The first journey opens a history recorded earlier (a real SQLite file filled through the Database's methods,
tests/history_data.py); the second prints on the simulated printer and follows the job into the history.
"""

from __future__ import annotations

import json
from pathlib import Path

import trio

from tests.browser import Page
from tests.history_data import JOBS, fill
from tests.journeys.harness import HANG_S, Journey, journey, tap
from tests.support import wait_for

WIDTH = 360


async def fits(page: Page) -> None:
    assert await page.evaluate("document.documentElement.scrollWidth") <= WIDTH, await page.evaluate("location.href")


def row(name: str) -> str:
    """A JS expression: the /history list item of the job called ``name``."""
    return (f"Array.from(document.querySelectorAll('.job-row')).find((li) => li.querySelector('h2').textContent"
            f" === {json.dumps(name)})")


def names() -> str:
    return "Array.from(document.querySelectorAll('.job-row h2')).map((h) => h.textContent)"


async def open_page(j: Journey, page: Page, path: str) -> None:
    await page.navigate(j.base + path)
    await page.wait_for("document.querySelector('header.top') != null", HANG_S)


async def test_an_owner_reads_the_history_its_detail_the_statistics_and_the_csv(tmp_path: Path) -> None:
    fill(tmp_path / "bambupi.sqlite3")  # the journey's [storage] file
    async with journey(tmp_path) as j:
        page = await j.phone()
        await page.set_viewport(WIDTH, 780)
        await j.set_password(page)
        # From the dashboard's menu, once it has settled (logged in: "Log out" replaces "Log in" in the same line).
        await page.wait_for("!document.getElementById('logout').hidden", HANG_S)
        await tap(page, "document.querySelector('header.top a[href=\"/history\"]')")
        await page.wait_for("location.pathname === '/history' && document.querySelector('.job-row') != null", HANG_S)
        assert await page.evaluate(names()) == [job.name for job in sorted(JOBS, key=lambda job: -job.start)]
        benchy = row("Benchy")
        # Its plate picture loads (lazily, from /api/jobs/<id>/thumbnail), swatches with material and grams as text.
        await page.evaluate(f"{benchy}.scrollIntoView()")
        await page.wait_for(f"{benchy}.querySelector('img.thumb')?.complete && "
                            f"{benchy}.querySelector('img.thumb').naturalWidth === 32", HANG_S)
        text = await page.evaluate(f"{benchy}.innerText")
        for seen in ("Garage P1S", "PLA 12.3 g", "PETG 4.1 g", "total 16.4 g", "0.120 kWh", "0.04", "Finished",
                     "(predicted 57 min)"):
            assert seen in text, (seen, text)
        swatches = await page.evaluate(
            f"Array.from({benchy}.querySelectorAll('.swatch')).map((s) => getComputedStyle(s).backgroundColor)")
        assert swatches == ["rgb(255, 0, 0)", "rgb(0, 0, 0)"]
        assert "grams unknown: FTPS refused the login" in await page.evaluate(f"{row('Vase')}.innerText")
        await fits(page)

        # The filter narrows the list (a plain GET form: the choice is in the address, the page needs no script).
        await page.evaluate("document.querySelector('select[name=printer]').value = 'attic';"
                            "document.querySelector('select[name=result]').value = 'finished';"
                            "document.querySelector('form.filters').requestSubmit()")
        await page.wait_for("location.search.includes('printer=attic')", HANG_S)
        await page.wait_for(f"JSON.stringify({names()}) === '[\"Vase\"]'", HANG_S)
        await fits(page)

        # The CSV link carries the same filter; what it downloads is the list's rows.
        csv_text = await page.evaluate("fetch(document.getElementById('csv').href).then((r) => r.text())")
        lines = csv_text.strip().split("\r\n")
        assert len(lines) == 2 and ",Vase," in lines[1] and "FTPS refused the login" in lines[1]

        # A job's detail: its timeline with offsets, its HMS message.
        await open_page(j, page, "/history")
        await tap(page, f"{benchy}.querySelector('h2 a')")
        await page.wait_for("document.getElementById('timeline') != null", HANG_S)
        timeline = await page.evaluate(
            "Array.from(document.querySelectorAll('#timeline li')).map((li) => li.innerText)")
        assert [line.split()[0] for line in timeline] == ["+0:00:00", "+0:10:00", "+0:11:00", "+0:15:00",
                                                         "+0:16:00", "+1:02:00"]
        assert "HMS raised 0300_0100_0001_0007 — The heatbed temperature is abnormal." in timeline[3]
        await fits(page)

        # The owner deletes a job: asked first, in the page; "Keep it" keeps it.
        detail = await page.evaluate("location.pathname")
        await tap(page, "document.getElementById('delete')")
        await page.wait_for("!document.getElementById('confirm').hidden", HANG_S)
        assert "Delete “Benchy”" in await page.evaluate("document.getElementById('confirm').innerText")
        await tap(page, "document.getElementById('delete-no')")
        await page.wait_for("document.getElementById('confirm').hidden", HANG_S)
        await tap(page, "document.getElementById('delete')")
        await tap(page, "document.getElementById('delete-yes')")
        await page.wait_for("location.pathname === '/history' && document.querySelector('.job-row') != null", HANG_S)
        assert "Benchy" not in await page.evaluate(names())
        assert (await page.evaluate(f"fetch({json.dumps(detail)}).then((r) => r.status)")) == 404

        # The statistics: totals that match the jobs left, bars labelled in words.
        await open_page(j, page, "/stats")
        jobs = await page.evaluate("fetch('/api/jobs?limit=1000').then((r) => r.json()).then((a) => a.jobs)")
        stat = "(label) => document.querySelector(`[data-stat=\"${label}\"]`).textContent"
        assert await page.evaluate(f"({stat})('Jobs')") == str(len(jobs)) == str(len(JOBS) - 1)
        finished = sum(job["result"] == "finished" for job in jobs)
        failed = sum(job["result"] == "failed" for job in jobs)
        assert await page.evaluate(f"({stat})('Success rate')") == f"{finished / (finished + failed) * 100:.0f} %"
        grams = sum(f["used_g"] for job in jobs for f in job["filaments"] if f["used_g"] is not None)
        assert await page.evaluate(f"({stat})('Filament')") == f"{grams:.0f} g"
        kwh = sum(job["energy_kwh"] or 0 for job in jobs)
        assert await page.evaluate(f"({stat})('Energy')") == f"{kwh:.2f} kWh"
        labels = await page.evaluate("Array.from(document.querySelectorAll('svg.bars text')).map((t) => t.textContent)")
        assert {"PLA", "PETG", "2026-11"} <= set(labels)
        await fits(page)


PLUG = """
[printer.plug]
kind = "tasmota"
address = "{plug_url}"
price_per_kwh = 0.30
currency = "EUR"
"""
POWER = """
[power]
sample_interval_s = 0.2
flush_interval_s = 1
"""


async def test_a_print_on_the_simulator_lands_in_the_history_with_its_picture_grams_and_energy(tmp_path: Path) -> None:
    """End to end: the simulator prints (its FTPS serves the job's 3MF, its plug measures), the box records the job,
    and the phone shows it in the history, its detail and the statistics."""
    async with journey(tmp_path, ftps=True, sim_plug=True, plug=PLUG, extra=POWER) as j:
        page = await j.phone()
        await page.set_viewport(WIDTH, 780)
        await j.set_password(page)
        j.sim.printer.start_print("gear_box", layers=20, minutes=10)
        # Paused once it runs, so the page is read while the job is open however slow the machine is.
        await wait_for(lambda: j.sim.printer.pause(), HANG_S, what="the print running (to pause it)")
        # While it prints: the list shows it running, with the grams its file plans (once the 3MF is read).
        with trio.fail_after(HANG_S):
            while True:
                await open_page(j, page, "/history")
                if await page.evaluate(f"Boolean({row('gear_box')}?.innerText.includes('planned'))"):
                    break
                await trio.sleep(0.1)
        assert "Printing" in await page.evaluate(f"{row('gear_box')}.innerText")
        await fits(page)
        j.sim.printer.resume()
        ended = ("fetch('/api/jobs').then((r) => r.json()).then((a) => a.jobs[0]?.result === 'finished'"
                 " && a.jobs[0].used_g !== null)")
        await page.wait_for(ended, HANG_S)

        await open_page(j, page, "/history")
        gear = row("gear_box")
        await page.wait_for(f"{gear}.querySelector('img.thumb')?.complete && "
                            f"{gear}.querySelector('img.thumb').naturalWidth > 0", HANG_S)
        job = (await page.evaluate("fetch('/api/jobs').then((r) => r.json())"))["jobs"][0]
        text = await page.evaluate(f"{gear}.innerText")
        assert "Finished" in text and "Garage P1S" in text and "planned" not in text
        for f in job["filaments"]:  # each filament: material and grams in words, beside its swatch
            assert f"{f['material']} {f['used_g']:.1f} g" in text, (f, text)
        assert f"total {job['used_g']:.1f} g" in text
        assert f"{job['energy_kwh']:.3f} kWh" in text and f"{job['cost']:.2f} EUR" in text
        assert job["energy_kwh"] > 0 and job["thumbnail"]
        await fits(page)

        await tap(page, f"{gear}.querySelector('h2 a')")
        await page.wait_for("document.getElementById('timeline') != null", HANG_S)
        words = await page.evaluate(
            "Array.from(document.querySelectorAll('#timeline .word')).map((w) => w.textContent)")
        assert words[0] == "Started" and words[-1] == "Finished" and "Paused" in words and "Resumed" in words, words
        assert "/cache/gear_box.3mf" in await page.evaluate("document.body.innerText")

        await open_page(j, page, "/stats")
        stat = "(label) => document.querySelector(`[data-stat=\"${label}\"]`).textContent"
        assert await page.evaluate(f"({stat})('Jobs')") == "1"
        assert await page.evaluate(f"({stat})('Success rate')") == "100 %"
        assert await page.evaluate(f"({stat})('Filament')") == f"{job['used_g']:.0f} g"
        await fits(page)


async def test_a_visitor_is_offered_no_delete_on_a_jobs_detail_but_told_to_log_in(tmp_path: Path) -> None:
    """The owner's delete shows to the owner only (as the filament page's controls do): a visitor is not asked to
    confirm a deletion the box then refuses."""
    ids = fill(tmp_path / "bambupi.sqlite3")
    async with journey(tmp_path) as j:
        page = await j.phone()
        await page.set_viewport(WIDTH, 780)
        await open_page(j, page, f"/history/{ids['Benchy']}")
        await page.wait_for("document.body.dataset.session === 'anonymous'", HANG_S)
        assert await page.evaluate("document.getElementById('delete').offsetParent === null")  # not shown
        assert "Log in" in await page.evaluate("document.getElementById('login-hint').innerText")
        await j.set_password(page)
        await open_page(j, page, f"/history/{ids['Benchy']}")
        await page.wait_for("document.body.dataset.session === 'owner'", HANG_S)
        assert await page.evaluate("document.getElementById('delete').offsetParent !== null")
        assert await page.evaluate("document.getElementById('login-hint').hidden")
        await fits(page)
