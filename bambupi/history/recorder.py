"""The job recorder: the one writer of the jobs' rows (start, end, file, grams used, timeline), from the hub's events.

When a job starts its row is written and its 3MF is fetched from the printer in the background (bambupi.jobfile,
bounded by ``[history] fetch_timeout_s`` and ``max_file_mb``); the card shows "fetching", then the planned grams
(the hub adds the used grams live, bambupi.printer.grams), or why the grams are unknown. Each planned filament is
matched to the tray it came from. When the job ends the power service closes its energy count, and the row gets its
end, the grams used (all planned on finish, the printed share on a failure or cancel) and, for a failed job, the
error's code and text; the spools inventory subtracts the grams. Its timeline (paused, resumed, HMS raised and
cleared) is stored as it happens.

A file that cannot be fetched, a database that cannot be written or a bug in here never ends the service: the job
row is written even when the file fails, a failed write is logged once and shown in ``/healthz`` (the database's
problem), and an event that raised is logged and the next one handled. A job that ends before its file arrived
still gets its row and end; the file, when it comes, adds the grams. A new job on the printer cancels the older
fetch. A job running when bambupi stopped is closed as "unknown" when the next one starts (or with its result when
its end is seen).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, ParamSpec, Protocol, TypeVar

import trio

from bambupi.config import HistoryConfig, PrinterConfig
from bambupi.database import Database, DatabaseError, JobEnd, JobFilamentUse
from bambupi.jobfile.fetch import FtpsTarget, JobFileLimits
from bambupi.jobfile.threemf import JobFile, JobFileError, PlannedFilament
from bambupi.printer.grams import progress_fraction, used_grams
from bambupi.printer.phase import IN_JOB, job_phase
from bambupi.printer.tls_pins import PinStore

log = logging.getLogger("bambupi.history")

END_RESULTS: Final = {"job_finished": "finished", "job_failed": "failed", "job_cancelled": "cancelled"}
TIMELINE: Final = frozenset({"job_started", "job_paused", "job_resumed", *END_RESULTS, "hms_raised", "hms_cleared"})
RETRY_S: Final = 60.0  # a write that failed (a full disk, a lock) is tried again this often
UNSAVED_MAX: Final = 100  # jobs kept in memory while the database cannot take them
PENDING_EVENTS_MAX: Final = 200  # a job's timeline kept in memory while the database cannot take it
# The fetch has its own total deadline; this margin only bounds a fetch that overran it (a bug), never a slow one.
FETCH_GUARD_S: Final = 30.0
# A pause, resume or stop the box sent names who asked on the timeline entry it brings, when that entry comes within
# this long (a printer mid-move takes a while to pause); a later one is the printer's own (its screen, an error).
ASKED_WITHIN_S: Final = 120.0
ASKED_EVENT: Final = {"pause": "job_paused", "resume": "job_resumed", "stop": "job_cancelled"}
UNKNOWN_PREFIX: Final = "grams unknown: "

TrayRef = dict[str, Any]  # {"ams": unit, "tray": slot} | {"external": True, "id": holder (254, 255) or None}
# What a job used, per filament index: grams and the tray it came from (None when not known).
Usage = Mapping[int, tuple[float, TrayRef | None]]
JobEnergyUse = tuple[float | None, float | None, str, float | None]  # kWh, cost, currency, peak watts


class JobEnergy(Protocol):
    """The power service's energy count per job (bambupi.power.service)."""

    def open_job(self, printer_id: str, *, resumed: bool = False) -> None: ...

    async def close_job(self, printer_id: str) -> JobEnergyUse: ...


class Inventory(Protocol):
    """The spools (bambupi.filament): which spool a tray holds, and the grams a job took from each."""

    async def spool_at(self, printer_id: str, tray: TrayRef) -> int | None: ...

    async def job_ended(self, job_id: int, printer_id: str, usage: Usage) -> None: ...


class Events(Protocol):
    async def get(self) -> Mapping[str, Any]: ...


class Updates(Protocol):
    async def wait(self) -> None: ...


class RecorderHub(Protocol):
    """What the recorder uses of the StateHub (bambupi.state_hub; named here so history does not import the hub,
    which imports history's grams)."""

    def has(self, printer_id: str) -> bool: ...

    def snapshot(self) -> Mapping[str, Mapping[str, Any]]: ...

    def printer(self, printer_id: str) -> Mapping[str, Any]: ...

    def set_job_file(self, printer_id: str, info: Mapping[str, Any] | None) -> None: ...

    def events(self, name: str) -> AbstractAsyncContextManager[Events]: ...

    def subscribe(self) -> AbstractAsyncContextManager[Updates]: ...


