"""The panel as a component: a fresh :class:`Panel` at every start (its pins and screen opened anew), restarted with
new ``[panel]`` settings by the settings page; ``/api/panel`` reads whichever runs now."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from bambupi.component import Applied, Web
from bambupi.config import Config, PanelConfig
from bambupi.panel.brightness import PlugStates
from bambupi.panel.routes import add_panel_routes
from bambupi.panel.service import AutoOffCountdowns, Commands, LowFilament, Panel, Quiet
from bambupi.state_hub import StateHub
from bambupi.stoppable import Stoppable


class PanelComponent:
    name = "panel"
    sections = ("panel",)

    def __init__(
        self,
        hub: StateHub,
        config: PanelConfig,
        *,
        quiet_hours: Quiet,
        auto_off: AutoOffCountdowns,
        filament: LowFilament,
        commands: Commands | None = None,
        url: Callable[[], str | None],
        setup_errors: Path | None = None,
        plugs: PlugStates | None = None,
    ) -> None:
        self._hub = hub
        self._config = config
        self._quiet_hours = quiet_hours
        self._auto_off = auto_off
        self._filament = filament
        self._commands = commands
        self._url = url
        self._setup_errors = setup_errors
        self._plugs = plugs  # a printer whose smart plug reads off counts as off: the box may sleep
        self.panel: Panel | None = None  # the running one
        self._nursery: trio.Nursery | None = None
        self._task: Stoppable | None = None

    def health(self) -> dict[str, Any]:
        """``/healthz``'s ``light_sensor`` entry: a sensor configured or found (a missing one is a warning there)."""
        panel = self.panel
        if panel is None or (self._config.light_sensor == "auto" and not panel.light_sensor.found):
            return {}
        return {"light_sensor": panel.light_sensor.health()}

    def add_routes(self, web: Web) -> None:
        add_panel_routes(web.app, lambda: self.panel)

    async def run(self, *, task_status: trio.TaskStatus[PanelComponent] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await self._start()
                task_status.started(self)
                await trio.sleep_forever()  # open for the next panel while the settings restart it
        finally:
            self._nursery = self._task = self.panel = None

    async def apply(self, old: Config, new: Config) -> Applied:
        self._config = new.panel
        if self._nursery is None:
            return ["panel settings saved; the panel takes them when it starts again"]
        if self._task is not None:
            await self._task.stop()  # its pins and screen released before the new one opens them
        await self._start()
        return ["panel restarted with its new settings"]

    async def _start(self) -> None:
        assert self._nursery is not None
        panel = Panel(
            self._hub, self._config, self._quiet_hours, auto_off=self._auto_off, filament=self._filament,
            commands=self._commands, url=self._url, setup_errors=self._setup_errors, plugs=self._plugs,
        )
        self._task, _ = await Stoppable.start(self._nursery, panel.run)
        self.panel = panel
