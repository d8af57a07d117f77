"""The power service: reads each printer's plug, logs samples, counts each job's energy, runs auto-off and cross-checks.

One task per plug samples it every ``power.sample_interval_s``; samples wait in memory and are written in one
transaction about every ``power.flush_interval_s`` and at every print event (SQLite I/O runs in a worker thread).
The job recorder (bambupi.history) owns the jobs' rows; it opens and closes each job's energy count here
(:meth:`PowerService.open_job`, :meth:`PowerService.close_job`) and stores what the count says.
A plug that does not answer is a warning on the page, never a stop: the service keeps sampling.

Two clocks: the wall clock only labels (a sample's time, a job's start and end as stored and shown); every length of
time (energy between two readings, a job's duration, the auto-off countdown) is measured on the monotonic clock. A Pi
has no battery clock and NTP steps the wall clock at boot: a step of an hour must not give a job negative energy or an
hour it never ran, nor cut a two-minute warning short.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import trio

from bambupi.config import PlugConfig, PowerConfig, PrinterConfig
from bambupi.database import Database, DatabaseError, Sample, energy_kwh
from bambupi.power.autooff import AutoOff, what_off_interrupts
from bambupi.power.plugs import Plug, PlugError, PlugReading, make_plug
from bambupi.printer.phase import WORKING, job_phase
from bambupi.state_hub import EventQueue, StateHub
from bambupi.stoppable import Stoppable

log = logging.getLogger("bambupi.power")

NEAR_ZERO_W: Final = 3.0
RECENT_SAMPLES: Final = 360  # kept in memory for the page: an hour at 10 s
DOWNSAMPLE_EVERY_S: Final = 3600.0
AUTO_OFF_CHECK_S: Final = 1.0
JOB_EVENTS: Final = frozenset({"job_started", "job_finished", "job_failed", "job_cancelled"})
# What a job used: kWh and cost (null without a power-measuring plug or a price), the currency, the peak watts.
JobEnergyUse = tuple[float | None, float | None, str, float | None]


@dataclass(frozen=True)
class CrossCheck:
    """The plug and the printer disagree: ``code`` names the disagreement (logged and announced once when it starts),
    ``message`` says it with the current figures (shown on the page, refreshed every sample)."""

    code: str  # not_this_plug | unreachable
    message: str


def cross_check(
    printer: Mapping[str, Any], reading: PlugReading | None, printing_watts: float, *, switched_off_by_box: bool = False
) -> CrossCheck | None:
    """A warning when the plug and the printer disagree, else None. A plug the box itself switched off is expected
    to read 0 W while the printer's last report still says printing: that is no sign of the wrong plug."""
    if reading is None or reading.watts is None:
        return None
    connection = printer.get("connection")
    gcode_state = (printer.get("state") or {}).get("gcode_state")
    if connection == "online" and job_phase(printer.get("state") or {}) in WORKING and reading.watts < NEAR_ZERO_W:
        if switched_off_by_box and not reading.on:
            return None
        return CrossCheck(
            "not_this_plug",
            f"the plug reads {reading.watts:.0f} W while the printer reports {gcode_state}: "
            "is this the printer's plug?",
        )
    if connection in ("offline", "stale") and reading.watts >= printing_watts:
        return CrossCheck(
            "unreachable",
            f"printer on but unreachable: the plug draws {reading.watts:.0f} W while the link is {connection}",
        )
    return None


class SwitchRefused(Exception):
    """Switching off would interrupt the printer and the request was not confirmed; the message names what."""


@dataclass
class _Job:
    """The print in progress on one printer, as the power service accumulates its energy."""

    started_at: float  # wall clock: the label shown
    started_mono: float | None  # monotonic: readings before it do not count; None for a job resumed after a restart
    energy_ws: float = 0.0
    measured: bool = False
    peak_watts: float | None = None