class FetchJobFile(Protocol):
    async def __call__(
        self, target: FtpsTarget, state: Mapping[str, Any], *, scratch: Path, limits: JobFileLimits
    ) -> JobFile: ...


@dataclass(frozen=True)
class LoadedTray:
    """A tray with filament in it as the printer reported it (an AMS slot or an external holder)."""

    ref: tuple[tuple[str, Any], ...]  # TrayRef's items, hashable
    material: str
    colour: str  # "#RRGGBB" or ""

    @property
    def tray(self) -> TrayRef:
        return dict(self.ref)


def loaded_trays(state: Mapping[str, Any]) -> list[LoadedTray]:
    """Every AMS tray and external holder that names its filament's type, AMS units first."""
    found: list[LoadedTray] = []
    units = (state.get("ams") or {}).get("units") or {}
    for unit_id, unit in sorted(units.items(), key=lambda item: _int_key(item[0])):
        for tray_id, tray in sorted(((unit or {}).get("trays") or {}).items(), key=lambda item: _int_key(item[0])):
            if isinstance(tray, dict) and tray.get("type"):
                ref = (("ams", _int_key(unit_id)), ("tray", _int_key(tray_id)))
                found.append(LoadedTray(ref, str(tray["type"]), str(tray.get("color") or "")))
    # The holder's id is kept: an H2D's two holders hold two spools, each to be charged its own grams.
    for holder_id, holder in (state.get("external_spools") or {}).items():
        if isinstance(holder, dict) and holder.get("type"):
            held = (("external", True), ("id", _holder_id(holder_id)))
            found.append(LoadedTray(held, str(holder["type"]), str(holder.get("color") or "")))
    return found


def active_trays(state: Mapping[str, Any]) -> list[TrayRef]:
    """The trays the printer says it feeds from now: ``active_tray`` and each extruder's loaded tray (``snow`` on
    dual-nozzle printers)."""
    found: list[TrayRef] = []
    for tray in [state.get("active_tray"), *((n or {}).get("tray") for n in (state.get("nozzles") or {}).values())]:
        if isinstance(tray, dict):
            ref = ({"external": True, "id": _holder_id(tray.get("id"))} if tray.get("external")
                   else {"ams": tray.get("ams"), "tray": tray.get("tray")})
            if ref not in found:
                found.append(ref)
    return found


def map_trays(
    filaments: Sequence[PlannedFilament], trays: Sequence[LoadedTray], active: Sequence[TrayRef]
) -> dict[int, TrayRef | None]:
    """The tray each planned filament came from: a loaded tray of the same material and colour, one the printer
    reported active while printing first; a single match otherwise; a one-filament job's only active tray when no
    tray matches (the printer printed from it, whatever its tag says); else unknown (None)."""
    mapped: dict[int, TrayRef | None] = {}
    for filament in filaments:
        matches = [t for t in trays if _same_filament(filament, t)]
        chosen = next((t.tray for t in matches if any(_same_tray(t.tray, a) for a in active)), None)
        if chosen is None and len(matches) == 1:
            chosen = matches[0].tray
        if chosen is None and not matches and len(filaments) == 1 and len(active) == 1:
            chosen = dict(active[0])
        mapped[filament.index] = chosen
    return mapped


def _same_tray(loaded: TrayRef, active: TrayRef) -> bool:
    """An external holder reported active without its id (``tray_now`` 254 on a one-holder printer) is any."""
    if loaded.get("external") and active.get("external") and active.get("id") is None:
        return True
    return loaded == active


def _same_filament(filament: PlannedFilament, tray: LoadedTray) -> bool:
    if filament.material.strip().upper() != tray.material.strip().upper():
        return False
    return not filament.colour or not tray.colour or filament.colour.upper() == tray.colour.upper()


