"""Quiet hours: one rule for the whole box, from ``[alerts]``. The panel's buzzer and the notifications both ask the
same :class:`QuietHours`, so a change on the settings page holds both at once, without restarting either."""

from __future__ import annotations

import time
import zoneinfo
from collections.abc import Callable
from datetime import datetime, tzinfo
from datetime import time as time_of_day
from pathlib import Path
from typing import Final

import trio

from bambupi.component import Applied, Web
from bambupi.config import AlertsConfig, Config

TIMESYNC_DIR: Final = Path("/run/systemd/timesync")


def system_clock_synced(timesync: Path = TIMESYNC_DIR, wall: Callable[[], float] = time.time) -> bool:
    """True once the system clock can be trusted for clock times.

    With systemd-timesyncd the flag file ``synchronized`` appears on the first NTP sync (a Pi starts from the last
    saved time, which looks plausible but is wrong); without it, a year before 2024 means the clock was never set.
    """
    if timesync.is_dir():
        return (timesync / "synchronized").exists()
    return datetime.fromtimestamp(wall()).year >= 2024


def in_quiet_hours(local: datetime | time_of_day, quiet: tuple[tuple[int, int], tuple[int, int]] | None) -> bool:
    """True inside ``quiet`` ((start h, m), (end h, m)), which may run across midnight; the end is excluded."""
    if quiet is None:
        return False
    at = local.time() if isinstance(local, datetime) else local
    start, end = time_of_day(*quiet[0]), time_of_day(*quiet[1])
    if start < end:
        return start <= at < end
    return at >= start or at < end


class QuietHours:
    """The component of ``[alerts]``' quiet hours and time zone (its HMS-text keys belong to the HMS texts'
    refresher, which owns ``[alerts]`` too)."""

    name = "alerts"
    sections = ("alerts",)

    def __init__(
        self,
        alerts: AlertsConfig,
        *,
        clock_synced: Callable[[], bool] = system_clock_synced,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.clock_synced = clock_synced
        self.wall = wall
        self.alerts = alerts
        self.tz = _zone(alerts)

    def quiet(self) -> bool:
        """Inside the quiet hours (never while the clock is unsynchronised: its time of day is a guess)."""
        if self.alerts.quiet_hours is None or not self.clock_synced():
            return False
        return in_quiet_hours(datetime.fromtimestamp(self.wall(), self.tz), self.alerts.quiet_hours)

    def add_routes(self, web: Web) -> None:
        pass

    async def run(self, *, task_status: trio.TaskStatus[QuietHours] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started(self)  # nothing runs: the panel and the notifier ask when they need to

    async def apply(self, old: Config, new: Config) -> Applied:
        self.alerts, self.tz = new.alerts, _zone(new.alerts)
        # The hub reads ending_soon_min from the service's config at each change: saved is applied.
        soon = new.alerts.ending_soon_min
        said = [] if old.alerts.ending_soon_min == soon else [
            f"'done soon' heads-up {soon:g} min before a print's end" if soon > 0 else "'done soon' heads-up off"
        ]
        if (old.alerts.quiet_hours, old.alerts.time_zone) == (new.alerts.quiet_hours, new.alerts.time_zone):
            return said  # another key of [alerts] changed: the HMS texts' refresher applies it
        return ["quiet hours and time zone updated (panel and notifications)", *said]


def _zone(alerts: AlertsConfig) -> tzinfo | None:
    return zoneinfo.ZoneInfo(alerts.time_zone) if alerts.time_zone else None
