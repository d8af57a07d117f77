"""The history's routes on the real service (issue 17): /history, /history/<id>, /stats and their API, read from a
real SQLite file filled through the Database's methods (tests/history_data.py) before the box starts."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio

import bambupi.history.routes
from bambupi.history.page import Filters, render_history, render_stats
from bambupi.history.statistics import summarize
from tests.history_data import FORMULA_NAME, HMS_CODE, HMS_TEXT, JOBS, fill
from tests.support import CSRF, Box, setup_and_login, start_box

pytestmark = pytest.mark.timeout(120)


@asynccontextmanager
async def history_box(tmp_path: Path) -> AsyncIterator[tuple[Box, httpx.AsyncClient, dict[str, int]]]:
    ids = fill(tmp_path / "bambupi.sqlite3")  # where BOX_CONFIG's [storage] puts the service's database
    async with trio.open_nursery() as nursery:
        box = await start_box(nursery, tmp_path)
        async with httpx.AsyncClient(base_url=box.base, timeout=60) as client:
            yield box, client, ids
        nursery.cancel_scope.cancel()


def names_in(page: str) -> list[str]:
    """The job names of a /history page, in its order (the template's links to each job)."""
    return [m.group(1) for m in re.finditer(r'<h2><a href="/history/\d+">([^<]*)</a></h2>', page)]


def unescape(text: str) -> str:
    return text.replace("&quot;", '"').replace("&#039;", "'").replace("&amp;", "&").replace("&lt;", "<")


async def test_the_history_shows_every_job_newest_first_with_what_it_cost(tmp_path: Path) -> None:
    async with history_box(tmp_path) as (_, client, ids):
        r = await client.get("/history")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        page = r.text
        newest_first = sorted(JOBS, key=lambda j: -j.start)
        assert [unescape(n) for n in names_in(page)] == [j.name for j in newest_first]
        benchy = page[page.index(f'data-job="{ids["Benchy"]}"'):]
        benchy = benchy[: benchy.index("</li>\n<li") if "</li>\n<li" in benchy else len(benchy)]
        assert f'src="/api/jobs/{ids["Benchy"]}/thumbnail" loading="lazy"' in benchy
        assert 'style="background:#FF0000"' in benchy and "PLA 12.3 g" in benchy and "PETG 4.1 g" in benchy
        assert "total 16.4 g" in benchy and "0.120 kWh" in benchy and "0.04" in benchy
        assert "1 h 02 min (predicted 57 min)" in benchy and "Finished" in benchy
        assert "Failed: Filament ran out. Load new filament." in page
        assert "grams unknown: FTPS refused the login" in page
        assert "Cancelled" in page and "Unknown" in page and "Printing" in page
        assert ">attic<" in page  # a printer no longer configured is named by its id
        # The list needs no script: filters and paging are plain GET forms and links (the frame's own script only
        # shows who is signed in and switches the theme).
        assert "<script" not in page.split('<main id="main">', 1)[1]
        assert 'href="/api/jobs.csv"' in page


async def test_filters_narrow_the_page_the_api_and_the_csv_alike(tmp_path: Path) -> None:
    async with history_box(tmp_path) as (_, client, _ids):
        cases = {
            "printer=attic": {"Bracket, large", "Vase"},
            "result=failed": {FORMULA_NAME},
            "material=petg": {"Bracket, large", "Benchy"},  # any of the job's filaments, any case
            "since=2026-11-01&until=2026-11-20": {"Benchy"},  # whole local days, the last one included
            "printer=garage&result=finished&material=PLA": {"Gear", "Benchy"},
        }
        for query, expected in cases.items():
            page = (await client.get(f"/history?{query}")).text
            assert {unescape(n) for n in names_in(page)} == expected, query
            jobs = (await client.get(f"/api/jobs?{query}")).json()["jobs"]
            assert {j["name"] for j in jobs} == expected, query
            rows = list(csv.DictReader(io.StringIO((await client.get(f"/api/jobs.csv?{query}")).text, newline="")))
            assert [int(r["id"]) for r in rows] == [j["id"] for j in jobs], query
            assert f'href="/api/jobs.csv?{query.replace("&", "&amp;")}"' in page, query  # the download: these rows
        page = (await client.get("/history?result=failed")).text
        assert '<option value="failed" selected>' in page  # the form shows what is applied
        assert '<option value="PETG">' in page  # the materials recorded are the choices
        # A wrong filter: the API says which; the page says so and shows everything, never a 500.
        r = await client.get("/api/jobs?since=yesterday")
        assert r.status_code == 400 and r.json()["error"] == "since: a date as YYYY-MM-DD"
        assert (await client.get("/api/jobs.csv?result=great")).status_code == 400
        r = await client.get("/history?since=yesterday")
        assert r.status_code == 200 and "Filter not applied: since: a date as YYYY-MM-DD" in r.text
        assert len(names_in(r.text)) == len(JOBS)


async def test_pages_of_the_history_and_the_apis_fields(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bambupi.history.routes, "PAGE_SIZE", 3)
    async with history_box(tmp_path) as (_, client, _ids):
        seen: list[str] = []
        url = "/history?printer=garage"
        while url:
            page = (await client.get(url)).text
            seen += names_in(page)
            older = re.search(r'<a href="(/history\?[^"]*)" rel="next"', page)
            url = unescape(older.group(1)) if older else ""
        assert [unescape(n) for n in seen] == [j.name for j in sorted(JOBS, key=lambda j: -j.start)
                                               if j.printer == "garage"]
        first = (await client.get("/api/jobs", params={"limit": 2})).json()["jobs"]
        second = (await client.get("/api/jobs", params={"limit": 2, "offset": 2})).json()["jobs"]
        assert len(first) == len(second) == 2 and first[-1]["started_at"] > second[0]["started_at"]
        # Today's fields are all still there (the /power page and scripts read them), with the new ones.
        assert {"id", "printer", "name", "model", "started_at", "ended_at", "duration_s", "result", "energy_kwh",
                "cost", "peak_watts", "filaments", "thumbnail", "file_problem", "error_text"} <= set(first[0])
        assert (await client.get("/api/jobs", params={"limit": "many"})).status_code == 400
        assert "Benchy" in (await client.get("/power")).text  # the power page's list of prints still reads them


async def test_a_jobs_detail_shows_its_timeline_and_hms_messages(tmp_path: Path) -> None:
    async with history_box(tmp_path) as (_, client, ids):
        page = (await client.get(f"/history/{ids['Benchy']}")).text
        timeline = page[page.index('id="timeline"'):page.index("</ol>", page.index('id="timeline"'))]
        words = re.findall(r'<span class="offset">([^<]*)</span> <span class="word">([^<]*)</span>', timeline)
        assert words == [("+0:00:00", "Started"), ("+0:10:00", "Paused"), ("+0:11:00", "Resumed"),
                         ("+0:15:00", "HMS raised"), ("+0:16:00", "HMS cleared"), ("+1:02:00", "Finished")]
        hms = page[page.index('id="hms"'):]
        assert f"HMS raised {HMS_CODE} — {HMS_TEXT}" in hms and f"HMS cleared {HMS_CODE}" in hms
        assert "/cache/Benchy.3mf · plate 1" in page and 'id="delete"' in page
        running = (await client.get(f"/history/{ids['Running now']}")).text
        assert 'id="delete"' not in running  # still being recorded: nothing to delete yet
        api = (await client.get(f"/api/jobs/{ids['Benchy']}")).json()
        assert [e["kind"] for e in api["events"]][:2] == ["started", "paused"] and len(api["filaments"]) == 2
        r = await client.get("/history/9999")
        assert r.status_code == 404 and "No print number 9999" in r.text
        assert (await client.get("/api/jobs/9999")).status_code == 404


async def test_csv_download_is_the_jobs_rows_and_safe_in_a_spreadsheet(tmp_path: Path) -> None:
    async with history_box(tmp_path) as (_, client, _ids):
        r = await client.get("/api/jobs.csv")
        assert r.status_code == 200 and r.headers["content-type"] == "text/csv; charset=utf-8"
        assert r.headers["content-disposition"] == 'attachment; filename="bambupi-jobs.csv"'
        rows = list(csv.DictReader(io.StringIO(r.text, newline="")))
        jobs = (await client.get("/api/jobs", params={"limit": 1000})).json()["jobs"]
        assert [int(row["id"]) for row in rows] == [j["id"] for j in jobs]
        for row, job in zip(rows, jobs, strict=True):
            grams = sum(f["used_g"] for f in job["filaments"] if f["used_g"] is not None)
            assert float(row["grams"] or 0) == pytest.approx(grams, abs=0.05), job["name"]
            assert row["energy_kwh"] == ("" if job["energy_kwh"] is None else f"{job['energy_kwh']:.3f}")
        formula = next(row for row in rows if row["name"].endswith(FORMULA_NAME))
        assert formula["name"] == "'" + FORMULA_NAME


async def test_statistics_agree_with_the_jobs(tmp_path: Path) -> None:
    async with history_box(tmp_path) as (_, client, _ids):
        jobs = (await client.get("/api/jobs", params={"limit": 1000})).json()["jobs"]
        stats = (await client.get("/api/stats")).json()
        assert stats == summarize(jobs)
        totals = stats["totals"]
        assert totals["jobs"] == len(jobs) and totals["finished"] == sum(j["result"] == "finished" for j in jobs)
        assert totals["energy_kwh"] == pytest.approx(sum(j["energy_kwh"] or 0 for j in jobs))
        narrowed = (await client.get("/api/stats", params={"printer": "attic"})).json()["totals"]
        assert narrowed["jobs"] == 2 and narrowed["grams"] == pytest.approx(20.0)
        page = (await client.get("/stats")).text
        assert '<td data-stat="Jobs">7</td>' in page and '<td data-stat="Success rate">75 %</td>' in page
        assert '<td data-stat="Filament">74 g</td>' in page and '<td data-stat="Energy">0.70 kWh</td>' in page
        content = page.split('<main id="main">', 1)[1]  # the page's own part, inside the frame
        assert content.count("<svg") == 4 and "<script" not in content and "http" not in page.replace(
            'xmlns="http://www.w3.org/2000/svg"', "")  # drawn here: nothing fetched from elsewhere
        assert ">PLA<" in page and ">PETG<" in page  # the material chart's bars are labelled, not colour only


async def test_thumbnail_and_the_owners_delete(tmp_path: Path) -> None:
    async with history_box(tmp_path) as (_, client, ids):
        benchy = ids["Benchy"]
        r = await client.get(f"/api/jobs/{benchy}/thumbnail")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content[:4] == b"\x89PNG"
        assert (await client.get(f"/api/jobs/{ids['Gear']}/thumbnail")).status_code == 404
        assert (await client.get("/api/jobs/9999/thumbnail")).status_code == 404
        picture = tmp_path / "thumbnails" / f"{benchy}.png"
        assert picture.is_file()
        assert (await client.delete(f"/api/jobs/{benchy}")).status_code == 401  # the owner's only
        csrf = await setup_and_login(client)
        r = await client.delete(f"/api/jobs/{ids['Running now']}", headers={CSRF: csrf})
        assert r.status_code == 409 and "still being recorded" in r.json()["error"]
        assert (await client.delete("/api/jobs/9999", headers={CSRF: csrf})).status_code == 404
        r = await client.delete(f"/api/jobs/{benchy}", headers={CSRF: csrf})
        assert (r.status_code, r.json()) == (200, {"deleted": benchy})
        assert not picture.exists()  # its picture goes with it
        assert (await client.get(f"/api/jobs/{benchy}")).status_code == 404
        assert (await client.get(f"/api/jobs/{benchy}/thumbnail")).status_code == 404
        assert "Benchy" not in names_in((await client.get("/history")).text)


async def test_a_database_that_cannot_be_read_is_a_warning_on_the_pages_never_a_500(tmp_path: Path) -> None:
    (tmp_path / "bambupi.sqlite3").write_bytes(b"this is not a database, it is a text file" * 100)
    async with trio.open_nursery() as nursery:
        box = await start_box(nursery, tmp_path)
        async with httpx.AsyncClient(base_url=box.base, timeout=60) as client:
            for path in ("/history", "/history/1", "/stats", "/history?printer=garage&since=2026-01-01"):
                r = await client.get(path)
                assert r.status_code == 200, path
                assert 'id="history-warning"' in r.text and "file is not a database" in r.text, path
            for path in ("/api/jobs", "/api/jobs.csv", "/api/stats", "/api/jobs/1", "/api/jobs/1/thumbnail"):
                r = await client.get(path)
                assert r.status_code == 503 and "file is not a database" in r.json()["error"], path
        nursery.cancel_scope.cancel()


def test_what_a_job_says_is_shown_as_text_never_as_markup() -> None:
    """A job's name and its 3MF's colours come from outside: escaped, and a colour that is not #RRGGBB draws no
    swatch (it would go into a style attribute)."""
    job = {"id": 1, "printer": "p", "name": '<img src=x onerror="alert(1)">', "started_at": 0.0, "ended_at": 60.0,
           "duration_s": 60.0, "result": "finished", "filaments": [
               {"idx": 1, "material": "<b>PLA</b>", "colour": "red;background:url(//evil)", "used_g": 1.0}]}
    html = render_history([job], filters=Filters(), page=1, more=False, printers={}, materials=[], currency={})
    assert "<img src=x" not in html and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    assert "<b>PLA" not in html and "url(//evil)" not in html and "(colour unknown)" in html


def test_empty_statistics_tables_say_so_rather_than_show_bare_headers() -> None:
    """A new box's /stats: the month table and the averages say there is nothing yet (no header row over nothing)."""
    page = render_stats(summarize([]), printers={}, currency="")
    assert 'id="months"' not in page and 'id="averages"' not in page
    assert "No prints yet." in page and "No finished prints yet." in page
