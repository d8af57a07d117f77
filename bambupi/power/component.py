"""The smart plugs as a component: the power service (sampling, energy per job, auto-off), its log and its routes."""

from __future__ import annotations

from collections.abc import Sequence

import trio

from bambupi.component import RESTART, Applied, Web
from bambupi.config import Config, PowerConfig, PrinterConfig
from bambupi.database import Database
from bambupi.power.routes import add_power_routes
from bambupi.power.service import PowerService
from bambupi.state_hub import StateHub


class PowerComponent:
    name = "power"
    sections = ("power", "printer", "storage")  # [storage] is where its log lives

    def __init__(
        self, hub: StateHub, printers: Sequence[PrinterConfig], store: Database | None, settings: PowerConfig
    ) -> None:
        self._hub = hub
        self.store = store
        self.service = PowerService(hub, printers, store, settings)

    def add_routes(self, web: Web) -> None:
        add_power_routes(web.app, self._hub, self.service, self.store)

    async def run(self, *, task_status: trio.TaskStatus[PowerService] = trio.TASK_STATUS_IGNORED) -> None:
        await self.service.run(task_status=task_status)

    async def apply(self, old: Config, new: Config) -> Applied:
        if old.storage != new.storage:
            return RESTART  # the log is open where it was
        applied: list[str] = []
        if old.power != new.power:
            self.service.settings = new.power  # the samplers and the writer read it at every round
            applied.append(
                f"power: plugs read every {new.power.sample_interval_s:g} s, "
                f"written every {new.power.flush_interval_s:g} s"
            )
        before = {p.id: p for p in old.printers}
        after = {p.id: p for p in new.printers}
        for printer_id in before.keys() - after.keys():
            await self.service.remove_printer(printer_id)
        for printer_id, printer in after.items():
            changed = printer != before.get(printer_id) and await self.service.update_printer(printer)
            if changed and printer_id in before:  # an added printer's line says it was added
                applied.append(f"printer {printer_id}: smart plug {'removed' if printer.plug is None else 'set'}")
        return applied
