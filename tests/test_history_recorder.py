"""The job recorder (issue 17): one writer of the jobs' rows, their file, grams, trays and timeline.

Real parts: the StateHub fed real reports, SQLite through bambupi.database, the power service counting energy (a
Shelly over HTTP where energy matters). The job's file comes from a stand-in fetch here, so each rule can be driven
exactly (a file that arrives late, never, or with a reason); tests/test_history_recorder_sim.py fetches it from the
simulator over real FTPS.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import trio

from bambupi.config import HistoryConfig, PlugConfig, PowerConfig, PrinterConfig
from bambupi.database import Database
from bambupi.filament import spools
from bambupi.filament.inventory import Inventory
from bambupi.filament.spools import Location, NewSpool
from bambupi.history.recorder import JobRecorder, LoadedTray, active_trays, loaded_trays, map_trays
from bambupi.jobfile.fetch import FtpsTarget, JobFileLimits
from bambupi.jobfile.threemf import JobFile, JobFileError, PlannedFilament
from bambupi.power.service import PowerService
from bambupi.printer.state import apply_message, initial_state
from bambupi.printer.tls_pins import PinStore
from bambupi.state_hub import StateHub
from tests.capture_corpus import capture
from tests.plug_servers import FakePlugServer, ShellyGen1
from tests.support import printer_config, report, wait_for

WAIT = 30  # bounds a hang only
HOUR = 3600.0
RED, BLUE = "#FF0000", "#0000FF"
BENCHY = JobFile(
    path="/cache/benchy.3mf", plate=1, predicted_s=3600.0, weight_g=15.0,
    filaments=(PlannedFilament(1, "PLA", RED, 10.0, 3.3, "GFA00"), PlannedFilament(2, "PETG", BLUE, 5.0, 1.6, None)),
    thumbnail_png=b"\x89PNG\r\n\x1a\n" + b"\0" * 32,
)
AMS = {"ams": [{"id": "0", "humidity": "3", "temp": "25", "tray": [
    {"id": "0", "tray_type": "PLA", "tray_color": "FF0000FF"},
    {"id": "1", "tray_type": "PETG", "tray_color": "0000FFFF"},
    {"id": "2", "tray_type": "PLA", "tray_color": "FF0000FF"},  # the same red PLA twice: the active one wins
]}], "tray_now": "2"}


def printing(layer: int, total: int = 100, state: str = "RUNNING", name: str = "benchy", **fields: Any) -> bytes:
    return report(gcode_state=state, subtask_name=name, layer_num=layer, total_layer_num=total,
                  mc_percent=layer * 100 // total, **fields)


class StandInFetch:
    """What ``fetch_job_file`` answers, decided by the test: a JobFile, a JobFileError, or a wait for ``release``."""

    def __init__(self, answer: JobFile | Exception = BENCHY) -> None:
        self.answer = answer
        self.release: trio.Event | None = None
        self.calls: list[tuple[FtpsTarget, JobFileLimits]] = []
        self.cancelled = 0

    async def __call__(self, target: FtpsTarget, state: Mapping[str, Any], *, scratch: Path,
                       limits: JobFileLimits) -> JobFile:  # fmt: skip
        self.calls.append((target, limits))
        try:
            if self.release is not None:
                await self.release.wait()
        except trio.Cancelled:
            self.cancelled += 1
            raise
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class Rig:
    def __init__(self, tmp_path: Path, fetch: StandInFetch, settings: HistoryConfig | None = None,
                 config: PrinterConfig | None = None, db: Database | None = None) -> None:  # fmt: skip
        self.config = config or printer_config()
        self.hub = StateHub([self.config])
        self.db = db or Database(tmp_path / "jobs.sqlite3")
        self.power = PowerService(self.hub, [self.config], self.db, PowerConfig())
        self.fetch = fetch
        self.recorder = JobRecorder(
            self.hub, [self.config], self.db, settings or HistoryConfig(), energy=self.power,
            pins=PinStore(tmp_path / "pins.json"), scratch=tmp_path / "scratch", fetch=fetch, retry_s=0.2,
        )
        self.hub.set_connection("p", "online")
        self.hub.apply_message("p", report(gcode_state="IDLE", ams=AMS, hms=[]))  # the baseline

    def job_file(self) -> dict[str, Any]:
        info = self.hub.printer("p")["job_file"]
        assert info is not None
        return dict(info)

    async def job(self) -> dict[str, Any] | None:
        jobs = await trio.to_thread.run_sync(lambda: self.db.jobs(limit=5))
        return await trio.to_thread.run_sync(self.db.job, jobs[0]["id"]) if jobs else None

    async def ended(self) -> dict[str, Any]:
        async def done() -> dict[str, Any] | None:
            job = await self.job()
            return job if job is not None and job["result"] is not None else None

        await wait_for(done, WAIT, what="the job's end in the database")
        job = await self.job()
        assert job is not None
        return job


async def test_a_job_is_recorded_with_its_file_live_grams_trays_and_timeline(tmp_path: Path) -> None:
    rig = Rig(tmp_path, StandInFetch())
    async with trio.open_nursery() as nursery:
        await nursery.start(rig.recorder.run)
        rig.hub.apply_message("p", printing(0))
        await wait_for(lambda: rig.hub.printer("p")["job_file"] is not None and rig.job_file()["status"] == "ready")
        info = rig.job_file()
        assert info["planned_g"] == 15.0 and info["used_g"] == 0.0 and info["path"] == "/cache/benchy.3mf"
        assert info["thumbnail"] == f"/api/jobs/{info['job_id']}/thumbnail" and info["reason"] is None
        target, limits = rig.fetch.calls[0]
        assert (target.host, target.serial, target.port, target.printer_id) == ("127.0.0.1", "01P00A000000001",
                                                                               990, "p")
        assert limits.max_bytes == 200 * 1024 * 1024 and limits.deadline_s == 120.0

        rig.hub.apply_message("p", printing(25))  # the live grams follow the layers
        info = rig.job_file()
        assert info["used_g"] == 3.75 and [f["used_g"] for f in info["filaments"]] == [2.5, 1.25]
        rig.hub.apply_message("p", printing(30, state="PAUSE"))
        rig.hub.apply_message("p", printing(30, hms=[{"attr": 0x0C000300, "code": 0x00020001}]))
        rig.hub.apply_message("p", printing(60, hms=[]))
        rig.hub.apply_message("p", printing(100, state="FINISH"))
        job = await rig.ended()
        await wait_for(lambda: rig.job_file()["filaments"][0]["used_g"] == 10.0)
        nursery.cancel_scope.cancel()
    assert job["result"] == "finished" and job["name"] == "benchy" and job["duration_s"] > 0
    assert job["planned_g"] == 15.0 and job["used_g"] == 15.0 and job["file_path"] == "/cache/benchy.3mf"
    assert job["predicted_s"] == 3600.0 and job["file_problem"] is None and job["thumbnail"]
    by_index = {f["index"]: f for f in job["filaments"]}
    # Red PLA is in slots 1 and 3; the printer fed from slot 3 (tray_now 2) while printing: that one.
    assert (by_index[1]["ams"], by_index[1]["tray"], by_index[1]["used_g"]) == (0, 2, 10.0)
    assert (by_index[2]["ams"], by_index[2]["tray"], by_index[2]["used_g"]) == (0, 1, 5.0)
    kinds = [e["kind"] for e in job["events"]]
    assert kinds == ["job_started", "job_paused", "job_resumed", "hms_raised", "hms_cleared", "job_finished"]
    raised = job["events"][3]
    assert raised["code"] == "0C00_0300_0002_0001" and raised["text"]
    info = rig.job_file()  # the card's end result: final, whatever the printer reports next
    rig.hub.apply_message("p", report(gcode_state="IDLE", layer_num=0, mc_percent=0))
    assert rig.job_file()["used_g"] == info["used_g"] == 15.0


@pytest.mark.parametrize(("kind", "error"), [("failed", "0300_8003"), ("cancelled", "0300_400C")])
async def test_a_failed_or_cancelled_job_used_its_printed_share(tmp_path: Path, kind: str, error: str) -> None:
    rig = Rig(tmp_path, StandInFetch())
    async with trio.open_nursery() as nursery:
        await nursery.start(rig.recorder.run)
        rig.hub.apply_message("p", printing(0))
        await wait_for(lambda: rig.hub.printer("p")["job_file"] is not None and rig.job_file()["status"] == "ready")
        rig.hub.apply_message("p", printing(40))
        rig.hub.apply_message("p", printing(40, state="FAILED", print_error=int(error.replace("_", ""), 16)))
        job = await rig.ended()
        nursery.cancel_scope.cancel()
    assert job["result"] == kind
    assert job["used_g"] == 6.0 and sorted(f["used_g"] for f in job["filaments"]) == [2.0, 4.0]  # 40 % of 5 g, 10 g
    if kind == "failed":
        assert job["print_error"] == error and job["error_text"]
        assert job["events"][-1]["kind"] == "job_failed" and job["events"][-1]["code"] == error
    else:
        assert job["print_error"] is None and job["events"][-1]["kind"] == "job_cancelled"
    assert rig.job_file()["used_g"] == 6.0


@pytest.mark.parametrize("reason", [
    "FTPS refused the login",
    "file not found on the printer (is 'store sent files' on?)",
    "3MF too large (250 MB > 200 MB)",
    "not a 3MF: File is not a zip file",
])
async def test_a_file_problem_is_a_reason_on_the_card_and_in_the_row_and_the_job_is_still_recorded(
    tmp_path: Path, reason: str
) -> None:
    rig = Rig(tmp_path, StandInFetch(JobFileError(reason)))
    async with trio.open_nursery() as nursery:
        await nursery.start(rig.recorder.run)
        rig.hub.apply_message("p", printing(0))
        await wait_for(lambda: rig.hub.printer("p")["job_file"] is not None
                       and rig.job_file()["status"] == "unavailable")  # fmt: skip
        assert rig.job_file()["reason"] == f"grams unknown: {reason}"
        assert rig.job_file()["used_g"] is None and rig.job_file()["filaments"] == []
        rig.hub.apply_message("p", printing(100, state="FINISH"))
        job = await rig.ended()
        nursery.cancel_scope.cancel()
    assert job["result"] == "finished" and job["file_problem"] == reason and job["used_g"] is None


async def test_fetching_off_and_a_bug_in_the_fetch_each_say_why(tmp_path: Path, caplog: Any) -> None:
    rig = Rig(tmp_path, StandInFetch(), HistoryConfig(fetch_job_file=False))
    async with trio.open_nursery() as nursery:
        await nursery.start(rig.recorder.run)
        rig.hub.apply_message("p", printing(0))
        await wait_for(lambda: rig.hub.printer("p")["job_file"] is not None)
        assert rig.job_file()["reason"] == "grams unknown: fetching job files is off" and rig.fetch.calls == []
        rig.recorder.settings = HistoryConfig()
        rig.fetch.answer = ZeroDivisionError("a bug")
        rig.hub.apply_message("p", printing(5, name="second"))  # a new job
        await wait_for(lambda: "error in bambupi" in (rig.job_file()["reason"] or ""))
        rig.hub.apply_message("p", printing(100, state="FINISH", name="second"))
        job = await rig.ended()
        nursery.cancel_scope.cancel()
    assert job["name"] == "second" and job["result"] == "finished"
    assert "reading the job's file failed" in caplog.text and "ZeroDivisionError" in caplog.text
    first = (await trio.to_thread.run_sync(lambda: rig.db.jobs(limit=5)))[1]
    assert first["result"] == "unknown" and first["file_problem"] == "fetching job files is off"


async def test_a_job_that_ends_before_its_file_arrives_gets_its_end_and_later_its_grams(tmp_path: Path) -> None:
    fetch = StandInFetch()
    fetch.release = trio.Event()
    rig = Rig(tmp_path, fetch)
    async with trio.open_nursery() as nursery:
        await nursery.start(rig.recorder.run)
        rig.hub.apply_message("p", printing(0))
        await wait_for(lambda: rig.hub.printer("p")["job_file"] is not None)
        assert rig.job_file()["status"] == "fetching"
        rig.hub.apply_message("p", printing(100, state="FINISH"))
        job = await rig.ended()
        assert job["result"] == "finished" and job["used_g"] is None
        fetch.release.set()

        async def grams_stored() -> bool:
            job = await rig.job()
            return job is not None and job["used_g"] == 15.0

        await wait_for(grams_stored)
        assert rig.job_file()["used_g"] == 15.0 and rig.job_file()["status"] == "ready"
        nursery.cancel_scope.cancel()


async def test_a_new_job_cancels_the_older_fetch(tmp_path: Path) -> None:
    fetch = StandInFetch()
    fetch.release = trio.Event()
    rig = Rig(tmp_path, fetch)
    async with trio.open_nursery() as nursery:
        await nursery.start(rig.recorder.run)
        rig.hub.apply_message("p", printing(3, name="first"))
        await wait_for(lambda: len(fetch.calls) == 1)
        rig.hub.apply_message("p", printing(1, name="second"))  # the next job while still printing
        await wait_for(lambda: fetch.cancelled == 1 and len(fetch.calls) == 2)

        async def first_closed() -> dict[str, Any] | None:
            jobs = await trio.to_thread.run_sync(lambda: rig.db.jobs(limit=5))
            return jobs[1] if len(jobs) == 2 and jobs[1]["file_problem"] else None

        await wait_for(first_closed)
        first = await first_closed()
        assert first is not None and first["name"] == "first" and first["result"] == "unknown"
        assert first["file_problem"] == "the next job started before this one's file was fetched"
        fetch.release.set()
        await wait_for(lambda: rig.job_file()["status"] == "ready")
        assert rig.job_file()["job_id"] != first["id"]
        nursery.cancel_scope.cancel()


async def test_a_database_failure_mid_job_never_stops_the_recorder_and_nothing_is_lost(
    tmp_path: Path, caplog: Any
) -> None:
    """Another process holds the database's write lock from the job's start until after its end: every write fails
    (DatabaseError), the card keeps working, and once the lock is gone the retry writes the row, timeline, file and
    grams."""
    caplog.set_level(logging.INFO, logger="bambupi.history")
    db = Database(tmp_path / "jobs.sqlite3", busy_timeout_s=0.05)
    rig = Rig(tmp_path, StandInFetch(), db=db)
    holder = sqlite3.connect(tmp_path / "jobs.sqlite3", isolation_level=None)
    async with trio.open_nursery() as nursery:
        await nursery.start(rig.recorder.run)
        holder.execute("BEGIN EXCLUSIVE")
        rig.hub.apply_message("p", printing(0))
        await wait_for(lambda: rig.hub.printer("p")["job_file"] is not None and rig.job_file()["status"] == "ready")
        rig.hub.apply_message("p", printing(50, state="PAUSE"))
        rig.hub.apply_message("p", printing(50))
        rig.hub.apply_message("p", printing(100, state="FINISH"))
        rig.hub.apply_message("p", report(gcode_state="IDLE", layer_num=0, mc_percent=0))
        await wait_for(lambda: rig.job_file()["used_g"] == 15.0)  # the card has the recorder's end result...
        failed = rig.recorder.failed_writes
        await wait_for(lambda: rig.recorder.failed_writes > failed)  # ...and writing the end failed after it
        assert rig.job_file()["job_id"] is None and await rig.job() is None
        assert "job history: cannot write" in caplog.text
        holder.execute("ROLLBACK")  # only the retry writes from here: nothing else happens

        async def complete() -> dict[str, Any] | None:
            job = await rig.job()
            return job if job is not None and job["used_g"] is not None else None

        await wait_for(complete)
        stored = await rig.job()
        await wait_for(lambda: rig.job_file()["job_id"] is not None)
        nursery.cancel_scope.cancel()
    holder.close()
    job = stored
    assert job is not None and job["result"] == "finished" and job["used_g"] == 15.0 and job["planned_g"] == 15.0
    assert [e["kind"] for e in job["events"]] == ["job_started", "job_paused", "job_resumed", "job_finished"]
    assert caplog.text.count("job history: cannot write") == 1  # once, not at every retry
    assert "job history: writing again" in caplog.text


async def test_a_job_open_at_a_restart_is_closed_unknown_by_the_next_one(tmp_path: Path) -> None:
    db = Database(tmp_path / "jobs.sqlite3")
    row = db.start_job("p", "before the restart", "P1S", time.time() - 600)
    rig = Rig(tmp_path, StandInFetch(), db=db)
    async with trio.open_nursery() as nursery:
        await nursery.start(rig.recorder.run)
        rig.hub.apply_message("p", printing(2, name="after"))
        await wait_for(lambda: rig.hub.printer("p")["job_file"] is not None and rig.job_file()["status"] == "ready")

        async def closed() -> bool:
            job = await trio.to_thread.run_sync(db.job, row)
            return job is not None and job["result"] == "unknown"

        await wait_for(closed)
        nursery.cancel_scope.cancel()
    assert db.open_jobs() == {"p": rig.job_file()["job_id"]}


def test_each_planned_filament_maps_to_the_tray_it_came_from() -> None:
    red_pla = PlannedFilament(1, "PLA", RED, 10.0, None, None)
    blue_petg = PlannedFilament(2, "PETG", BLUE, 5.0, None, None)
    trays = [LoadedTray((("ams", 0), ("tray", 0)), "PLA", RED), LoadedTray((("ams", 0), ("tray", 3)), "PLA", RED),
             LoadedTray((("ams", 1), ("tray", 0)), "PETG", BLUE), LoadedTray((("external", True),), "TPU", "")]
    # Two red PLA: the one the printer fed from wins; one blue PETG: that one.
    assert map_trays([red_pla, blue_petg], trays, [{"ams": 0, "tray": 3}]) == {
        1: {"ams": 0, "tray": 3}, 2: {"ams": 1, "tray": 0}}
    assert map_trays([red_pla], trays, []) == {1: None}  # two candidates, none seen active: not a guess
    green_pla = PlannedFilament(1, "PLA", "#00FF00", 10.0, None, None)
    # No tray matches, one filament, one active tray: the printer printed from it.
    assert map_trays([green_pla], trays, [{"external": True}]) == {1: {"external": True}}
    assert map_trays([green_pla, blue_petg], trays, [{"external": True}])[1] is None
    # A P1S's tray_now 254 names no holder id; its one holder is the one fed from.
    white_pla = PlannedFilament(1, "PLA", "#FFFFFF", 10.0, None, None)
    both = [LoadedTray((("ams", 0), ("tray", 0)), "PLA", "#FFFFFF"),
            LoadedTray((("external", True), ("id", 254)), "PLA", "#FFFFFF")]
    assert map_trays([white_pla], both, [{"external": True, "id": None}]) == {1: {"external": True, "id": 254}}


async def test_a_real_h2d_s_two_external_holders_each_charge_their_own_spool(tmp_path: Path) -> None:
    """The real H2D report with a PLA on the left holder (254) and a TPU on the right one (255), feeding from the
    right: a job's TPU grams come off the TPU spool, its PLA grams off the PLA spool, never the other way round."""
    item = capture("h2d-ext-spool-active")
    state = apply_message(initial_state(), item.messages[0], model=item.model).state
    store = Database(tmp_path / "bambupi.sqlite3")
    now = 1_700_000_000.0
    pla = spools.add(store, NewSpool("PLA", "#76D9F4", "", 1000.0, 500.0), now=now, low_g=100.0)
    tpu = spools.add(store, NewSpool("TPU", "#9B9EA0", "", 1000.0, 500.0), now=now, low_g=100.0)
    spools.place(store, pla["id"], Location("external", "h2d", None, 254), now=now)
    spools.place(store, tpu["id"], Location("external", "h2d", None, 255), now=now)
    job = [PlannedFilament(1, "TPU", "#9B9EA0", 30.0, None, None),
           PlannedFilament(2, "PLA", "#76D9F4", 5.0, None, None)]
    mapped = map_trays(job, loaded_trays(state), active_trays(state))
    inventory = Inventory(StateHub([]), store, low_g=lambda: 100.0, clock=lambda: now)
    assert await inventory.spool_at("h2d", mapped[1] or {}) == tpu["id"]
    await inventory.job_ended(7, "h2d", {i: (f.grams, mapped[f.index]) for i, f in enumerate(job, 1)})
    left = {row["id"]: row["remaining_g"] for row in spools.all_spools(store)}
    assert left == {tpu["id"]: 470.0, pla["id"]: 495.0}


