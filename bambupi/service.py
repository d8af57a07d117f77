"""The bambupi service: one trio nursery holding the hub, a link per printer and the web front door."""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import trio

from bambupi.camera.hub import FrameHub, default_source
from bambupi.camera.mjpeg import CameraRoutes
from bambupi.camera.page import add_camera_page
from bambupi.camera.snapshots import SnapshotStore, SnapshotTaker
from bambupi.config import SETUP_ERRORS_FILE_NAME, Config, WebConfig
from bambupi.hub import StateHub
from bambupi.notify.notifier import Notifier
from bambupi.notify.web import add_notify_routes
from bambupi.panel.service import Panel
from bambupi.panel.web import add_panel_routes
from bambupi.power.meter import PowerService
from bambupi.power.store import PowerStore
from bambupi.power.web import add_power_routes
from bambupi.printer.commands import Controls
from bambupi.printer.discovery import Discovery
from bambupi.printer.link import PrinterLink
from bambupi.printer.links import PrinterLinks
from bambupi.printer.pins import PinStore
from bambupi.stoppable import Stoppable
from bambupi.watchdog import Watchdog, watchdog_interval
from bambupi.web.api import make_app
from bambupi.web.auth import Auth, names_this_box
from bambupi.web.control import add_command_routes, add_discovery_routes
from bambupi.web.frontdoor import FrontDoor, NativeHandler, NativeRouter, Request
from bambupi.web.login import add_login_routes
from bambupi.web.pages import add_page_routes
from bambupi.web.settings import add_settings_routes
from bambupi.web.ws import WebSocketService

log = logging.getLogger("bambupi")


@dataclass
class Running:
    """What a started service exposes to its caller (the CLI, the demo, tests)."""

    hub: StateHub
    port: int
    urls: list[str]
    links: Mapping[str, PrinterLink] = field(default_factory=dict)
    controls: Controls | None = None
    discovery: Discovery | None = None
    panel: Panel | None = None
    notifier: Notifier | None = None
    power: PowerService | None = None
    frames: FrameHub | None = None

    @property
    def url(self) -> str:
        return self.urls[0]


