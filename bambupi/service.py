"""The bambupi service: one trio nursery holding the hub and the box's components (see ``bambupi.component``).

Adding a component: its folder (code, routes, a component class), then its field in :class:`Parts` (where it stands
there is when it starts) and the line in :meth:`Service._build` that makes it (after the parts it needs).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bottle
import trio

from bambupi.alerts import QuietHours
from bambupi.bridge.component import BridgeComponent
from bambupi.camera.component import CameraComponent
from bambupi.camera.frames import FrameHub
from bambupi.component import Component, HealthBoard, RestartOnly, Supervisor
from bambupi.config import SETUP_ERRORS_FILE_NAME, Config, config_secrets, pins_file
from bambupi.database import Database
from bambupi.facade.component import FacadeComponent
from bambupi.filament.component import FilamentComponent
from bambupi.filament.inventory import Inventory
from bambupi.history.component import HistoryComponent
from bambupi.history.recorder import JobRecorder
from bambupi.notify.component import NotifyComponent
from bambupi.notify.notifier import Notifier
from bambupi.panel.component import PanelComponent
from bambupi.panel.service import Panel
from bambupi.power.component import PowerComponent
from bambupi.power.service import PowerService
from bambupi.printer.commands import Controls
from bambupi.printer.component import DiscoveryComponent, LinksComponent
from bambupi.printer.discovery import Discovery
from bambupi.printer.hms_refresh import HmsRefresher
from bambupi.printer.link import PrinterLinks
from bambupi.printer.tls_pins import PinStore
from bambupi.state_hub import StateHub
from bambupi.web.component import WebComponent, listen_urls, notify_systemd
from bambupi.web.users import USERS_FILE_NAME

log = logging.getLogger("bambupi")


class Running:
    """What a started service exposes to its caller (the CLI, the demo, tests)."""

    def __init__(self, service: Service, port: int) -> None:
        parts = service.parts
        self.hub = service.hub
        self.port = port
        self.urls = listen_urls(service.config.web.host, port)
        self.links: PrinterLinks = parts.links.links
        self.controls: Controls = parts.links.controls
        self.discovery: Discovery = parts.discovery.discovery
        self.notifier: Notifier = parts.notify.notifier
        self.power: PowerService = parts.power.service
        self.inventory: Inventory = parts.filament.inventory
        self.recorder: JobRecorder = parts.history.recorder
        self.frames: FrameHub = parts.camera.frames
        self.bridge: BridgeComponent = parts.bridge
        self.facade: FacadeComponent = parts.facade
        self.web_app: bottle.Bottle = parts.web.web.app  # every HTTP route served through Bottle
        self.quiet_hours: QuietHours = parts.alerts
        self.supervisor = service.supervisor
        self._panel = parts.panel

    @property
    def url(self) -> str:
        return self.urls[0]

    @property
    def panel(self) -> Panel | None:
        """The running panel (the settings page may have restarted it with new settings)."""
        return self._panel.panel


@dataclass
class Parts:
    """The components of the box, by name, in the order they start (:meth:`ordered`).

    The links first: a printer added in the settings joins the hub there before the HMS texts, the camera and the
    plugs look for it. The front door last: it opens once every route exists.
    """

    alerts: QuietHours
    links: LinksComponent
    hms_texts: HmsRefresher
    camera: CameraComponent
    facade: FacadeComponent
    power: PowerComponent
    filament: FilamentComponent
    history: HistoryComponent
    notify: NotifyComponent
    panel: PanelComponent
    discovery: DiscoveryComponent
    bridge: BridgeComponent
    system: RestartOnly
    web: WebComponent

    def ordered(self) -> list[Component]:
        return [getattr(self, part.name) for part in dataclasses.fields(self)]


class Service:
    def __init__(self, config: Config, *, storage_folder: Path) -> None:
        self.config = config
        self.storage_folder = storage_folder
        self.pins = PinStore(pins_file(storage_folder))
        self.hub: StateHub
        self.parts: Parts
        self.supervisor: Supervisor

    async def run(self, *, task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED) -> None:
        config = self.config
        # The heads-up's lead time is read at each change, from the config as the settings page last saved it.
        hub = self.hub = StateHub(config.printers, ending_soon_min=lambda: self.config.alerts.ending_soon_min)
        async with trio.open_nursery() as nursery:
            await nursery.start(hub.run)  # settles job ends the printer leaves open (a stop's FAILED without error)
            # The power log and job history; a full disk or a broken file is a warning, never a stop.
            power_store = await trio.to_thread.run_sync(Database, self.storage_folder / config.storage.path.name)
            board = HealthBoard()  # the Supervisor writes it; the page's live feed shows what is failing
            self.parts = parts = self._build(hub, power_store, board)
            self.supervisor = Supervisor(
                parts.ordered(), secrets=lambda: config_secrets(self.config), must_start=[parts.web.name], board=board
            )
            for component in parts.ordered():
                component.add_routes(parts.web.web)
            await self.supervisor.start(nursery)
            assert parts.web.port is not None  # it must start: its failure ended the service above
            running = Running(self, parts.web.port)
            log.info("bambupi is ready: open %s", running.url)
            notify_systemd("READY=1")
            task_status.started(running)

    def _build(self, hub: StateHub, power_store: Database, board: HealthBoard) -> Parts:
        """Every component, each made after the ones it needs (handed in through its constructor)."""
        config = self.config

        def health() -> dict[str, Any]:
            return {
                **power_store.health(), **self.supervisor.health(), **hms_texts.health(), **filament.health(),
                **bridge.health(),
                **facade.health(), **panel.health(), **web.health(),
            }

        web = WebComponent(
            hub, config, health=health, current=lambda: self.config, reconfigure=self.reconfigure, pins=self.pins,
            board=board, users_file=self.storage_folder / USERS_FILE_NAME,
        )
        alerts = QuietHours(config.alerts)
        links = LinksComponent(hub, config.printers, self.pins)
        camera = CameraComponent(
            hub, config.printers, config.camera, pins=self.pins, snapshot_folder=self.storage_folder / "snapshots"
        )
        # Other apps reach the printer through the box (docs/facade.md): the camera's frames, the page's commands.
        facade = FacadeComponent(
            hub, config.facade, config.printers, controls=links.controls, links=links.links,
            frames=camera.frames, folder=self.storage_folder,
        )
        power = PowerComponent(hub, config.printers, power_store, config.power)
        filament = FilamentComponent(hub, power_store, config.filament)
        history = HistoryComponent(
            hub, config.printers, power_store, config.history, energy=power.service, pins=self.pins,
            scratch=self.storage_folder / "scratch", currency=power.service.currency, inventory=filament.inventory,
        )
        notify = NotifyComponent(
            hub, config.notify, quiet=alerts.quiet, snapshot=camera.snapshot, job_energy=power.service.job_energy
        )
        panel = PanelComponent(
            hub, config.panel, quiet_hours=alerts, auto_off=power.service, filament=filament.inventory,
            commands=links.controls, url=web.url,
            setup_errors=self.storage_folder / SETUP_ERRORS_FILE_NAME, plugs=power.service,
        )
        discovery = DiscoveryComponent(config.discovery, links)
        # The home broker (Home Assistant): state, events, pictures; its commands take the page's path.
        bridge = BridgeComponent(
            hub, config.bridge, config.printers, controls=links.controls, snapshot=camera.snapshot, url=web.url
        )
        # Who paused, resumed or stopped a job is on its timeline.
        links.controls.on_command(history.recorder.note_command)
        # Bambu's official HMS texts in the owner's language, fetched in the background into the data folder.
        hms_texts = HmsRefresher(hub, self.storage_folder / "hms", config.alerts, config.printers)
        system = RestartOnly("system", ("system",))
        return Parts(
            alerts=alerts, links=links, hms_texts=hms_texts, camera=camera, facade=facade, power=power,
            filament=filament,
            history=history,
            notify=notify, panel=panel, discovery=discovery, bridge=bridge, system=system, web=web,
        )

    async def reconfigure(self, new: Config) -> dict[str, list[str]]:
        """Apply a changed config: each component applies its sections live or says they wait for a restart.

        Returns ``{"applied": [...], "restart_required": [...]}`` for the settings page.
        """
        old, self.config = self.config, new
        return await self.supervisor.reconfigure(old, new)