@pytest.mark.parametrize("step_s", [-HOUR, HOUR])
async def test_a_wall_clock_step_during_a_print_changes_neither_its_energy_nor_its_duration(
    tmp_path: Path, step_s: float
) -> None:
    """Moved from test_faults_time (issue 14, item 11) with the job rows: a real Shelly over HTTP drawing 123.4 W,
    SQLite, the real clock; only the wall clock is stepped during the print."""
    shelly = ShellyGen1(watts=123.4)
    offset = [0.0]

    def wall() -> float:
        return time.time() + offset[0]

    store = Database(tmp_path / "p.sqlite3")
    async with trio.open_nursery() as nursery:
        server = await nursery.start(FakePlugServer(shelly).run)
        config = printer_config(plug=PlugConfig(kind="shelly1", address=server.url))
        hub = StateHub([config])
        hub.set_connection("p", "online")
        hub.apply_message("p", report(gcode_state="IDLE", subtask_name="cube"))
        power = await nursery.start(
            PowerService(hub, [config], store, PowerConfig(sample_interval_s=0.05, flush_interval_s=0.1),
                         clock=wall).run
        )
        await nursery.start(JobRecorder(
            hub, [config], store, HistoryConfig(fetch_job_file=False), energy=power,
            pins=PinStore(tmp_path / "pins.json"), scratch=tmp_path, fetch=StandInFetch(), clock=wall,
        ).run)

        async def readings_later(count: int) -> None:
            start = len(server.requests)
            await wait_for(lambda: len(server.requests) >= start + count, WAIT)

        began = trio.current_time()
        hub.apply_message("p", report(gcode_state="RUNNING", subtask_name="cube"))
        await wait_for(lambda: power.status("p")["job"] is not None, WAIT)
        await readings_later(4)
        offset[0] = step_s  # NTP steps the clock in the middle of the print
        await readings_later(4)
        hub.apply_message("p", report(gcode_state="FINISH", subtask_name="cube"))

        async def job_stored() -> bool:
            jobs = await trio.to_thread.run_sync(store.jobs)
            return bool(jobs) and jobs[0]["ended_at"] is not None

        await wait_for(job_stored, WAIT)
        elapsed = trio.current_time() - began
        nursery.cancel_scope.cancel()
    job = store.jobs()[0]
    store.close()
    assert 0 < job["duration_s"] <= elapsed  # the monotonic length, not an hour more or less
    assert 0 < job["energy_kwh"] <= 123.4 * elapsed / 3_600_000  # before, -1 h gave -0.123 kWh
    assert job["result"] == "finished"
