"""The printers as components: their links (one MQTT connection each, and the owner's commands) and discovery of
printers on the LAN."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import trio

from bambupi.component import RESTART, Applied, Web
from bambupi.config import Config, DiscoveryConfig, PrinterConfig
from bambupi.printer.commands import Controls
from bambupi.printer.discovery import Discovery
from bambupi.printer.link import PrinterLinks
from bambupi.printer.routes import add_discovery_routes, add_printer_routes
from bambupi.printer.tls_pins import PinStore
from bambupi.state_hub import StateHub


class LinksComponent:
    """Owns which printers the hub holds: a printer added or removed in the settings joins or leaves here first."""

    name = "links"
    sections = ("printer",)

    def __init__(self, hub: StateHub, printers: Sequence[PrinterConfig], pins: PinStore) -> None:
        self._hub = hub
        self._pins = pins
        self._printers = tuple(printers)
        self.links = PrinterLinks(hub, pins, printers)
        self.controls = Controls(hub, self.links)

    def add_routes(self, web: Web) -> None:
        add_printer_routes(
            web.app, hub=self._hub, controls=self.controls, printers=lambda: self._printers, pins=self._pins,
            wake_link=self.wake,
        )

    def wake(self, printer_id: str) -> None:
        """Connect again now (its certificate was just trusted)."""
        link = self.links.get(printer_id)
        if link is not None:
            link.follow(link.host)

    def follow(self, serial: str, host: str) -> None:
        """Discovery heard a configured printer at a new address."""
        link = self.links.by_serial(serial)
        if link is not None:
            link.follow(host)

    def known_hosts(self) -> dict[str, str]:
        return {link.config.serial: link.host for link in self.links.values()}

    async def run(self, *, task_status: trio.TaskStatus[PrinterLinks] = trio.TASK_STATUS_IGNORED) -> None:
        await self.links.run(task_status=task_status)

    async def apply(self, old: Config, new: Config) -> Applied:
        applied: list[str] = []
        before = {p.id: p for p in old.printers}
        after = {p.id: p for p in new.printers}
        self._printers = new.printers
        for printer_id in before.keys() - after.keys():
            self.links.stop(printer_id)
            self._hub.remove_printer(printer_id)
            applied.append(f"printer {printer_id} removed")
        for printer_id, printer in after.items():
            if printer_id not in before:
                self._hub.add_printer(printer)
                await self.links.start(printer)
                applied.append(f"printer {printer_id} added")
            elif printer != before[printer_id]:
                self._hub.update_printer_config(printer)
                # A new plug alone leaves the MQTT link alone (the power component says so).
                if dataclasses.replace(before[printer_id], plug=None) != dataclasses.replace(printer, plug=None):
                    await self.links.restart(printer)
                    applied.append(f"printer {printer_id} reconnected with its new settings")
        return applied


class DiscoveryComponent:
    name = "discovery"
    sections = ("discovery",)

    def __init__(self, config: DiscoveryConfig, links: LinksComponent) -> None:
        self._enabled = config.enabled
        self.discovery = Discovery(known_hosts=links.known_hosts, follow=links.follow, port=config.port)

    def add_routes(self, web: Web) -> None:
        add_discovery_routes(web.app, self.discovery)

    async def run(self, *, task_status: trio.TaskStatus[Discovery] = trio.TASK_STATUS_IGNORED) -> None:
        if not self._enabled:
            task_status.started(self.discovery)
            return  # the routes still answer: with no candidates
        await self.discovery.run(task_status=task_status)

    async def apply(self, old: Config, new: Config) -> Applied:
        return RESTART  # its UDP port is bound once
