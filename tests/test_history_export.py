"""The history as CSV (bambupi/history/export.py): RFC 4180 quoting, one row per job with its filaments and total
grams, and no cell a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from bambupi.database import Database
from bambupi.history.export import COLUMNS, filaments_cell, jobs_csv, safe_text
from tests.history_data import FORMULA_NAME, fill


def parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_one_row_per_job_with_its_filaments_and_grams(tmp_path: Path) -> None:
    fill(tmp_path / "box.sqlite3")
    db = Database(tmp_path / "box.sqlite3")
    jobs = db.jobs(limit=None)
    db.close()
    text = jobs_csv(jobs)
    assert text.startswith(",".join(COLUMNS) + "\r\n") and text.endswith("\r\n")
    rows = parse(text)
    assert [int(r["id"]) for r in rows] == [j["id"] for j in jobs]
    benchy = next(r for r in rows if r["name"] == "Benchy")
    assert benchy["filaments"] == "PLA #FF0000 12.3 g; PETG #000000 4.1 g" and benchy["grams"] == "16.4"
    assert (benchy["result"], benchy["energy_kwh"], benchy["cost"]) == ("finished", "0.120", "0.04")
    assert benchy["duration_min"] == "62.0" and benchy["predicted_min"] == "56.7"
    vase = next(r for r in rows if r["name"] == "Vase")
    assert vase["grams"] == "" and vase["grams_unknown_reason"] == "FTPS refused the login"
    failed = next(r for r in rows if r["result"] == "failed")
    assert failed["error"] == "Filament ran out. Load new filament."
    assert next(r for r in rows if r["name"] == "Running now")["result"] == "running"
    # The comma and the quotes survive the round trip.
    assert {"Bracket, large", 'Clip "quoted"'} <= {r["name"] for r in rows}
    assert sum(float(r["grams"] or 0) for r in rows) == pytest.approx(73.9)


def test_a_name_that_is_a_formula_is_written_as_text() -> None:
    text = jobs_csv([{"id": 1, "printer": "+p", "name": FORMULA_NAME, "started_at": 0.0, "filaments": []}])
    row = parse(text)[0]
    assert row["name"] == "'" + FORMULA_NAME and row["printer"] == "'+p"
    for start in ("=", "+", "-", "@", "\t", "\r"):
        assert safe_text(start + "1") == "'" + start + "1"
    assert safe_text("Benchy - v2") == "Benchy - v2" and safe_text("") == ""


def test_filaments_cell_says_unknown_grams_and_leaves_out_an_unknown_colour() -> None:
    job = {"filaments": [{"idx": 1, "material": "PLA", "colour": "", "used_g": None},
                         {"idx": 2, "material": "TPU", "colour": "#00AE42", "used_g": 1.25}]}
    assert filaments_cell(job) == "PLA ? g; TPU #00AE42 1.2 g"
