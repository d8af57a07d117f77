"""A box upgraded from the database before schema versions keeps every job and power sample (issue 17).

``tests/fixtures/db_v1.sqlite3`` was written by the old code itself (see ``tests/make_db_v1_fixture.py`` and the
sidecar ``db_v1.source.toml``). Opening it with today's :class:`Database` takes it to version 2 in one transaction;
a migration that fails half way (a full disk, a failing step) leaves the old file whole and the next use completes
it; a file from a newer bambupi is refused and never touched.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from bambupi import database
from bambupi.database import SCHEMA_VERSION, Database, DatabaseError, JobEnd
from tests.make_db_v1_fixture import FIXTURE, JOBS
from tests.support import fill

V1_JOB_COLUMNS = ("id", "printer", "name", "model", "started_at", "ended_at", "duration_s", "result", "energy_kwh",
                  "cost", "peak_watts")
V2_JOB_COLUMNS = ("plate", "file_path", "predicted_s", "planned_g", "used_g", "file_problem", "print_error",
                  "error_text", "thumbnail")
V2_TABLES = {"job_filaments", "job_events", "spools", "spool_usage"}


def raw(path: Path) -> contextlib.closing[sqlite3.Connection]:
    """A plain SQLite connection, as another program would read the file (not through Database)."""
    return contextlib.closing(sqlite3.connect(path, isolation_level=None))


def contents(path: Path) -> dict[str, Any]:
    """Everything a v1 database holds, column by column, plus what says which version it is."""
    with raw(path) as db:
        tables = {str(r[0]) for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return {
            "user_version": db.execute("PRAGMA user_version").fetchone()[0],
            "job_columns": [str(r[1]) for r in db.execute("PRAGMA table_info(jobs)")],
            "new_tables": tables & V2_TABLES,
            "jobs": db.execute(f"SELECT {', '.join(V1_JOB_COLUMNS)} FROM jobs ORDER BY id").fetchall(),
            "samples": db.execute(
                "SELECT printer, at, watts, relay_on, total_kwh, span FROM power_samples ORDER BY rowid"
            ).fetchall(),
            "integrity": db.execute("PRAGMA integrity_check").fetchone()[0],
        }


@pytest.fixture
def v1_copy(tmp_path: Path) -> Path:
    path = tmp_path / "bambupi.sqlite3"
    shutil.copyfile(FIXTURE, path)
    return path


def test_the_fixture_is_a_database_of_the_old_code_with_samples_at_every_span(v1_copy: Path) -> None:
    before = contents(v1_copy)
    assert before["user_version"] == 0 and before["new_tables"] == set()
    assert before["job_columns"] == list(V1_JOB_COLUMNS)
    assert {span for *_, span in before["samples"]} == {0, 60, 3600}
    assert [job[2] for job in before["jobs"]] == [job[1] for job in JOBS]
    assert before["integrity"] == "ok"


def test_an_upgraded_box_keeps_every_job_and_every_sample_with_the_same_values(v1_copy: Path) -> None:
    before = contents(v1_copy)
    db = Database(v1_copy)
    assert db.problem is None
    after = contents(v1_copy)
    assert after["user_version"] == SCHEMA_VERSION == 2 and db.version() == 2
    assert after["new_tables"] == V2_TABLES
    assert after["job_columns"] == [*V1_JOB_COLUMNS, *V2_JOB_COLUMNS]
    assert after["jobs"] == before["jobs"]  # every job, every value (names with quotes and emoji included)
    assert after["samples"] == before["samples"]  # every sample at every span, in the same order
    assert after["integrity"] == "ok"

    # And through the Database as the service reads it: today's fields as before, the new ones null.
    jobs = db.jobs(limit=None)
    assert [tuple(job[c] for c in V1_JOB_COLUMNS) for job in reversed(jobs)] == before["jobs"]
    for job in jobs:
        assert all(job[c] is None for c in V2_JOB_COLUMNS) and job["filaments"] == []
    assert db.job(2) == {**jobs[2], "events": []}
    assert db.open_jobs() == {"office": 4}
    for printer in ("garage", "office"):
        raw_samples = [s for s in before["samples"] if s[0] == printer and s[5] == 0]
        assert [(s.printer, s.at, s.watts, int(s.on), s.total_kwh, 0) for s in db.samples(printer, 0)] == raw_samples
    spans = {span: sum(1 for s in before["samples"] if s[5] == span) for span in (0, 60, 3600)}
    assert db.count_samples() == spans

    # The upgraded file takes the new data; the job left open by the old box ends as before.
    db.end_job(4, JobEnd(ended_at=1_800_000_100.0, result="failed", energy_kwh=None, cost=None, peak_watts=None,
                         print_error="0300_4000", error_text="Printing stopped: the nozzle is clogged"))
    db.add_job_event(4, 1_800_000_050.0, "hms_raised", "0300_4000", "the nozzle is clogged")
    ended = db.job(4)
    assert ended is not None and ended["print_error"] == "0300_4000" and ended["duration_s"] == 3700.0
    assert [e["kind"] for e in ended["events"]] == ["hms_raised"]
    db.close()

    # Opened again: nothing to do, nothing changes.
    again = Database(v1_copy)
    assert again.problem is None and again.version() == 2
    assert contents(v1_copy)["samples"] == before["samples"]
    again.close()


def test_a_migration_that_fails_half_way_leaves_the_old_database_and_the_next_use_completes_it(
    v1_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = contents(v1_copy)
    # The version 2 step fails after its ALTERs and its first new table (a real SQLite error inside the step).
    step = database.MIGRATIONS[1]
    broken = (*step[:11], "INSERT INTO no_such_table VALUES (1)", *step[11:])
    assert any("job_filaments" in statement for statement in step[:11])
    monkeypatch.setattr(database, "MIGRATIONS", (database.MIGRATIONS[0], broken))
    db = Database(v1_copy)
    assert db.problem is not None and "no_such_table" in db.problem
    with pytest.raises(DatabaseError, match="no_such_table"):
        db.jobs()
    assert contents(v1_copy) == before  # not one column, table or version number of the half step is left

    monkeypatch.undo()  # the cause is gone (in life: a newer bambupi, room on the disk): the same object goes on
    assert len(db.jobs()) == len(JOBS) and db.problem is None
    after = contents(v1_copy)
    assert after["user_version"] == 2 and after["new_tables"] == V2_TABLES
    assert after["jobs"] == before["jobs"] and after["samples"] == before["samples"]
    db.close()


def test_a_full_disk_during_the_migration_leaves_a_readable_old_database_and_room_completes_it(
    tiny_disk: Path,
) -> None:
    path = tiny_disk / "bambupi.sqlite3"
    shutil.copyfile(FIXTURE, path)
    before = contents(path)
    with raw(path) as reader:
        reader.execute("SELECT COUNT(*) FROM jobs").fetchone()  # another reader: the WAL index is there already
        filler = fill(tiny_disk)
        db = Database(path)  # never raises: the problem is kept and shown
        assert db.problem is not None and db.problem.startswith("cannot open") and "full" in db.problem, db.problem
        assert db.health()["power_log"]["ok"] is False
        with pytest.raises(DatabaseError):
            db.start_job("garage", "on a full disk", "P1S", 1_800_000_000.0)
        # The old database, as it was, readable beside the failed upgrade.
        assert reader.execute("PRAGMA user_version").fetchone()[0] == 0
        assert reader.execute(f"SELECT {', '.join(V1_JOB_COLUMNS)} FROM jobs ORDER BY id").fetchall() == before["jobs"]
        filler.unlink()
    assert contents(path) == before
    # Room again: the next use upgrades, no restart.
    assert len(db.jobs()) == len(JOBS) and db.version() == 2
    db.start_job("garage", "with room", "P1S", 1_800_000_000.0)
    assert db.problem is None
    after = contents(path)
    assert after["jobs"][:-1] == before["jobs"] and after["samples"] == before["samples"]
    assert after["integrity"] == "ok"
    db.close()


def test_a_database_of_a_newer_version_is_refused_untouched_and_named(tmp_path: Path) -> None:
    path = tmp_path / "bambupi.sqlite3"
    with raw(path) as db:
        db.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, whatever TEXT)")
        db.execute("INSERT INTO jobs (whatever) VALUES ('a newer bambupi wrote this')")
        db.execute("PRAGMA user_version = 3")
    written = path.read_bytes()
    store = Database(path)
    assert store.problem is not None
    assert "version 3" in store.problem and "2" in store.problem and "newer" in store.problem
    assert store.health()["power_log"] == {"ok": False, "error": store.problem}
    with pytest.raises(DatabaseError, match="version 3"):
        store.jobs()
    with pytest.raises(DatabaseError, match="version 3"):
        store.start_job("a", "x", "P1S", 0.0)
    store.close()
    assert path.read_bytes() == written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bambupi.sqlite3"]  # no WAL, no thumbnails folder made

    # Retried at every use: once the owner moves the file aside, a new database starts without a restart.
    path.rename(tmp_path / "newer.sqlite3")
    assert store.jobs() == [] and store.version() == 2
    store.start_job("a", "x", "P1S", 0.0)
    assert store.problem is None
    store.close()


def test_a_new_database_is_made_at_the_latest_version_in_one_go(tmp_path: Path) -> None:
    store = Database(tmp_path / "fresh.sqlite3")
    assert store.problem is None
    found = contents(tmp_path / "fresh.sqlite3")
    assert found["user_version"] == 2 and found["new_tables"] == V2_TABLES
    assert found["job_columns"] == [*V1_JOB_COLUMNS, *V2_JOB_COLUMNS]
    store.close()


def test_two_openers_of_an_old_file_at_once_upgrade_it_once(v1_copy: Path) -> None:
    before = contents(v1_copy)
    # Two Databases (as the service and `bambupi` in a shell would be), each opening from its own thread at once.
    opened: list[Database] = []
    start = threading.Barrier(2)

    def open_it() -> None:
        start.wait()
        opened.append(Database(v1_copy, busy_timeout_s=30.0))

    threads = [threading.Thread(target=open_it) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [d.problem for d in opened] == [None, None]
    after = contents(v1_copy)
    assert after["user_version"] == 2 and after["job_columns"] == [*V1_JOB_COLUMNS, *V2_JOB_COLUMNS]
    assert after["jobs"] == before["jobs"] and after["samples"] == before["samples"]
    for d in opened:
        d.close()
