"""Write tests/fixtures/db_v1.sqlite3 with the database code as it was before schema versions (issue 17).

The upgrade test (tests/test_database_upgrade.py) opens this file with today's :class:`bambupi.database.Database`
and checks every job and every power sample survived. The file must be written by the OLD code, not by a copy of its
SQL: this script takes ``bambupi/power/store.py`` from git at the commit before the rename (``OLD_CODE``), imports it
from a temporary file and uses its ``PowerStore`` as the service did: samples in batches, jobs started and ended,
``downsample`` so there are raw samples, one-minute and hourly averages. Run it again only if the fixture is lost:

    .venv/bin/python -m tests.make_db_v1_fixture
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Final

OLD_CODE: Final = "b50269d~1:bambupi/power/store.py"  # the last commit with the schema before versions
FIXTURE: Final = Path(__file__).parent / "fixtures" / "db_v1.sqlite3"
NOW: Final = 1_800_000_000.0  # a whole hour
DAY_S: Final = 86400.0

# (printer, name, model, started after NOW, ended after its start or None, result, energy_kwh, cost, peak_watts,
# duration_s). Names as the reducer passes them: any text, quotes and all.
JOBS: Final = (
    ("garage", "Benchy", "P1S", -3 * DAY_S, 1800.0, "finished", 0.061, 0.0183, 312.5, 1795.5),
    ("garage", "bracket 'v2'; DROP TABLE jobs; --", "P1S", -2 * DAY_S, 600.0, "failed", 0.02, None, 290.0, None),
    ("office", "Ölkanne \u2013 Deckel 🚀", "A1", -DAY_S, 300.0, "cancelled", None, None, None, 299.0),
    ("office", None, "A1", -3600.0, None, None, None, None, None, None),  # running when the old box stopped
)


def old_store_module() -> ModuleType:
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(["git", "show", OLD_CODE], cwd=root, check=True, capture_output=True, text=True).stdout
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "old_power_store.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location("old_power_store", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
        spec.loader.exec_module(module)
    return module


def write(path: Path) -> None:
    old = old_store_module()
    path.unlink(missing_ok=True)
    store = old.PowerStore(path)
    assert store.problem is None, store.problem
    for printer, watts in (("garage", 100.0), ("office", 40.0)):
        # 100 days ago (hourly averages after downsample), 10 days ago (one-minute averages), the last minutes (raw);
        # the office plug has no energy counter and once measured no power.
        for start, count, step in ((NOW - 100 * DAY_S, 12, 600.0), (NOW - 10 * DAY_S, 12, 20.0), (NOW - 600, 10, 30.0)):
            store.add_samples([
                old.Sample(printer, start + i * step, None if printer == "office" and i == 3 else watts + i, i % 5 != 4,
                           1.25 + i / 100 if printer == "garage" else None)
                for i in range(count)
            ])
    for printer, name, model, start, length, result, energy, cost, peak, duration in JOBS:
        job = store.start_job(printer, name, model, NOW + start)
        if length is not None:
            store.end_job(job, old.JobEnd(ended_at=NOW + start + length, result=result, energy_kwh=energy, cost=cost,
                                          peak_watts=peak, duration_s=duration))
    store.downsample(NOW)
    assert set(store.count_samples()) == {0, 60, 3600}, store.count_samples()
    assert store.integrity() == "ok"
    store.close()  # the last connection: SQLite folds the WAL into the file and removes it


if __name__ == "__main__":
    write(FIXTURE)
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)")
