"""The power log in SQLite: batches, downsampling, jobs, energy; and durability: a process writing samples is
killed with SIGKILL, the database reopens intact with every sample it had committed."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import pytest

from bambupi.config import parse_config
from bambupi.database import DAY_S, Database, JobEnd, Sample, energy_kwh
from bench.power import start_child

NOW = 1_800_000_000.0  # a whole hour (divisible by 3600)


def test_wal_mode_batches_and_jobs(tmp_path: Path) -> None:
    store = Database(tmp_path / "p.sqlite3")
    mode = sqlite3.connect(tmp_path / "p.sqlite3").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    store.add_samples([Sample("a", NOW + i, 100.0 + i, True, 1.5) for i in range(5)])
    store.add_samples([])
    assert [s.watts for s in store.samples("a", NOW + 2)] == [102.0, 103.0, 104.0]
    row = store.start_job("a", "Benchy", "P1S", NOW)
    assert store.open_jobs() == {"a": row}
    store.end_job(row, JobEnd(ended_at=NOW + 600, result="finished", energy_kwh=0.05, cost=0.015, peak_watts=330.0))
    job = store.jobs("a")[0]
    assert job["duration_s"] == 600 and job["result"] == "finished" and job["cost"] == 0.015
    assert store.open_jobs() == {} and store.jobs("other") == []
    store.close()


def test_downsampling_keeps_raw_7_days_minutes_90_days_then_hours(tmp_path: Path) -> None:
    store = Database(tmp_path / "p.sqlite3")
    recent = [Sample("a", NOW - 3600 + i * 10, 50.0, True, None) for i in range(6)]
    week_old = [Sample("a", NOW - 8 * DAY_S + i * 10, 100.0 + (i % 2) * 20, True, None) for i in range(12)]
    store.add_samples(recent + week_old)
    store.downsample(NOW)
    assert store.count_samples() == {0: 6, 60: 2}  # 12 samples over two minutes -> two 1-minute averages
    assert [w for _, w in store.series("a", NOW - 9 * DAY_S, 60)][:2] == [110.0, 110.0]
    # 90 days on, everything is older than 90 days: one hourly average for each of the two hours with data.
    store.downsample(NOW + 90 * DAY_S)
    assert store.count_samples() == {3600: 2}
    assert [w for _, w in store.series("a", 0, 3600)] == [110.0, 50.0]
    store.close()


def test_energy_integrates_and_does_not_fill_gaps() -> None:
    assert energy_kwh([(0, 1000.0), (3600, 1000.0)], max_gap_s=3600) == pytest.approx(1.0)
    assert energy_kwh([(0, 1000.0), (7200, 0.0)], max_gap_s=30) == pytest.approx(30 / 3600)
    assert energy_kwh([(0, None), (10, None)], max_gap_s=30) is None


def test_plug_config_in_a_printer_table() -> None:
    base = (
        '[[printer]]\nid = "a"\nmodel = "P1S"\nhost = "10.0.0.2"\nserial = "01P00A000000001"\n'
        'access_code = "12345678"\n'
    )
    config, problems = parse_config(base + '[printer.plug]\nkind = "shelly2"\naddress = "10.0.0.9"\npassword = "pw-1"\n'
                                    'auto_off = true\nprice_per_kwh = 0.32\n[power]\nsample_interval_s = 5\n')
    assert config is not None and problems == []
    plug = config.printers[0].plug
    assert plug is not None and plug.address == "http://10.0.0.9" and plug.password is not None
    assert plug.password.reveal() == "pw-1" and plug.auto_off and plug.auto_off_nozzle_below_c == 50.0
    assert config.power.sample_interval_s == 5.0

    config, problems = parse_config(base + '[printer.plug]\nkind = "homeassistant"\naddress = "ha.local:8123"\n'
                                    'password = "hunter22"\nauto_of = true\n')
    text = "\n".join(str(p) for p in problems)
    assert config is None and "hunter22" not in text
    assert "printer[0].plug.token: required for a homeassistant plug" in text
    assert "printer[0].plug.auto_of: unknown key, ignored (did you mean 'auto_off'?)" in text
    assert ":7: printer[0].plug" in text  # line numbers point into the [printer.plug] table

    config, problems = parse_config(base + 'plug = "tasmota"\n')
    assert config is None and "printer[0].plug: must be a table" in str(problems[0])
    config, problems = parse_config(base + '[printer.plug]\nkind = "kasa"\naddress = "http://x/ y"\n')
    assert config is None and {p.key for p in problems} == {"printer[0].plug.kind", "printer[0].plug.address"}


def test_kill_9_while_logging_loses_at_most_the_unwritten_batch(tmp_path: Path) -> None:
    db = tmp_path / "bambupi.sqlite3"
    child = start_child(db, 0.01, 0.1)  # 100 samples/s, a batch every 0.1 s: many commits to interrupt
    try:
        deadline = time.monotonic() + 60  # a hang bound: each wait below ends on what the database holds
        committed: list[tuple[float, float]] = []
        reader = sqlite3.connect(db)

        def rows() -> list[tuple[float, float]]:
            return reader.execute("SELECT at, watts FROM power_samples WHERE span = 0 ORDER BY at").fetchall()

        while len(committed) < 150 and time.monotonic() < deadline:
            committed = rows()
            time.sleep(0.05)
        assert len(committed) >= 150
        while len(rows()) <= len(committed) and time.monotonic() < deadline:  # it goes on writing
            time.sleep(0.01)
        reader.close()
        time.sleep(0.037)  # kill it at an arbitrary point, likely mid-batch
        child.send_signal(signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    store = Database(db)
    assert store.integrity() == "ok"
    after = [(s.at, s.watts) for s in store.samples("bench", 0)]
    assert after[: len(committed)] == committed  # every committed sample intact, in order
    assert len(after) > len(committed)  # and it kept writing until the kill
    store.close()
