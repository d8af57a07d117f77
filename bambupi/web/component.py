"""The web front door as a component: the Bottle app every component adds its routes to, the owner's login and
guard, the pages, ``/ws`` and the settings, served on one port (and, under systemd, the watchdog that asks it)."""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from bambupi.component import RESTART, Applied, Web
from bambupi.config import Config, WebConfig
from bambupi.lan import lan_address
from bambupi.printer.tls_pins import PinStore
from bambupi.state_hub import StateHub
from bambupi.watchdog import Watchdog, watchdog_interval
from bambupi.web.api import make_app
from bambupi.web.auth import Auth, names_this_box
from bambupi.web.frontdoor import FrontDoor, NativeHandler, NativeRouter, Request
from bambupi.web.login import add_login_routes
from bambupi.web.pages import add_page_routes
from bambupi.web.people import add_people_routes
from bambupi.web.settings import Reconfigure, add_settings_routes
from bambupi.web.users import UserStore
from bambupi.web.ws import HealthFeed, WebSocketService

log = logging.getLogger("bambupi")


class WebComponent:
    """Made first (every other component adds its routes to :attr:`web`), started last (once all routes exist)."""

    name = "web"
    sections = ("web",)

    def __init__(
        self,
        hub: StateHub,
        config: Config,
        *,
        health: Callable[[], dict[str, Any]],
        current: Callable[[], Config],
        reconfigure: Reconfigure,
        pins: PinStore,
        board: HealthFeed | None = None,
        users_file: Path | None = None,
    ) -> None:
        self._hub = hub
        self._config = config.web
        self._source = config.source
        self._current = current
        self._reconfigure = reconfigure
        self._pins = pins
        app = make_app(hub, health=health)
        # The people besides the owner (docs/users.md); without a data folder (a bare test app) the owner alone.
        users = UserStore(users_file) if users_file is not None else None
        auth = Auth(
            config.web.admin_password_hash, session_hours=config.web.session_hours, config_path=config.source,
            users=users,
        )
        guard = add_login_routes(app, auth, config_path=config.source, camera_role=config.web.camera_role)
        self._auth = auth
        self.web = Web(app, guard)
        self.live = WebSocketService(hub, health=board)  # /ws: its one watcher runs beside the front door
        self.port: int | None = None
        self.urls: list[str] = []

    def health(self) -> dict[str, Any]:
        """The people file's part of ``/healthz``: a broken one leaves only the first owner able to log in."""
        users = self._auth.users
        if users is None:
            return {}
        return {"users": {"ok": users.problem is None, "error": users.problem}}

    def url(self) -> str | None:
        """The address a person opens, once the front door listens."""
        return self.urls[0] if self.urls else None

    def add_routes(self, web: Web) -> None:
        add_page_routes(web.app, self._hub)
        add_people_routes(web.app, self._auth)
        web.native.append(self.live.router)
        add_settings_routes(
            web.app, config_path=self._source, current=self._current, reconfigure=self._reconfigure, pins=self._pins
        )

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        config = self._config
        box_names = functools.partial(names_this_box, listen_host=config.host)
        front = FrontDoor(self.web.app, config, native=first_match(self.web.native), box_names=box_names)
        async with trio.open_nursery() as nursery:
            await nursery.start(self.live.run)
            port: int = await nursery.start(front.run)
            self.port, self.urls = port, listen_urls(config.host, port)
            interval = watchdog_interval(os.environ, os.getpid())
            if interval is not None:
                watchdog = Watchdog(
                    lambda timeout_s: front.serves("/healthz", timeout_s=timeout_s), interval, notify_systemd
                )
                await nursery.start(watchdog.run)
            task_status.started(port)

    async def apply(self, old: Config, new: Config) -> Applied:
        if _live_part(old.web) != _live_part(new.web):
            return RESTART  # where it listens, its limits, the sessions' length
        # The login reads the password's hash from the file at every try; the Guard asks camera_role at every one.
        if old.web.camera_role == new.web.camera_role:
            return []
        self.web.guard.camera_role = new.web.camera_role
        who = {None: "anyone on the network", "viewer": "anyone logged in", "operator": "operators and owners",
               "owner": "owners only"}[new.web.camera_role]
        return [f"web: the camera is for {who}"]


def _live_part(web: WebConfig) -> WebConfig:
    """What needs a restart to change: all but the password's hash and who sees the camera."""
    return dataclasses.replace(web, admin_password_hash=None, camera_access=None, camera_requires_login=False)


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
        address = lan_address()
        urls = [] if address is None else [f"http://{address}{suffix}/"]
        return [*urls, f"http://127.0.0.1{suffix}/"]
    shown = f"[{host}]" if ":" in host else host
    return [f"http://{shown}{suffix}/"]


def notify_systemd(message: str) -> None:
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message.encode(), address)
    except OSError as exc:
        log.warning("could not notify systemd: %s", exc)