@dataclass
class _PlugState:
    plug: Plug
    config: PlugConfig
    reading: PlugReading | None = None
    read_at: float | None = None  # wall clock, for the page
    read_mono: float | None = None  # monotonic, for the energy until the next reading
    error: str | None = None
    warning: CrossCheck | None = None
    switched_off_by_box: bool = False  # the box (the owner or auto-off) switched it off last, not someone else
    closed: bool = False  # its client was closed when the service stopped; a restart makes it afresh
    recent: deque[Sample] = field(default_factory=lambda: deque(maxlen=RECENT_SAMPLES))


class PowerService:
    """Start with ``await nursery.start(power.run)``; it closes ``store`` when it stops. Public methods are called
    from trio (the web calls them through ``trio.from_thread``)."""

    def __init__(
        self,
        hub: StateHub,
        printers: Sequence[PrinterConfig],
        store: Database | None,
        settings: PowerConfig,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = trio.current_time,
        plugs: Mapping[str, Plug] | None = None,
    ) -> None:
        self.hub = hub
        self.store = store
        self.settings = settings
        self._clock = clock  # wall: labels only
        self._monotonic = monotonic  # durations and deadlines
        self._models = {p.id: p.model for p in printers}
        self._plugs: dict[str, _PlugState] = {}
        for printer in printers:
            if printer.plug is not None:
                plug = plugs[printer.id] if plugs and printer.id in plugs else make_plug(printer.plug)
                self._plugs[printer.id] = _PlugState(plug, printer.plug)
        self.auto_off = AutoOff(
            {pid: s.config for pid, s in self._plugs.items() if s.config.auto_off}, to_wall=self._wall_at
        )
        self._jobs: dict[str, _Job] = {}
        self._ended: dict[str, tuple[float | None, float | None, str]] = {}
        self._pending: list[Sample] = []
        self._flush_now = trio.Event()
        self._last_downsample = -math.inf
        self.store_error: str | None = None
        self._nursery: trio.Nursery | None = None
        self._plug_tasks: dict[str, Stoppable] = {}

    def _wall_at(self, mono: float) -> float:
        """A monotonic instant as wall-clock time, for the page, the panel and events (recomputed at every use, so
        a step of the wall clock moves the label, never the deadline)."""
        return self._clock() + (mono - self._monotonic())

    # -- the service -------------------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[PowerService] = trio.TASK_STATUS_IGNORED) -> None:
        for state in self._plugs.values():
            if state.closed:  # started again after a failure
                state.plug, state.closed = make_plug(state.config), False
        try:
            async with self.hub.events("power") as queue, trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._events, queue)
                nursery.start_soon(self._flusher)
                for printer_id in self._plugs:
                    self._plug_tasks[printer_id], _ = await Stoppable.start(nursery, self._plug_loops, printer_id)
                task_status.started(self)
        finally:
            self._nursery = None
            self._plug_tasks.clear()  # they ended with the nursery
            with trio.CancelScope(shield=True):
                await self._flush()
                for state in self._plugs.values():
                    await state.plug.aclose()
                    state.closed = True
                if self.store is not None:
                    await trio.to_thread.run_sync(self.store.close)

    async def _plug_loops(
        self, printer_id: str, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """One plug's sampling and auto-off, stopped on their own when the settings page changes the plug."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._sampler, printer_id)
            if printer_id in self.auto_off.policies:
                nursery.start_soon(self._auto_off_loop, printer_id)
            task_status.started()

    # -- called by the service (settings page) ---------------------------------------------------------------

    async def update_printer(self, printer: PrinterConfig) -> bool:
        """A printer added or edited while running; its plug is replaced when its settings changed. True if so."""
        self._models[printer.id] = printer.model
        current = self._plugs.get(printer.id)
        if (current.config if current is not None else None) == printer.plug:
            return False
        await self._stop_plug(printer.id)
        self.auto_off.set_policy(printer.id, printer.plug)
        if printer.plug is not None:
            self._plugs[printer.id] = _PlugState(make_plug(printer.plug), printer.plug)
            if self._nursery is not None:  # else it starts with the service
                self._plug_tasks[printer.id], _ = await Stoppable.start(self._nursery, self._plug_loops, printer.id)
        return True

    async def remove_printer(self, printer_id: str) -> None:
        await self._stop_plug(printer_id)
        self.auto_off.set_policy(printer_id, None)
        self._models.pop(printer_id, None)

    async def _stop_plug(self, printer_id: str) -> None:
        task = self._plug_tasks.pop(printer_id, None)
        if task is not None:
            await task.stop()  # its last request finished or cancelled before the client closes
        state = self._plugs.pop(printer_id, None)
        if state is not None:
            await state.plug.aclose()

    # -- called by the web and the panel -------------------------------------------------------------------------

    def has_plug(self, printer_id: str) -> bool:
        return printer_id in self._plugs

    def auto_off_warnings(self) -> dict[str, float]:
        """Printers whose plug switches off soon: ``{printer_id: off_at}`` (wall clock), for the panel."""
        warned = {}
        for printer_id in self._plugs:
            status = self.auto_off.status(printer_id)
            if status["warning"] and status["off_at"] is not None:
                warned[printer_id] = float(status["off_at"])
        return warned

    def plug_off(self, printer_id: str) -> bool:
        """Whether the printer's plug last read off (the panel lets the box sleep then)."""
        state = self._plugs.get(printer_id)
        return state is not None and state.reading is not None and state.reading.on is False

    def cancel_auto_off(self, printer_id: str) -> bool:
        """The panel's button and the page's Cancel: disarm a pending auto-off. True when one was pending."""
        return self.auto_off.cancel(printer_id)

    async def switch(self, printer_id: str, on: bool, *, confirmed: bool = False) -> PlugReading:
        """Switch a plug by hand; a pending auto-off is dropped (the owner's choice wins). Raises SwitchRefused when
        an off would interrupt a print or a busy printer and is not ``confirmed``, PlugError when the plug fails,
        KeyError for a printer without a plug."""
        state = self._plugs[printer_id]
        if not on and not confirmed and self.hub.has(printer_id):
            interrupts = what_off_interrupts(self.hub.printer(printer_id))
            if interrupts is not None:
                raise SwitchRefused(interrupts)
        log.info("%s: switching the plug %s (requested on the page)", printer_id, "on" if on else "off")
        self.auto_off.switched_by_hand(printer_id, on)
        await self._switch(printer_id, state, on)
        return state.reading or PlugReading(on=on, watts=None, total_kwh=None)

    async def _switch(self, printer_id: str, state: _PlugState, on: bool) -> None:
        """The box switches the plug (the owner or auto-off) and reads it back at once."""
        await state.plug.switch(on)
        state.switched_off_by_box = not on
        await self._sample(printer_id)

    def status(self, printer_id: str) -> dict[str, Any]:
        """The live part of ``GET /api/power`` for one printer."""
        state = self._plugs.get(printer_id)
        job = self._jobs.get(printer_id)
        current_job = None
        if job is not None:
            current_job = {
                "started_at": job.started_at,
                "energy_kwh": job.energy_ws / 3_600_000.0 if job.measured else None,
                "peak_watts": job.peak_watts,
            }
        base: dict[str, Any] = {"printer": printer_id, "job": current_job}
        if state is None:
            return {**base, "plug": None}
        return {
            **base,
            "plug": {"kind": state.plug.kind, "address": state.plug.describe()},
            "reading": state.reading.to_json() if state.reading else None,
            "read_at": state.read_at,
            "error": state.error,
            "warning": state.warning.message if state.warning is not None else None,
            "price_per_kwh": state.config.price_per_kwh,
            "currency": state.config.currency,
            "auto_off": self.auto_off.status(printer_id),
            "recent": [[s.at, s.watts] for s in state.recent],
        }

    def unwritten(self, printer_id: str) -> list[Sample]:
        return [s for s in self._pending if s.printer == printer_id]

    # -- sampling ----------------------------------------------------------------------------------------------

    async def _sampler(self, printer_id: str) -> None:
        while True:
            await self._sample(printer_id)
            await trio.sleep(self.settings.sample_interval_s)

    async def _sample(self, printer_id: str) -> None:
        state = self._plugs[printer_id]
        try:
            reading = await state.plug.read()
        except PlugError as exc:
            if state.error != str(exc):
                log.warning("%s: %s", printer_id, exc)  # once per distinct failure, not every poll
            state.error, state.reading = str(exc), None
            return
        if state.error is not None:
            log.info("%s: %s answers again", printer_id, state.plug.describe())
        now, mono = self._clock(), self._monotonic()
        self._accumulate(mono, reading.watts, state, self._jobs.get(printer_id))
        state.reading, state.read_at, state.read_mono, state.error = reading, now, mono, None
        sample = Sample(printer_id, now, reading.watts, reading.on, reading.total_kwh)
        state.recent.append(sample)
        self._pending.append(sample)
        self._check(printer_id, state)

    def _accumulate(self, mono: float, watts: float | None, state: _PlugState, job: _Job | None) -> None:
        if job is None or watts is None:
            return
        job.energy_ws += held_energy_ws(
            state.reading.watts if state.reading is not None else None, state.read_mono, job.started_mono, mono,
            max_gap_s=3 * self.settings.sample_interval_s,
        )
        job.measured = True
        job.peak_watts = watts if job.peak_watts is None else max(job.peak_watts, watts)

    def _check(self, printer_id: str, state: _PlugState) -> None:
        if not self.hub.has(printer_id):
            return
        warning = cross_check(
            self.hub.printer(printer_id), state.reading, state.config.printing_watts,
            switched_off_by_box=state.switched_off_by_box,
        )
        before = state.warning.code if state.warning is not None else None
        state.warning = warning  # the newest figures for the page; logged and announced once per transition
        if warning is not None and warning.code != before:
            log.warning("%s: %s", printer_id, warning.message)
            self.hub.publish_event({"kind": "power_check", "printer": printer_id, "message": warning.message})
        elif warning is None and before is not None:
            log.info("%s: plug and printer agree again", printer_id)

    # -- auto-off ----------------------------------------------------------------------------------------------

    async def _auto_off_loop(self, printer_id: str) -> None:
        state = self._plugs[printer_id]
        while True:
            await trio.sleep(min(AUTO_OFF_CHECK_S, self.settings.sample_interval_s))
            if not self.hub.has(printer_id):
                continue
            decision = self.auto_off.evaluate(
                printer_id, self.hub.printer(printer_id), state.reading, self._monotonic()
            )
            if decision.action == "warn":
                off_at = self._wall_at(decision.off_at) if decision.off_at is not None else None
                self.hub.publish_event({"kind": "power_warning", "printer": printer_id, "message": decision.reason,
                                        "off_at": off_at})
            if decision.action != "off":
                continue
            try:
                await self._switch(printer_id, state, False)
            except PlugError as exc:
                self.auto_off.failed(printer_id, str(exc))
                continue
            self.auto_off.switched_off(printer_id)
            self.hub.publish_event(
                {"kind": "power_off", "printer": printer_id, "message": "switched off after cooling down"}
            )

    # -- jobs (the job recorder opens and closes them) ----------------------------------------------------------

    def open_job(self, printer_id: str, *, resumed: bool = False) -> None:
        """Count a job's energy from now: every reading after its start (a job ``resumed`` after a restart: every
        reading since the restart). A job still open on the printer is dropped uncounted (its end was not seen)."""
        mono = None if resumed else self._monotonic()
        self._jobs[printer_id] = _Job(started_at=self._clock(), started_mono=mono)

    async def close_job(self, printer_id: str) -> JobEnergyUse:
        """The job's energy up to its very end (the plug is read once more first) and its cost; the count stops.
        A printer with no job open answers nothing measured."""
        state = self._plugs.get(printer_id)
        if printer_id in self._jobs and state is not None and not state.closed and self._nursery is not None:
            await self._sample(printer_id)
        job = self._jobs.pop(printer_id, None)
        if job is None:
            return None, None, state.config.currency if state is not None else "", None
        energy, cost, currency = self._energy_and_cost(printer_id, job)
        self._ended[printer_id] = (energy, cost, currency)
        self._flush_now.set()  # the job's samples are written with its end
        return energy, cost, currency, job.peak_watts

    async def _events(self, queue: EventQueue) -> None:
        while True:
            event = await queue.get()
            self.auto_off.on_event(event, self._monotonic())
            if event.get("kind") in JOB_EVENTS:
                self._flush_now.set()

    def job_energy(self, printer_id: str) -> tuple[float | None, float | None, str]:
        """Energy (kWh) and cost of the print in progress or the one that just ended, and the currency."""
        job = self._jobs.get(printer_id)
        if job is None:
            return self._ended.get(printer_id, (None, None, ""))
        return self._energy_and_cost(printer_id, job)

    def currency(self, printer_id: str) -> str:
        """The currency of the printer's plug's price ("" without a plug): the history prices its jobs in it."""
        state = self._plugs.get(printer_id)
        return state.config.currency if state is not None else ""

    def _energy_and_cost(self, printer_id: str, job: _Job) -> tuple[float | None, float | None, str]:
        state = self._plugs.get(printer_id)
        energy = job.energy_ws / 3_600_000.0 if job.measured else None
        price = state.config.price_per_kwh if state is not None else None
        cost = None if energy is None or price is None else round(energy * price, 4)
        return energy, cost, state.config.currency if state is not None else ""

    # -- writing -----------------------------------------------------------------------------------------------

    async def _flusher(self) -> None:
        while True:
            with trio.move_on_after(self.settings.flush_interval_s):
                await self._flush_now.wait()
            self._flush_now = trio.Event()
            await self._flush()
            mono = self._monotonic()
            if self.store is not None and mono - self._last_downsample >= DOWNSAMPLE_EVERY_S:
                self._last_downsample = mono
                try:
                    await trio.to_thread.run_sync(self.store.downsample, self._clock())
                except DatabaseError as exc:
                    self._store_failed(exc)

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if self.store is None or not batch:
            return
        try:
            await trio.to_thread.run_sync(self.store.add_samples, batch)
        except DatabaseError as exc:
            self._store_failed(exc)
            # Keep at most an hour of samples waiting for the disk to come back; then drop the oldest.
            self._pending = (batch + self._pending)[-RECENT_SAMPLES * max(1, len(self._plugs)):]
            return
        if self.store_error is not None:
            log.info("power log: writing again")  # once, as its failure was logged once
        self.store_error = None

    def _store_failed(self, exc: DatabaseError) -> None:
        if self.store_error != str(exc):
            log.error("power log: %s", exc)
        self.store_error = str(exc)


def held_energy_ws(
    previous_watts: float | None, previous_mono: float | None, job_start_mono: float | None, now_mono: float,
    *, max_gap_s: float,
) -> float:
    """The energy (W·s) of the previous reading's power held until now, all on the monotonic clock. Nothing from a
    reading taken before the job started, never less than nothing, and a long gap (plug unreachable) is not filled
    with a guess: at most ``max_gap_s``. ``job_start_mono`` is None for a job resumed after a restart: every reading
    since the restart counts."""
    if previous_watts is None or previous_mono is None:
        return 0.0
    if job_start_mono is not None and previous_mono < job_start_mono:
        return 0.0
    return previous_watts * min(max(now_mono - previous_mono, 0.0), max_gap_s)


def today_energy(samples: Sequence[Sample], *, max_gap_s: float) -> float | None:
    """kWh from a day's samples (see :func:`energy_kwh`)."""
    return energy_kwh(((s.at, s.watts) for s in samples), max_gap_s=max_gap_s)
