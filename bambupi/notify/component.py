"""Notifications as a component: the notifier (channels, quiet hours, retries), its log and its routes."""

from __future__ import annotations

from collections.abc import Callable

import trio

from bambupi.component import Applied, Web
from bambupi.config import Config, NotifyConfig
from bambupi.notify.notifier import JobEnergy, Notifier, Snapshot
from bambupi.notify.routes import add_notify_routes
from bambupi.state_hub import StateHub


class NotifyComponent:
    name = "notify"
    sections = ("notify",)

    def __init__(
        self,
        hub: StateHub,
        channels: tuple[NotifyConfig, ...],
        *,
        quiet: Callable[[], bool],
        snapshot: Snapshot,
        job_energy: JobEnergy,
    ) -> None:
        self.notifier = Notifier(hub, channels, quiet=quiet, snapshot=snapshot, job_energy=job_energy)

    def add_routes(self, web: Web) -> None:
        add_notify_routes(web.app, self.notifier)

    async def run(self, *, task_status: trio.TaskStatus[Notifier] = trio.TASK_STATUS_IGNORED) -> None:
        await self.notifier.run(task_status=task_status)

    async def apply(self, old: Config, new: Config) -> Applied:
        self.notifier.set_channels(new.notify)
        return ["notification channels updated"]
