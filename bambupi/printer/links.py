"""PrinterLinks: the running links, one per configured printer, which settings changes start, stop and restart."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import trio

from bambupi.config import PrinterConfig
from bambupi.printer.link import PrinterLink
from bambupi.printer.pins import PinStore
from bambupi.printer.sink import PrinterSink


class PrinterLinks(Mapping[str, PrinterLink]):
    """A read-only mapping ``id -> PrinterLink`` for everyone else; only :meth:`start`/:meth:`stop` change it."""

    def __init__(self, hub: PrinterSink, pins: PinStore, printers: Iterable[PrinterConfig]) -> None:
        self._hub = hub
        self._pins = pins
        self._configs = {p.id: p for p in printers}  # what a (re)start connects
        self._nursery: trio.Nursery | None = None
        self._links: dict[str, PrinterLink] = {}
        self._scopes: dict[str, trio.CancelScope] = {}

    async def run(self, *, task_status: trio.TaskStatus[PrinterLinks] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for config in list(self._configs.values()):
                    await self._start(config)
                task_status.started(self)
                await trio.sleep_forever()  # open for printers the settings add, with none configured yet
        finally:
            self._nursery = None
            self._links.clear()
            self._scopes.clear()

    def __getitem__(self, printer_id: str) -> PrinterLink:
        return self._links[printer_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._links)

    def __len__(self) -> int:
        return len(self._links)

    async def start(self, config: PrinterConfig) -> None:
        """Connect a printer (added, or with new settings); while not running, at the next start."""
        self._configs[config.id] = config
        if self._nursery is not None:
            await self._start(config)

    async def _start(self, config: PrinterConfig) -> None:
        assert self._nursery is not None
        scope = trio.CancelScope()
        link = PrinterLink(config, self._hub, self._pins)

        async def run(*, task_status: trio.TaskStatus[PrinterLink] = trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await link.run(task_status=task_status)

        await self._nursery.start(run)
        self._links[config.id] = link
        self._scopes[config.id] = scope

    def stop(self, printer_id: str) -> None:
        self._configs.pop(printer_id, None)
        scope = self._scopes.pop(printer_id, None)
        if scope is not None:
            scope.cancel()
        self._links.pop(printer_id, None)

    async def restart(self, config: PrinterConfig) -> None:
        self.stop(config.id)
        await self.start(config)

    def by_serial(self, serial: str) -> PrinterLink | None:
        return next((link for link in self._links.values() if link.config.serial == serial), None)
