"""The job recorder as a component: it writes each job's row, fetches its file and keeps its grams and timeline."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import trio

from bambupi.component import RESTART, Applied, Web
from bambupi.config import Config, HistoryConfig, PrinterConfig
from bambupi.database import Database
from bambupi.history.recorder import Inventory, JobEnergy, JobRecorder
from bambupi.history.routes import Currency, add_history_routes
from bambupi.jobfile.fetch import fetch_job_file
from bambupi.printer.tls_pins import PinStore
from bambupi.state_hub import StateHub


class HistoryComponent:
    name = "history"
    sections = ("history", "printer", "storage")  # [storage] is where the jobs are written

    def __init__(
        self,
        hub: StateHub,
        printers: Sequence[PrinterConfig],
        db: Database | None,
        settings: HistoryConfig,
        *,
        energy: JobEnergy,
        pins: PinStore,
        scratch: Path,
        currency: Currency,
        inventory: Inventory | None = None,
    ) -> None:
        self._hub, self._db, self._currency = hub, db, currency
        self._scratch = scratch  # the 3MF while it is read (on the data disk: a Pi's /tmp may be its memory)
        self.recorder = JobRecorder(
            hub, printers, db, settings, energy=energy, pins=pins, scratch=scratch, fetch=fetch_job_file,
            inventory=inventory,
        )

    def add_routes(self, web: Web) -> None:
        # The plugs' currency prices the jobs' energy.
        add_history_routes(web.app, self._hub, self._db, currency=self._currency)

    async def run(self, *, task_status: trio.TaskStatus[JobRecorder] = trio.TASK_STATUS_IGNORED) -> None:
        await trio.to_thread.run_sync(lambda: self._scratch.mkdir(parents=True, exist_ok=True))
        await self.recorder.run(task_status=task_status)

    async def apply(self, old: Config, new: Config) -> Applied:
        if old.storage != new.storage:
            return RESTART  # the database is open where it was
        self.recorder.update_printers(new.printers)  # the next fetch uses a printer's new address and code
        if old.history == new.history:
            return []
        self.recorder.settings = new.history  # read at every job's start
        if not new.history.fetch_job_file:
            return ["history: job files are not fetched"]
        return [f"history: job files fetched (at most {new.history.max_file_mb:g} MB, "
                f"{new.history.fetch_timeout_s:g} s)"]