def _holder_id(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _int_key(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 1_000_000


@dataclass(eq=False)  # one object per job: kept in sets by identity
class _Job:
    """A job the recorder follows: open until its end is seen, kept until all of it is written."""

    printer_id: str
    name: str | None
    started_at: float  # wall clock: the label stored
    started_mono: float | None  # monotonic: its duration; None for a job resumed after a restart
    row: int | None = None  # None: its start could not be written yet (it is tried again at each write)
    trays: list[LoadedTray] = field(default_factory=list)  # loaded when it started
    active: list[TrayRef] = field(default_factory=list)  # reported active while it printed, in order seen
    fraction: float | None = None  # the most of it printed, 0..1
    status: str = "fetching"  # fetching | ready | unavailable (the file)
    problem: str | None = None  # why its grams are unknown
    file: JobFile | None = None
    spools: dict[int, int | None] = field(default_factory=dict)
    fetch: trio.CancelScope | None = None
    end: JobEnd | None = None
    used: dict[int, float | None] | None = None  # fixed at its end, per filament index
    # What is written (a write that failed is tried again: at the job's next write and every retry_s).
    pending: list[tuple[float, str, str | None, str | None]] = field(default_factory=list)  # unwritten timeline
    file_saved: bool = False
    problem_saved: str | None = None
    end_saved: bool = False
    usage_saved: bool = False
    consumed: bool = False  # the spools took its grams
    saving: trio.Lock = field(default_factory=trio.Lock)  # the event loop, its fetch and the retry all write it


P = ParamSpec("P")
T = TypeVar("T")


class JobRecorder:
    """Start with ``await nursery.start(recorder.run)``. ``db`` None records nothing but still fetches the file
    for the card."""

    def __init__(
        self,
        hub: RecorderHub,
        printers: Sequence[PrinterConfig],
        db: Database | None,
        settings: HistoryConfig,
        *,
        energy: JobEnergy,
        pins: PinStore,
        scratch: Path,
        fetch: FetchJobFile,
        inventory: Inventory | None = None,
        retry_s: float = RETRY_S,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = trio.current_time,
    ) -> None:
        self.hub = hub
        self.db = db
        self.settings = settings
        self._printers = {p.id: p for p in printers}
        self._energy = energy
        self._pins = pins
        self._scratch = scratch
        self._fetch_file = fetch
        self._inventory = inventory
        self._retry_s = retry_s
        self._clock = clock  # wall: labels only
        self._monotonic = monotonic  # durations
        self._open: dict[str, _Job] = {}  # the job running on each printer
        self._shown: dict[str, _Job] = {}  # the job each printer's card shows (the running one or the last)
        self._unsaved: list[_Job] = []  # jobs with a write that failed, oldest first
        self._asked: dict[str, tuple[str, str, float]] = {}  # printer -> (event it should bring, who, when)
        self._nursery: trio.Nursery | None = None
        self.db_error: str | None = None
        self.failed_writes = 0  # database calls that failed since the start (each is tried again)

    # -- settings ------------------------------------------------------------------------------------------------

    def update_printers(self, printers: Sequence[PrinterConfig]) -> None:
        """The printers' settings changed (the settings page): the next fetch uses the new address and code."""
        self._printers = {p.id: p for p in printers}

    def note_command(self, printer_id: str, command: str, origin: str, ok: bool | None) -> None:
        """The box's controls sent ``command`` for ``origin`` (``ok`` None), or the printer answered it: the
        timeline entry it brings says who asked. A refused or unanswered command brings none."""
        kind = ASKED_EVENT.get(command)
        if kind is None:
            return
        if ok is None:
            self._asked[printer_id] = (kind, origin, self._monotonic())
        elif not ok and self._asked.get(printer_id, ("", "", 0.0))[:2] == (kind, origin):
            del self._asked[printer_id]

    def _asked_by(self, printer_id: str, kind: str) -> str | None:
        asked = self._asked.get(printer_id)
        if asked is None or asked[0] != kind:
            return None
        del self._asked[printer_id]
        return asked[1] if self._monotonic() - asked[2] <= ASKED_WITHIN_S else None

    # -- the service ---------------------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[JobRecorder] = trio.TASK_STATUS_IGNORED) -> None:
        async with self.hub.events("history") as queue:
            # Read with the queue open and no checkpoint between: a job under way is either here (its start, or the
            # box's first report of it, came before this part listened) or its event is in the queue, never both.
            under_way = self._under_way()
            async with trio.open_nursery() as nursery:
                await self._follow(nursery, queue, under_way, task_status)

    def _under_way(self) -> dict[str, Mapping[str, Any]]:
        return {
            printer_id: {"kind": "job_joined", "printer": printer_id, "job": printer["state"].get("subtask_name")}
            for printer_id, printer in self.hub.snapshot().items()
            if printer.get("last_report_at") is not None and job_phase(printer["state"]) in IN_JOB
        }

    async def _follow(
        self, nursery: trio.Nursery, queue: Events, under_way: Mapping[str, Mapping[str, Any]],
        task_status: trio.TaskStatus[JobRecorder],
    ) -> None:
        self._nursery = nursery
        try:
            await self._resume_open_jobs()
            for printer_id, event in under_way.items():
                await self._join(printer_id, event, self._clock())
            nursery.start_soon(self._follow_state)
            nursery.start_soon(self._events, queue)
            nursery.start_soon(self._retry)
            task_status.started(self)
            await trio.sleep_forever()
        finally:
            self._nursery = None

    async def _resume_open_jobs(self) -> None:
        # A job running when bambupi stopped: the hub's first report is a baseline and brings no start event, so it
        # stays open here until its end or the next start; its energy counts from now, its length is unknown.
        if self.db is None:
            return
        open_jobs = await self._db(self.db.open_jobs)
        for printer_id, row in (open_jobs or {}).items():
            if printer_id in self._open:
                continue  # still open from before a restart of this part
            self._open[printer_id] = _Job(printer_id, None, self._clock(), None, row=row, status="unavailable")
            self._energy.open_job(printer_id, resumed=True)

    async def _events(self, queue: Events) -> None:
        while True:
            event = await queue.get()
            try:
                await self._handle(event)
            except Exception:  # a bug here must cost one event, not the history of every job after it
                log.exception("the job recorder could not handle %s", event.get("kind"))

    async def _handle(self, event: Mapping[str, Any]) -> None:
        kind, printer_id = event.get("kind"), event.get("printer")
        if not isinstance(printer_id, str) or not isinstance(kind, str):
            return
        at = _at(event, self._clock())
        if kind == "job_started":
            if printer_id in self._open:
                await self._end(printer_id, "unknown", event)
            await self._start(printer_id, event, at)
            return
        if kind == "job_joined":
            await self._join(printer_id, event, at)
            return
        job = self._open.get(printer_id)
        if job is None:
            return
        if kind in END_RESULTS:
            await self._end(printer_id, END_RESULTS[kind], event)
        elif kind in TIMELINE:
            hms = event.get("hms")
            text = hms.get("description") if isinstance(hms, dict) else None
            by = self._asked_by(printer_id, kind)
            if by is not None:
                text = f"by {by}"
            _remember(job, (at, kind, _text(event.get("code")), _text(text)))
            await self._save(job)

    async def _follow_state(self) -> None:
        """Each running job's progress and the trays the printer feeds from while it prints."""
        async with self.hub.subscribe() as updates:
            while True:
                await updates.wait()
                for printer_id, job in self._open.items():
                    if self.hub.has(printer_id):
                        self._note(job, self.hub.printer(printer_id))

    def _note(self, job: _Job, printer: Mapping[str, Any]) -> None:
        state = printer.get("state") or {}
        phase = job_phase(state)
        if phase in IN_JOB or state.get("gcode_state") in ("FAILED", "FINISH"):
            fraction = progress_fraction(state)
            if fraction is not None and (job.fraction is None or fraction > job.fraction):
                job.fraction = fraction
        if phase == "printing":
            for tray in active_trays(state):
                if tray not in job.active:
                    job.active.append(tray)

    async def _retry(self) -> None:
        while True:
            await trio.sleep(self._retry_s)
            for job in list(self._unsaved):
                await self._save(job)

    # -- a job starts ---------------------------------------------------------------------------------------------

    async def _join(self, printer_id: str, event: Mapping[str, Any], at: float) -> None:
        """A job already under way when the box first heard from the printer: the one left open before a restart
        when it has that job's name (or none is known), else a new one, started now as far as the box can tell
        (its length is unknown); either way its file is fetched for the card."""
        name = event.get("job") if isinstance(event.get("job"), str) else None
        job = self._open.get(printer_id)
        if job is not None and job.started_mono is None and job.status == "unavailable" and job.file is None:
            stored = job.name if job.name is not None else await self._stored_name(job)
            if stored is None or name is None or stored == name:
                job.name = stored or name
                await self._begin(job, "job_joined", f"{printer_id}: job %r is still under way", resumed=True)
                return
            await self._end(printer_id, "unknown", event)
        elif job is not None:
            return  # already followed
        await self._begin(_Job(printer_id, name, at, None), "job_joined",
                          f"{printer_id}: job %r was already under way", resumed=True)

    async def _stored_name(self, job: _Job) -> str | None:
        if self.db is None or job.row is None:
            return None
        row = await self._db(self.db.job, job.row)
        return row.get("name") if row is not None else None

    async def _start(self, printer_id: str, event: Mapping[str, Any], at: float) -> None:
        name = event.get("job") if isinstance(event.get("job"), str) else None
        await self._begin(_Job(printer_id, name, at, self._monotonic()), "job_started", f"{printer_id}: job %r started")

    async def _begin(self, job: _Job, kind: str, message: str, *, resumed: bool = False) -> None:
        printer_id = job.printer_id
        config = self._printers.get(printer_id)
        printer = self.hub.printer(printer_id) if self.hub.has(printer_id) else {}
        state = printer.get("state") or {}
        job.trays = loaded_trays(state)
        job.status, job.problem = "fetching", None
        self._note(job, printer)
        older = self._shown.get(printer_id)
        if older is not None and older is not job and older.fetch is not None:
            older.fetch.cancel()  # a new job: the older one's file is no longer worth the printer's time
        if self._open.get(printer_id) is not job:  # a job resumed from before a restart counts its energy already
            self._energy.open_job(printer_id, resumed=resumed)
        self._open[printer_id] = self._shown[printer_id] = job
        _remember(job, (self._clock() if resumed else job.started_at, kind, None, None))
        log.info(message, job.name)
        if not self.settings.fetch_job_file:
            await self._file_failed(job, "fetching job files is off")
        elif config is None:
            await self._file_failed(job, "the printer is not configured")
        else:
            self._publish(job)
            await self._save(job)  # its row, before the file takes its time
            assert self._nursery is not None
            await self._nursery.start(self._fetch, job, self._target(config), state)

    def _target(self, config: PrinterConfig) -> FtpsTarget:
        return FtpsTarget(
            host=config.host, access_code=config.access_code, serial=config.serial, pins=self._pins,
            model=config.model, printer_id=config.id, configured_pin=config.tls_fingerprint, port=config.ftps_port,
        )

    async def _fetch(
        self, job: _Job, target: FtpsTarget, state: Mapping[str, Any], *, task_status: trio.TaskStatus[None]
    ) -> None:
        limits = JobFileLimits(
            max_bytes=int(self.settings.max_file_mb * 1024 * 1024), deadline_s=self.settings.fetch_timeout_s
        )
        with trio.CancelScope() as scope:
            job.fetch = scope
            task_status.started()
            try:
                with trio.fail_after(self.settings.fetch_timeout_s + FETCH_GUARD_S):
                    found = await self._fetch_file(target, state, scratch=self._scratch, limits=limits)
            except JobFileError as exc:
                await self._file_failed(job, str(exc))
                return
            except trio.TooSlowError:
                await self._file_failed(job, f"the printer did not send the file within {limits.deadline_s:g} s")
                return
            except Exception:
                log.exception("%s: reading the job's file failed", job.printer_id)
                await self._file_failed(job, "the job's file could not be read (an error in bambupi: see its log)")
                return
            finally:
                job.fetch = None
            await self._file_ready(job, found)
        if scope.cancelled_caught and job.status == "fetching":
            await self._file_failed(job, "the next job started before this one's file was fetched")

    async def _file_failed(self, job: _Job, reason: str) -> None:
        job.status, job.problem = "unavailable", reason
        log.info("%s: %s%s", job.printer_id, UNKNOWN_PREFIX, reason)
        self._publish(job)
        await self._save(job)

    async def _file_ready(self, job: _Job, found: JobFile) -> None:
        job.file, job.status, job.problem = found, "ready", None
        if self._inventory is not None:
            for index, tray in self._trays(job).items():
                job.spools[index] = await self._spool_at(job.printer_id, tray)
        log.info("%s: the job's file %s plans %s g", job.printer_id, found.path, _planned_g(found))
        if job.end is not None:
            self._fix_usage(job)  # it ended while its file was on its way
        self._publish(job)
        await self._save(job)

    async def _spool_at(self, printer_id: str, tray: TrayRef | None) -> int | None:
        if self._inventory is None or tray is None:
            return None
        try:
            return await self._inventory.spool_at(printer_id, tray)
        except Exception:  # the inventory's failure costs the spool's id, not the job's record
            log.exception("%s: the spools inventory could not say which spool is in %s", printer_id, tray)
            return None

    def _trays(self, job: _Job) -> dict[int, TrayRef | None]:
        return map_trays(job.file.filaments, job.trays, job.active) if job.file is not None else {}

    # -- a job ends -----------------------------------------------------------------------------------------------

    async def _end(self, printer_id: str, result: str, event: Mapping[str, Any]) -> None:
        job = self._open.pop(printer_id)
        now, mono = self._clock(), self._monotonic()
        if self.hub.has(printer_id) and result != "unknown":  # "unknown": the printer is on its next job
            self._note(job, self.hub.printer(printer_id))
        kwh, cost, _currency, peak = await self._energy.close_job(printer_id)
        failed = result == "failed"
        job.end = JobEnd(
            ended_at=now, result=result, energy_kwh=kwh, cost=cost, peak_watts=peak,
            duration_s=mono - job.started_mono if job.started_mono is not None else None,
            print_error=_text(event.get("print_error")) if failed else None,
            error_text=_text(event.get("description")) if failed else None,
        )
        if result != "unknown":
            by = self._asked_by(printer_id, f"job_{result}")
            text = _text(event.get("description"))
            if by is not None:
                text = f"by {by}" + (f"; {text}" if text else "")
            _remember(job, (_at(event, now), f"job_{result}", _text(event.get("print_error")), text))
        duration = job.end.duration_s
        after = "" if duration is None else f" after {duration / 60:.0f} min"
        log.info("%s: job %s%s (%s)", printer_id, result, after, "no plug" if kwh is None else f"{kwh:.3f} kWh")
        if job.file is not None:
            self._fix_usage(job)
            self._publish(job)
        await self._save(job)

    def _fix_usage(self, job: _Job) -> None:
        """The grams the ended job used: all planned on finish, the printed share on a failure or cancel; none known
        for a job whose end was not seen."""
        assert job.file is not None and job.end is not None
        if job.end.result == "unknown":
            return
        fraction = 1.0 if job.end.result == "finished" else job.fraction
        job.used = {f.index: used_grams(f.grams, fraction) for f in job.file.filaments}

    # -- the card --------------------------------------------------------------------------------------------------

    def _publish(self, job: _Job) -> None:
        """The card's ``job_file`` (docs/api.md), for the job the card shows."""
        if self._shown.get(job.printer_id) is not job or not self.hub.has(job.printer_id):
            return
        found = job.file
        trays = self._trays(job)
        filaments = [
            {
                "index": f.index, "material": f.material, "colour": f.colour, "planned_g": f.grams,
                "used_g": job.used.get(f.index) if job.used is not None else None,
                "tray": trays.get(f.index), "spool_id": job.spools.get(f.index),
            }
            for f in (found.filaments if found is not None else ())
        ]
        thumbnail = found is not None and found.thumbnail_png is not None and job.row is not None
        self.hub.set_job_file(job.printer_id, {
            "job_id": job.row,
            "status": job.status,
            "reason": UNKNOWN_PREFIX + job.problem if job.problem is not None else None,
            "path": found.path if found else None,
            "plate": found.plate if found else None,
            "predicted_s": found.predicted_s if found else None,
            "planned_g": _planned_g(found) if found else None,
            "used_g": None,  # the hub adds it (bambupi.printer.grams)
            "filaments": filaments,
            "thumbnail": f"/api/jobs/{job.row}/thumbnail" if thumbnail else None,
        })

    # -- the database ----------------------------------------------------------------------------------------------

    async def _save(self, job: _Job) -> None:
        """Write what of ``job`` is not written yet; what fails is tried again later (:meth:`_retry`)."""
        if self.db is None:
            return
        had_row = job.row is not None
        async with job.saving:
            done = await self._save_parts(job, self.db)
        if not had_row and job.row is not None:
            self._publish(job)  # the card's job id and thumbnail
        if done and job in self._unsaved:
            self._unsaved.remove(job)
        elif not done and job not in self._unsaved:
            self._unsaved.append(job)
            if len(self._unsaved) > UNSAVED_MAX:
                lost = self._unsaved.pop(0)
                log.error("job history: job %r of %s is not written: the database failed too long", lost.name,
                          lost.printer_id)

    async def _save_parts(self, job: _Job, db: Database) -> bool:
        if job.row is None:
            config = self._printers.get(job.printer_id)
            job.row = await self._db(db.start_job, job.printer_id, job.name, config.model if config else "",
                                     job.started_at)
            if job.row is None:
                return False
        row = job.row
        while job.pending:
            if not await self._write(db.add_job_event, row, *job.pending[0]):
                return False
            job.pending.pop(0)
        found = job.file
        if found is not None and not job.file_saved:
            job.file_saved = await self._write(
                db.set_job_file, row, path=found.path, plate=found.plate, predicted_s=found.predicted_s,
                planned_g=_planned_g(found), filaments=found.filaments, thumbnail_png=found.thumbnail_png,
            )
        problem = job.problem if found is None else None
        if problem is not None and problem != job.problem_saved and await self._write(
            db.set_job_file_problem, row, problem
        ):
            job.problem_saved = problem
        if job.end is not None and not job.end_saved:
            job.end_saved = await self._write(db.end_job, row, job.end)
        if job.used is not None and not job.usage_saved:
            job.usage_saved = await self._write(db.set_job_usage, row, *self._usage(job))
        if job.usage_saved and not job.consumed:
            job.consumed = True
            await self._consume(job, row)
        return (
            (found is None or job.file_saved)
            and (found is not None or job.problem == job.problem_saved)
            and (job.end is None or job.end_saved)
            and (job.used is None or job.usage_saved)
        )

    def _usage(self, job: _Job) -> tuple[float | None, dict[int, JobFilamentUse]]:
        assert job.used is not None
        trays = self._trays(job)
        per_filament = {i: _use(g, trays.get(i), job.spools.get(i)) for i, g in job.used.items()}
        known = [g for g in job.used.values() if g is not None]
        return (round(sum(known), 2) if len(known) == len(job.used) else None), per_filament

    async def _consume(self, job: _Job, row: int) -> None:
        """The spools take the job's grams (once: the inventory keeps a job's subtraction unique too)."""
        if self._inventory is None or job.used is None:
            return
        trays = self._trays(job)
        usage = {i: (g, trays.get(i)) for i, g in job.used.items() if g is not None}
        try:
            await self._inventory.job_ended(row, job.printer_id, usage)
        except Exception:  # the spools' failure costs their weights, not the job's record
            log.exception("%s: the spools inventory could not take job %s's grams", job.printer_id, row)

    async def _db(self, method: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
        """``method`` of the database in a worker thread; None when it failed (:meth:`_write` for a write)."""
        done, result = await self._call(method, *args, **kwargs)
        return result if done else None

    async def _write(self, method: Callable[P, None], *args: P.args, **kwargs: P.kwargs) -> bool:
        """A write in a worker thread; False when it failed."""
        done, _ = await self._call(method, *args, **kwargs)
        return done

    async def _call(self, method: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> tuple[bool, T | None]:
        # A DatabaseError is logged once per distinct problem (the database keeps it for /healthz), and once
        # when writing works again.
        try:
            result = await trio.to_thread.run_sync(lambda: method(*args, **kwargs))
        except DatabaseError as exc:
            self.failed_writes += 1
            if self.db_error != str(exc):
                log.error("job history: %s", exc)
            self.db_error = str(exc)
            return False, None
        if self.db_error is not None:
            log.info("job history: writing again")
        self.db_error = None
        return True, result


def _remember(job: _Job, entry: tuple[float, str, str | None, str | None]) -> None:
    """An entry of the job's timeline, written at the job's next write (bounded while the database fails)."""
    if len(job.pending) < PENDING_EVENTS_MAX:
        job.pending.append(entry)


def _planned_g(found: JobFile) -> float | None:
    if found.filaments:
        return round(sum(f.grams for f in found.filaments), 2)
    return found.weight_g


def _use(used: float | None, tray: TrayRef | None, spool_id: int | None) -> JobFilamentUse:
    if tray is None:
        return JobFilamentUse(used_g=used, spool_id=spool_id)
    if tray.get("external"):
        return JobFilamentUse(used_g=used, external=True, spool_id=spool_id)
    return JobFilamentUse(used_g=used, ams=tray.get("ams"), tray=tray.get("tray"), spool_id=spool_id)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _at(event: Mapping[str, Any], default: float) -> float:
    at = event.get("at")
    return float(at) if isinstance(at, int | float) and math.isfinite(at) else default

