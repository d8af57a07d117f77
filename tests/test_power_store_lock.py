"""Another process holding the database's write lock must not hold up the page (issue 14, item 14).

It used to: reads and writes shared one connection and one lock, so a batch of samples waiting for the write lock
(up to the busy timeout, 10 s in the service) held every ``GET /api/power`` read behind it; a request does several
reads, up to 40 s. WAL lets readers go on beside any writer, so the store reads on its own connection and lock.
These tests use a real second SQLite connection, as another process would.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from bambupi.power.store import PowerStore, Sample, StoreError

NOW = 1_800_000_000.0


def samples(start: float, count: int) -> list[Sample]:
    return [Sample("a", start + i, 120.0, True, None) for i in range(count)]


def test_reads_go_on_while_a_write_waits_for_a_lock_another_process_holds(tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite3"
    store = PowerStore(path, busy_timeout_s=60.0)  # the waiting write outlasts the test's reads by far
    store.add_samples(samples(NOW, 3))
    job = store.start_job("a", "Benchy", "P1S", NOW)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock until this test lets go
    failures: list[BaseException] = []

    def write() -> None:
        try:
            store.add_samples(samples(NOW + 3, 2))
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        # Wait for the state "the write holds the store's write side and waits on SQLite's lock" (the other process
        # keeps it, so the write stays there): without that the reads below would prove nothing.
        while not store._lock.locked():  # the state this test is about (private on purpose)
            writer.join(0.001)
        assert writer.is_alive(), failures
        # Every read the page makes answers while the write is still waiting (the other process still holds the
        # lock, so the write cannot have finished): before the fix each of them waited for the write to give up.
        assert [s.at for s in store.samples("a", 0)] == [NOW, NOW + 1, NOW + 2]
        assert store.jobs("a")[0]["id"] == job
        assert store.series("a", 0, 300.0) != []
        assert store.open_jobs() == {"a": job}
        assert writer.is_alive(), "the write finished although the other process still holds the lock"
    finally:
        other.execute("ROLLBACK")
        other.close()
        writer.join()
    assert failures == []  # the write went through once the lock was free
    assert len(store.samples("a", 0)) == 5 and store.problem is None
    store.close()


def test_a_read_waits_at_most_its_own_timeout_and_says_why(tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite3"
    store = PowerStore(path, busy_timeout_s=60.0, read_timeout_s=0.05)
    store.add_samples(samples(NOW, 3))
    store.close()
    # A process that takes the file for itself (exclusive locking mode) blocks even WAL readers.
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("PRAGMA locking_mode=EXCLUSIVE")
    other.execute("BEGIN EXCLUSIVE")
    other.execute("COMMIT")
    try:
        with pytest.raises(StoreError, match="locked"):
            store.samples("a", 0)  # would wait 60 s with the writer's timeout
        assert store.problem is not None and "read" in store.problem
    finally:
        other.close()
    assert len(store.samples("a", 0)) == 3 and store.problem is None
    store.close()
