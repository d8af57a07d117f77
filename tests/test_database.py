"""The database's job records of issue 17: the job's file (planned filaments, thumbnail), its usage, its timeline,
the history's filters, deleting a job; thumbnails bounded in size and count; the public transaction and reading.

Real SQLite files in tmp_path; a thumbnail that cannot be written is a real failure (a file where the folder goes).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bambupi import database
from bambupi.database import THUMBNAIL_MAX_BYTES, Database, DatabaseError, JobEnd, JobFilamentUse

NOW = 1_800_000_000.0
PNG = b"\x89PNG\r\n\x1a\n" + b"picture" * 100


@dataclass(frozen=True)
class Planned:  # the shape of bambupi.jobfile.threemf.PlannedFilament
    index: int
    material: str
    colour: str
    grams: float
    metres: float | None
    tray_info_idx: str | None = None


PLA_RED = Planned(1, "PLA", "#FF0000", 10.5, 3.5)
PETG_BLACK = Planned(3, "PETG", "#000000", 2.0, None)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    store = Database(tmp_path / "bambupi.sqlite3")
    assert store.problem is None
    return store


def with_file(db: Database, job: int, png: bytes | None = PNG, filaments: tuple[Planned, ...] = (PLA_RED,)) -> None:
    db.set_job_file(job, path="/cache/benchy.3mf", plate=2, predicted_s=3600.0, planned_g=12.5, filaments=filaments,
                    thumbnail_png=png)


def test_a_jobs_file_its_usage_its_timeline_and_its_end_read_back_as_one_job(db: Database) -> None:
    job = db.start_job("garage", "Benchy", "P1S", NOW)
    db.set_job_file_problem(job, "FTPS refused the login")  # a first attempt failed; the second one reads it
    with_file(db, job, filaments=(PLA_RED, PETG_BLACK))
    db.add_job_event(job, NOW + 10, "started")
    db.add_job_event(job, NOW + 300, "hms_raised", "0300_4000", "the nozzle is clogged")
    db.add_job_event(job, NOW + 200, "paused")
    db.set_job_usage(job, 7.1, {
        1: JobFilamentUse(6.3, ams=0, tray=1, spool_id=4),
        3: JobFilamentUse(0.8, external=True),
        5: JobFilamentUse(None, ams=1, tray=0),  # not in the file's plan: added
    })
    db.end_job(job, JobEnd(ended_at=NOW + 600, result="failed", energy_kwh=0.05, cost=0.01, peak_watts=300.0,
                           duration_s=590.0, print_error="0300_4000", error_text="the nozzle is clogged"))
    found = db.job(job)
    assert found is not None
    assert {k: found[k] for k in ("plate", "file_path", "predicted_s", "planned_g", "used_g", "file_problem",
                                  "print_error", "error_text", "thumbnail", "result", "duration_s")} == {
        "plate": 2, "file_path": "/cache/benchy.3mf", "predicted_s": 3600.0, "planned_g": 12.5, "used_g": 7.1,
        "file_problem": None, "print_error": "0300_4000", "error_text": "the nozzle is clogged",
        "thumbnail": f"{job}.png", "result": "failed", "duration_s": 590.0,
    }
    assert found["filaments"] == [
        {"index": 1, "material": "PLA", "colour": "#FF0000", "planned_g": 10.5, "planned_m": 3.5, "used_g": 6.3,
         "ams": 0, "tray": 1, "external": False, "spool_id": 4},
        {"index": 3, "material": "PETG", "colour": "#000000", "planned_g": 2.0, "planned_m": None, "used_g": 0.8,
         "ams": None, "tray": None, "external": True, "spool_id": None},
        {"index": 5, "material": None, "colour": None, "planned_g": None, "planned_m": None, "used_g": None,
         "ams": 1, "tray": 0, "external": False, "spool_id": None},
    ]
    assert [(e["at"], e["kind"], e["code"], e["text"]) for e in found["events"]] == [
        (NOW + 10, "started", None, None), (NOW + 200, "paused", None, None),
        (NOW + 300, "hms_raised", "0300_4000", "the nozzle is clogged"),
    ]
    listed = db.jobs()
    assert len(listed) == 1 and listed[0]["filaments"] == found["filaments"] and "events" not in listed[0]
    assert db.thumbnail_path(job) == db.thumbnails / f"{job}.png"
    assert (db.thumbnails / f"{job}.png").read_bytes() == PNG

    # The file read again (say, after a restart) replaces the plan, not adds to it; a problem clears.
    db.set_job_file_problem(job, "3MF too large (300 MB > 200 MB)")
    with_file(db, job, png=None, filaments=(PETG_BLACK,))
    again = db.job(job)
    assert again is not None and again["file_problem"] is None and again["thumbnail"] is None
    assert [f["index"] for f in again["filaments"]] == [3]
    assert db.thumbnail_path(job) is None and not (db.thumbnails / f"{job}.png").exists()


def test_the_history_filters_by_printer_result_material_and_start_and_pages(db: Database) -> None:
    jobs = {}
    for n, (printer, result, material) in enumerate([("garage", "finished", "PLA"), ("garage", "failed", "PETG"),
                                                     ("office", "finished", "pla"), ("office", "cancelled", None)]):
        job = db.start_job(printer, f"job {n}", "P1S", NOW + n * 3600)
        if material is not None:
            with_file(db, job, png=None, filaments=(Planned(1, material, "", 1.0, None),))
        db.end_job(job, JobEnd(ended_at=NOW + n * 3600 + 60, result=result, energy_kwh=None, cost=None,
                               peak_watts=None))
        jobs[n] = job

    def names(**filters: Any) -> list[str]:
        return [str(j["name"]) for j in db.jobs(**filters)]

    assert names() == ["job 3", "job 2", "job 1", "job 0"]  # newest first
    assert names(printer="garage") == ["job 1", "job 0"]
    assert names(result="finished") == ["job 2", "job 0"]
    assert names(material="PLA") == ["job 2", "job 0"]  # any case, as slicers write it
    assert names(material="PLA", printer="office") == ["job 2"]
    assert names(since=NOW + 3600, until=NOW + 3 * 3600) == ["job 2", "job 1"]
    assert names(limit=2) == ["job 3", "job 2"] and names(limit=2, offset=2) == ["job 1", "job 0"]
    assert names(limit=None) == names() and names(limit=-1) == [] and names(offset=-5) == names()
    assert names(material="nylon") == [] and names(printer="no such") == []
    # A filter is a value, never SQL.
    assert names(printer="garage' OR '1'='1") == [] and names(material="%") == []
    assert db.jobs(limit=1, material="PLA")[0]["filaments"][0]["material"] == "pla"


def test_deleting_a_job_removes_its_rows_and_its_thumbnail_and_nothing_else(db: Database) -> None:
    kept, gone = db.start_job("a", "kept", "P1S", NOW), db.start_job("a", "gone", "P1S", NOW + 1)
    for job in (kept, gone):
        with_file(db, job)
        db.add_job_event(job, NOW + 5, "started")
        db.set_job_usage(job, 1.0, {1: JobFilamentUse(1.0, ams=0, tray=0)})
    assert db.delete_job(gone) is True
    assert db.job(gone) is None and db.thumbnail_path(gone) is None
    assert not (db.thumbnails / f"{gone}.png").exists()
    with sqlite3.connect(db.path) as raw:  # the cascade really removed them (foreign keys are on)
        assert raw.execute("SELECT COUNT(*) FROM job_filaments WHERE job_id = ?", (gone,)).fetchone()[0] == 0
        assert raw.execute("SELECT COUNT(*) FROM job_events WHERE job_id = ?", (gone,)).fetchone()[0] == 0
    kept_job = db.job(kept)
    assert kept_job is not None and len(kept_job["filaments"]) == 1 and len(kept_job["events"]) == 1
    assert db.thumbnail_path(kept) is not None
    assert db.delete_job(gone) is False  # twice: nothing there
    # A deleted job takes no more file, usage or events (the recorder may still be finishing it).
    with_file(db, gone)
    db.add_job_event(gone, NOW + 9, "finished")
    db.set_job_usage(gone, 2.0, {1: JobFilamentUse(2.0)})
    assert db.job(gone) is None and not (db.thumbnails / f"{gone}.png").exists()
    assert sorted(p.name for p in db.thumbnails.iterdir()) == [f"{kept}.png"]


def test_thumbnails_are_bounded_in_size_and_count_oldest_jobs_first(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "THUMBNAILS_MAX", 3)
    big, not_png = db.start_job("a", "big", "P1S", NOW - 10), db.start_job("a", "text", "P1S", NOW - 9)
    with_file(db, big, png=b"\x89PNG\r\n\x1a\n" + b"x" * THUMBNAIL_MAX_BYTES)
    with_file(db, not_png, png=b"<svg onload=alert(1)>")
    for job in (big, not_png):  # left out; the rest of the file is stored
        found = db.job(job)
        assert found is not None and found["thumbnail"] is None and found["planned_g"] == 12.5
    assert not db.thumbnails.exists() or list(db.thumbnails.iterdir()) == []
    # Started in this order: 0 is the oldest job; the files are written newest job first to show it is the job's
    # start, not the write's order, that decides.
    jobs = [db.start_job("a", f"job {n}", "P1S", NOW + n) for n in range(5)]
    for job in reversed(jobs):
        with_file(db, job)
    assert sorted(p.name for p in db.thumbnails.iterdir()) == sorted(f"{j}.png" for j in jobs[2:])
    assert [db.thumbnail_path(j) is not None for j in jobs] == [False, False, True, True, True]
    oldest = db.job(jobs[0])
    assert oldest is not None and oldest["thumbnail"] is None and oldest["filaments"] != []  # only the picture goes
    exactly = b"\x89PNG\r\n\x1a\n" + b"x" * (THUMBNAIL_MAX_BYTES - 8)
    newest = db.start_job("a", "newest", "P1S", NOW + 100)
    with_file(db, newest, png=exactly)
    assert db.thumbnail_path(newest) is not None and db.thumbnail_path(jobs[2]) is None


def test_a_thumbnail_that_cannot_be_written_never_fails_the_jobs_row(tmp_path: Path) -> None:
    store = Database(tmp_path / "bambupi.sqlite3")
    store.thumbnails.write_text("a file where the thumbnails folder goes")  # mkdir and every write fail
    job = store.start_job("a", "Benchy", "P1S", NOW)
    with_file(store, job)
    found = store.job(job)
    assert found is not None and found["thumbnail"] is None and found["filaments"][0]["index"] == 1
    assert store.problem is None and store.thumbnail_path(job) is None
    assert store.delete_job(job) is True  # and deleting it does not trip over the missing file
    store.close()


def test_a_failed_row_write_leaves_no_thumbnail_file_behind(db: Database) -> None:
    job = db.start_job("a", "Benchy", "P1S", NOW)
    with pytest.raises(DatabaseError):
        with_file(db, job, filaments=(PLA_RED, PLA_RED))  # the same index twice: the row write fails
    found = db.job(job)
    assert found is not None and found["thumbnail"] is None and found["filaments"] == []
    assert list(db.thumbnails.iterdir()) == []


def test_stored_text_is_text_only(db: Database) -> None:
    name = "x'); DROP TABLE jobs; -- \u00e9\U0001f680 <b>"
    job = db.start_job("a", name, "P1S", NOW)
    db.set_job_file_problem(job, name)
    db.add_job_event(job, NOW, "hms_raised", name, name)
    found = db.job(job)
    assert found is not None and found["name"] == name and found["file_problem"] == name
    assert found["events"][0]["text"] == name and found["events"][0]["code"] == name
    with pytest.raises(DatabaseError):
        db.add_job_event(job, NOW, "hms_raised", "bad\ud800code")
    assert db.problem is not None
    db.add_job_event(job, NOW, "hms_cleared")
    assert db.problem is None


def test_transaction_is_all_or_nothing_and_reading_is_one_snapshot(db: Database) -> None:
    with db.transaction() as conn:
        conn.execute("INSERT INTO spools (material, created_at, updated_at) VALUES ('PLA', ?, ?)", (NOW, NOW))
    with pytest.raises(RuntimeError), db.transaction() as conn:
        conn.execute("INSERT INTO spools (material, created_at, updated_at) VALUES ('PETG', ?, ?)", (NOW, NOW))
        raise RuntimeError("a rule said no")
    with pytest.raises(DatabaseError, match="UNIQUE"), db.transaction() as conn:
        conn.execute("INSERT INTO spools (material, rfid, created_at, updated_at) VALUES ('PLA', 'A', 0, 0)")
        conn.execute("INSERT INTO spools (material, rfid, created_at, updated_at) VALUES ('PLA', 'A', 0, 0)")
    with db.reading() as conn:
        first = conn.execute("SELECT material FROM spools").fetchall()
        with db.transaction() as writer:  # the writing connection is another one: the snapshot does not move
            writer.execute("INSERT INTO spools (material, created_at, updated_at) VALUES ('ABS', 0, 0)")
        assert conn.execute("SELECT material FROM spools").fetchall() == first == [("PLA",)]
    with db.reading() as conn:
        assert [r[0] for r in conn.execute("SELECT material FROM spools ORDER BY id")] == ["PLA", "ABS"]
    with pytest.raises(DatabaseError), db.reading() as conn:
        conn.execute("SELECT nothing FROM nowhere")
    with db.reading() as conn:  # the failed read left no transaction open behind it
        assert conn.execute("SELECT COUNT(*) FROM spools").fetchone()[0] == 2
