"""The statistics (bambupi/history/statistics.py) against the jobs they come from: a real SQLite file filled through
the Database's methods, the rows read back, and every figure summed here from the rows themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bambupi.database import Database
from bambupi.history.charts import Bar, bar_chart
from bambupi.history.statistics import filaments_of, job_grams, month_of, summarize
from tests.history_data import JOBS, fill


@pytest.fixture
def rows(tmp_path: Path) -> list[dict[str, Any]]:
    fill(tmp_path / "box.sqlite3")
    db = Database(tmp_path / "box.sqlite3")
    try:
        return db.jobs(limit=None)
    finally:
        db.close()


def test_the_totals_are_the_sums_of_the_rows(rows: list[dict[str, Any]]) -> None:
    totals = summarize(rows)["totals"]
    assert totals["jobs"] == len(rows) == len(JOBS)
    for result in ("finished", "failed", "cancelled", "unknown"):
        assert totals[result] == sum(1 for r in rows if r["result"] == result), result
    assert totals["running"] == sum(1 for r in rows if r["ended_at"] is None) == 1
    ended = [r for r in rows if r["ended_at"] is not None]
    assert totals["print_hours"] == pytest.approx(sum(r["duration_s"] for r in ended) / 3600)
    used = [f["used_g"] for r in rows for f in r["filaments"] if f["used_g"] is not None]
    assert totals["grams"] == pytest.approx(sum(used)) and totals["grams"] == pytest.approx(73.9)
    assert totals["energy_kwh"] == pytest.approx(sum(r["energy_kwh"] or 0 for r in rows))
    assert totals["cost"] == pytest.approx(sum(r["cost"] or 0 for r in rows))
    by_material: dict[str, float] = {}
    for r in rows:
        for f in r["filaments"]:
            if f["used_g"] is not None:
                by_material[f["material"]] = by_material.get(f["material"], 0) + f["used_g"]
    assert totals["grams_by_material"] == pytest.approx(by_material)
    assert list(totals["grams_by_material"]) == ["PLA", "PETG"]  # most first
    red = next(c for c in totals["grams_by_colour"] if (c["material"], c["colour"]) == ("PLA", "#FF0000"))
    assert red["grams"] == pytest.approx(30.0 + 12.3)


def test_cancelled_and_unknown_are_left_out_of_the_success_rate(rows: list[dict[str, Any]]) -> None:
    totals = summarize(rows)["totals"]
    # 3 finished, 1 failed; the cancelled, the unknown and the running job do not count.
    assert totals["success_rate"] == pytest.approx(3 / 4)
    only_cancelled = summarize([r for r in rows if r["result"] == "cancelled"])["totals"]
    assert only_cancelled["success_rate"] is None and only_cancelled["cancelled"] == 1


def test_each_month_sums_its_own_jobs_in_local_time(rows: list[dict[str, Any]]) -> None:
    months = summarize(rows)["months"]
    assert [m["month"] for m in months] == ["2026-09", "2026-10", "2026-11", "2026-12"]
    for month in months:
        mine = [r for r in rows if month_of(r["started_at"]) == month["month"]]
        assert month["jobs"] == len(mine)
        assert month["grams"] == pytest.approx(sum(job_grams(r) or 0 for r in mine))
        assert month["print_hours"] == pytest.approx(sum(r["duration_s"] or 0 for r in mine if r["ended_at"]) / 3600)
    november = months[2]
    assert (november["finished"], november["failed"], november["success_rate"]) == (1, 1, 0.5)
    assert november["grams_by_material"] == pytest.approx({"PLA": 16.3, "PETG": 4.1})


def test_average_print_time_by_material_is_over_finished_jobs(rows: list[dict[str, Any]]) -> None:
    averages = {a["material"]: a for a in summarize(rows)["average_print_s"]}
    # PLA: Gear (5400 s) and Benchy (3720 s) finished; the failed and the unknown one are not averaged.
    assert averages["PLA"]["jobs"] == 2 and averages["PLA"]["average_s"] == pytest.approx((5400 + 3720) / 2)
    assert averages["PETG"]["jobs"] == 1 and averages["PETG"]["average_s"] == pytest.approx(3720)
    assert "ASA" not in averages  # only the running job used it


def test_per_printer(rows: list[dict[str, Any]]) -> None:
    printers = {p["printer"]: p for p in summarize(rows)["printers"]}
    assert printers["garage"]["jobs"] == 5 and printers["attic"]["jobs"] == 2
    assert printers["attic"]["success_rate"] == 1.0 and printers["attic"]["cancelled"] == 1
    assert printers["attic"]["grams"] == pytest.approx(20.0)


def test_filaments_in_their_order_and_unknown_grams_count_nothing() -> None:
    job = {"filaments": [{"idx": 2, "material": "PETG", "colour": "", "used_g": None},
                         {"idx": 1, "material": "PLA", "colour": "#FF0000", "used_g": 2.5}]}
    assert [(f.material, f.grams) for f in filaments_of(job)] == [("PLA", 2.5), ("PETG", None)]
    assert job_grams(job) == 2.5 and job_grams({"filaments": []}) is None


def test_nothing_recorded_is_zeros_not_an_error() -> None:
    stats = summarize([])
    assert stats["totals"]["jobs"] == 0 and stats["totals"]["success_rate"] is None and stats["months"] == []


def test_the_bar_chart_writes_each_label_and_value_and_escapes_them() -> None:
    svg = bar_chart([Bar("PLA", 42.3, "42 g", colour="#FF0000"), Bar("<b>", 0, "0 g")], title="grams & more")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert ">PLA<" in svg and ">42 g<" in svg and "&lt;b&gt;" in svg and 'aria-label="grams &amp; more"' in svg
    assert 'width="0.0"' in svg  # a zero bar is empty, the largest takes the whole span
    assert "nothing yet" in bar_chart([], title="x")
