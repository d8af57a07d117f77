"""PrinterLinks: the running links, one per configured printer, which settings changes start, stop and restart."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import trio

from bambupi.config import PrinterConfig
from bambupi.hub import StateHub
from bambupi.printer.link import PrinterLink
from bambupi.printer.pins import PinStore


class PrinterLinks(Mapping[str, PrinterLink]):
    """A read-only mapping ``id -> PrinterLink`` for everyone else; only :meth:`start`/:meth:`stop` change it."""

    def __init__(self, hub: StateHub, pins: PinStore, nursery: trio.Nursery) -> None:
        self._hub = hub
        self._pins = pins
        self._nursery = nursery
        self._links: dict[str, PrinterLink] = {}
        self._scopes: dict[str, trio.CancelScope] = {}

    def __getitem__(self, printer_id: str) -> PrinterLink:
        return self._links[printer_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._links)

    def __len__(self) -> int:
        return len(self._links)

    async def start(self, config: PrinterConfig) -> PrinterLink:
        scope = trio.CancelScope()
        link = PrinterLink(config, self._hub, self._pins)

        async def run(*, task_status: trio.TaskStatus[PrinterLink] = trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await link.run(task_status=task_status)

        await self._nursery.start(run)
        self._links[config.id] = link
        self._scopes[config.id] = scope
        return link

    def stop(self, printer_id: str) -> None:
        self._scopes.pop(printer_id).cancel()
        del self._links[printer_id]

    async def restart(self, config: PrinterConfig) -> PrinterLink:
        self.stop(config.id)
        return await self.start(config)

    def by_serial(self, serial: str) -> PrinterLink | None:
        return next((link for link in self._links.values() if link.config.serial == serial), None)
