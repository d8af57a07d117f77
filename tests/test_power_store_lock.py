"""Another process holding the database's write lock must not hold up the page (issue 14, item 14).

It used to: reads and writes shared one connection and one lock, so a batch of samples waiting for the write lock
(up to the busy timeout, 10 s in the service) held every ``GET /api/power`` read behind it; a request does several
reads, up to 40 s. WAL lets readers go on beside any writer, so the store reads on its own connection and lock.
These tests use a real second SQLite connection, as another process would.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path

import httpx
import pytest
import trio

from bambupi.config import load_config
from bambupi.database import Database, DatabaseError, Sample
from bambupi.service import Service
from bambupi.sim.plug import SimulatedPlug
from bambupi.sim.simulator import Simulator
from tests.support import PLUGGED_PRINTER

WAIT = 30  # generous: a busy CPU only slows the waits

NOW = 1_800_000_000.0


def samples(start: float, count: int) -> list[Sample]:
    return [Sample("a", start + i, 120.0, True, None) for i in range(count)]


def test_reads_go_on_while_a_write_waits_for_a_lock_another_process_holds(tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite3"
    store = Database(path, busy_timeout_s=60.0)  # the waiting write outlasts the test's reads by far
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
    store = Database(path, busy_timeout_s=60.0, read_timeout_s=0.05)
    store.add_samples(samples(NOW, 3))
    store.close()
    # A process that takes the file for itself (exclusive locking mode) blocks even WAL readers.
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("PRAGMA locking_mode=EXCLUSIVE")
    other.execute("BEGIN EXCLUSIVE")
    other.execute("COMMIT")
    try:
        with pytest.raises(DatabaseError, match="locked"):
            store.samples("a", 0)  # would wait 60 s with the writer's timeout
        assert store.problem is not None and "read" in store.problem
    finally:
        other.close()
    assert len(store.samples("a", 0)) == 3 and store.problem is None
    store.close()




async def test_the_power_page_answers_while_another_process_holds_the_write_lock(tmp_path: Path) -> None:
    """The real service, its simulated printer and plug; a real second connection takes the write lock."""
    async with trio.open_nursery() as nursery:
        sim = Simulator("P1S", "01P00A000000271", "16180339", scenario="idle", time_scale=100)
        await nursery.start(sim.run)
        plug = await nursery.start(SimulatedPlug(sim.printer).run)
        path = tmp_path / "bambupi.toml"
        path.write_text(PLUGGED_PRINTER.format(serial="01P00A000000271", code="16180339", mqtt_port=sim.mqtt_port,
                                      plug_url=plug.url))
        config, _ = load_config(path)
        running = await nursery.start(Service(config, storage_folder=tmp_path).run)
        assert running.power is not None and running.power.store is not None
        store = running.power.store
        db = tmp_path / config.storage.path.name
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.port}", timeout=WAIT) as http:

            def stored() -> int:
                with contextlib.closing(sqlite3.connect(db)) as reader:
                    return int(reader.execute("SELECT COUNT(*) FROM power_samples").fetchone()[0])

            with trio.fail_after(WAIT):
                while await trio.to_thread.run_sync(stored) == 0:
                    await trio.sleep(0.05)
            other = sqlite3.connect(db, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")  # another process takes the write lock and keeps it
            try:
                with trio.fail_after(WAIT):  # the service's next batch waits for it (up to 10 s, then retries)
                    while not store._lock.locked():  # the state this test is about (private on purpose)
                        await trio.sleep(0.01)
                for _ in range(5):
                    answer = await http.get("/api/power")
                    assert answer.status_code == 200
                    garage = answer.json()["printers"]["garage"]
                    assert garage["reading"] is not None  # live, from memory
                    assert garage["today_kwh"] is not None and garage["series"]  # history, read beside the writer
                assert (await http.get("/power")).status_code == 200
                assert (await http.get("/api/jobs")).status_code == 200
                assert (await http.get("/healthz")).status_code in (200, 503)
            finally:
                other.execute("ROLLBACK")
                other.close()
            before = await trio.to_thread.run_sync(stored)
            with trio.fail_after(WAIT):  # the readings kept meanwhile are written once the lock is free
                while await trio.to_thread.run_sync(stored) <= before:
                    await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
