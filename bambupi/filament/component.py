"""The spool inventory as a component: it follows the printers' slots, serves ``/filament`` and its API, and keeps
the copy on Spoolman (when ``[filament] spoolman_url`` is set)."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import trio

from bambupi.component import RESTART, Applied, Web
from bambupi.config import Config, FilamentConfig
from bambupi.database import Database, DatabaseError
from bambupi.filament.inventory import Inventory
from bambupi.filament.routes import add_filament_routes
from bambupi.filament.spoolman import SpoolmanSync
from bambupi.state_hub import StateHub

log = logging.getLogger("bambupi.filament")


class FilamentComponent:
    name = "filament"
    sections = ("filament", "storage")  # [storage] is where the spools are kept

    def __init__(self, hub: StateHub, store: Database | None, settings: FilamentConfig) -> None:
        self._hub = hub
        self.settings = settings
        self.spoolman = SpoolmanSync(store, lambda: self.settings)
        # The job recorder (bambupi.history) hands each ended job's grams to this.
        self.inventory = Inventory(hub, store, low_g=lambda: self.settings.low_g, changed=self.spoolman.poke)

    def add_routes(self, web: Web) -> None:
        add_filament_routes(
            web.app, self._hub, self.inventory, low_g=lambda: self.settings.low_g, spoolman=self.spoolman.status,
            changed=self.inventory.spools_changed,
        )

    def health(self) -> dict[str, Any]:
        """``/healthz``'s ``spoolman`` entry, when a server is set."""
        status = self.spoolman.status()
        return {} if status is None else {"spoolman": status}

    async def run(self, *, task_status: trio.TaskStatus[Inventory] = trio.TASK_STATUS_IGNORED) -> None:
        async with self._hub.subscribe() as updates, trio.open_nursery() as nursery:
            nursery.start_soon(self.spoolman.run)
            nursery.start_soon(self.inventory.follow_low)
            task_status.started(self.inventory)
            while True:
                for printer_id, printer in (await updates.next()).items():
                    # A database problem is shown in /healthz as its own; the slots are read again next report.
                    with contextlib.suppress(DatabaseError):
                        await self.inventory.observe(printer_id, printer["state"])

    async def apply(self, old: Config, new: Config) -> Applied:
        if old.storage != new.storage:
            return RESTART  # the database is open where it was
        if old.filament == new.filament:
            return []
        self.settings = new.filament  # read at every use
        self.inventory.spools_changed()  # another threshold: other spools are low
        copy = "copied to Spoolman" if new.filament.spoolman_url else "not copied to Spoolman"
        return [f"filament: spools under {new.filament.low_g:g} g are low; {copy}"]