class Service:
    def __init__(self, config: Config, *, storage_folder: Path) -> None:
        self.config = config
        self.storage_folder = storage_folder
        self.pins = PinStore(storage_folder / "tls-pins.json")
        self.hub: StateHub
        self.links: PrinterLinks
        self.notifier: Notifier
        self.frames: FrameHub
        self.power: PowerService
        self.panel: Panel | None = None
        self._nursery: trio.Nursery
        self._running: Running | None = None
        self._panel_task: Stoppable | None = None

    async def run(self, *, task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED) -> None:
        config = self.config
        hub = StateHub(config.printers)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(hub.run)  # settles job ends the printer leaves open (a stop's FAILED without error)
            links = PrinterLinks(hub, self.pins, nursery)
            for printer in config.printers:
                await links.start(printer)
            self.hub, self.links = hub, links
            # Each feature adds its routes to this one Bottle app (pages, JSON) and, for streams the
            # front door serves natively in trio (WebSocket, MJPEG), a router to ``native``.
            # The power log and job history; a full disk or a broken file is a warning, never a stop.
            power_store = await trio.to_thread.run_sync(PowerStore, self.storage_folder / config.storage.path.name)
            app = make_app(hub, health=power_store.health)
            native: list[NativeRouter] = []
            add_page_routes(app, hub)
            native.append(WebSocketService(hub).router)
            camera = config.camera
            frames = FrameHub(
                hub, config.printers, linger_s=camera.linger_s,
                keep_open_while_printing=camera.keep_open_while_printing,
                source_for=functools.partial(default_source, pins=self.pins),
            )
            self.frames = await nursery.start(frames.run)
            store = SnapshotStore(
                self.storage_folder / "snapshots", max_count=camera.history_count, max_bytes=camera.history_bytes
            )
            snapshots = await nursery.start(SnapshotTaker(hub, frames, store).run)
            add_camera_page(app)
            auth = Auth(
                config.web.admin_password_hash, session_hours=config.web.session_hours, config_path=config.source
            )
            guard = add_login_routes(app, auth, config_path=config.source)
            native.append(
                CameraRoutes(
                    frames, snapshots, write_timeout_s=camera.write_timeout_s,
                    refusal=lambda request, changes: guard.native_refusal(
                        request, changes, watching_needs_login=config.web.camera_requires_login
                    ),
                )
            )
            controls = Controls(hub, links)
            add_command_routes(app, guard, controls)
            discovery = Discovery(
                known_hosts=lambda: {link.config.serial: link.host for link in links.values()},
                follow=lambda serial, host: _follow(links.by_serial(serial), host),
                port=config.discovery.port,
            )
            if config.discovery.enabled:
                await nursery.start(discovery.run)
            add_discovery_routes(app, guard, discovery)
            notifier = self.notifier = await nursery.start(Notifier(hub, config.notify).run)
            add_notify_routes(app, guard, notifier)
            power = self.power = await nursery.start(PowerService(hub, config.printers, power_store, config.power).run)
            add_power_routes(app, guard, hub, power, power_store)
            add_settings_routes(
                app, guard, config_path=config.source, current=lambda: self.config, reconfigure=self.reconfigure,
                pins=self.pins, wake_link=lambda printer_id: links[printer_id].follow(links[printer_id].host),
            )
            panel = await self._start_panel(config)
            # Quiet hours are one rule for the box: the panel's (time zone, clock sync) also holds notifications.
            notifier.quiet = lambda: self.panel is not None and self.panel.quiet()
            notifier.snapshot = functools.partial(_snapshot, hub, frames)
            notifier.job_energy = power.job_energy
            add_panel_routes(app, lambda: self.panel)
            box_names = functools.partial(names_this_box, listen_host=config.web.host)
            front = FrontDoor(app, config.web, native=first_match(native), box_names=box_names)
            port: int = await nursery.start(front.run)
            running = Running(
                hub=hub, port=port, urls=listen_urls(config.web.host, port), links=links, controls=controls,
                discovery=discovery, notifier=notifier, frames=frames,
            )
            running.panel = panel
            panel.url = running.url
            self._running = running
            running.power = power
            log.info("bambupi is ready: open %s", running.url)
            _notify_systemd("READY=1")
            interval = watchdog_interval(os.environ, os.getpid())
            if interval is not None:
                watchdog = Watchdog(
                    lambda timeout_s: front.serves("/healthz", timeout_s=timeout_s), interval, _notify_systemd
                )
                await nursery.start(watchdog.run)
            task_status.started(running)

    async def reconfigure(self, new: Config) -> dict[str, list[str]]:
        """Apply a changed config in place: printers are added, removed or reconnected with their new settings.

        Returns what was applied, and what takes effect only after a restart.
        """
        old, hub, links = self.config, self.hub, self.links
        applied: list[str] = []
        before = {p.id: p for p in old.printers}
        after = {p.id: p for p in new.printers}
        for printer_id in before.keys() - after.keys():
            links.stop(printer_id)
            self.frames.remove_printer(printer_id)
            await self.power.remove_printer(printer_id)
            hub.remove_printer(printer_id)
            applied.append(f"printer {printer_id} removed")
        for printer_id, printer in after.items():
            if printer_id not in before:
                hub.add_printer(printer)
                self.frames.add_printer(printer)
                await self.power.update_printer(printer)
                await links.start(printer)
                applied.append(f"printer {printer_id} added")
            elif printer != before[printer_id]:
                old_printer = before[printer_id]
                hub.update_printer_config(printer)
                self.frames.update_printer(printer)
                if await self.power.update_printer(printer):
                    change = "removed" if printer.plug is None else "set"
                    applied.append(f"printer {printer_id}: smart plug {change}")
                if dataclasses.replace(old_printer, plug=None) != dataclasses.replace(printer, plug=None):
                    await links.restart(printer)
                    applied.append(f"printer {printer_id} reconnected with its new settings")
        if old.notify != new.notify:
            self.notifier.set_channels(new.notify)
            applied.append("notification channels updated")
        if (old.panel, old.alerts) != (new.panel, new.alerts) and self.panel is not None:
            await self._restart_panel(new)
            applied.append("panel restarted with its new settings (quiet hours and time zone included)")
        restart = [
            name
            for name in ("web", "storage", "discovery", "camera")
            if getattr(old, name) != getattr(new, name)
        ]
        if restart == ["web"] and _same_but_password(old.web, new.web):
            restart = []
        self.config = new
        for name in restart:
            log.info("settings: %s changed; it takes effect when bambupi restarts", name)
        return {"applied": applied, "restart_required": restart}

    async def _start_panel(self, config: Config) -> Panel:
        panel = Panel(
            self.hub, config.panel, config.alerts, setup_errors=self.storage_folder / SETUP_ERRORS_FILE_NAME
        )
        panel.auto_off_warnings, panel.cancel_auto_off = self.power.auto_off_warnings, self.power.cancel_auto_off
        if self._running is not None:
            panel.url = self._running.url
        self._panel_task, _ = await Stoppable.start(self._nursery, panel.run)
        self.panel = panel
        if self._running is not None:
            self._running.panel = panel
        return panel

    async def _restart_panel(self, config: Config) -> None:
        """Stop the panel (its pins and screen released) and start one with the new settings."""
        if self._panel_task is not None:
            await self._panel_task.stop()
        self.panel = None
        await self._start_panel(config)


async def _snapshot(hub: StateHub, frames: FrameHub, printer_id: str) -> bytes | None:
    """A recent camera frame for a notification, connecting briefly if needed; None without a working camera."""
    if hub.has(printer_id) and hub.printer(printer_id)["camera"].get("status") in ("error", "off", "disabled"):
        return None  # known not to answer: do not hold the message for it
    frame = await frames.fresh_frame(printer_id, max_age_s=10.0, timeout_s=5.0)
    return frame.data if frame is not None else None


def _same_but_password(old: WebConfig, new: WebConfig) -> bool:
    return dataclasses.replace(old, admin_password_hash=None) == dataclasses.replace(new, admin_password_hash=None)


def _follow(link: PrinterLink | None, host: str) -> None:
    if link is not None:
        link.follow(host)


def first_match(routers: list[NativeRouter]) -> NativeRouter:
    """One native router made of several: the first that claims a request handles it."""

    def route(request: Request) -> NativeHandler | None:
        for router in routers:
            handler = router(request)
            if handler is not None:
                return handler
        return None

    return route


def listen_urls(host: str, port: int) -> list[str]:
    """URLs a person can open: the LAN address first when listening on all interfaces."""
    suffix = "" if port == 80 else f":{port}"
    if host in ("0.0.0.0", "::", ""):
        urls = [f"http://{ip}{suffix}/" for ip in _lan_addresses()]
        return [*urls, f"http://127.0.0.1{suffix}/"]
    shown = f"[{host}]" if ":" in host else host
    return [f"http://{shown}{suffix}/"]


def _lan_addresses() -> list[str]:
    # The address the kernel would use to reach the LAN; a UDP "connect" sends nothing.
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))
            address = str(probe.getsockname()[0])
    except OSError:
        return []
    return [] if address.startswith("127.") else [address]


def _notify_systemd(message: str) -> None:
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message.encode(), address)
    except OSError as exc:
        log.warning("could not notify systemd: %s", exc)
