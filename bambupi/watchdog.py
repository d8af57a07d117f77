"""systemd's watchdog: ``WATCHDOG=1`` at half the interval systemd asks for, and only while the service is healthy.

Healthy means the web app answers ``GET /healthz`` with 200, asked in-process (``FrontDoor.serves``). That one
request needs everything the box is for to be alive: the trio loop (which runs this task and owns the hub), a free
Bottle worker thread, and the hub answering that thread. When any of them hangs the keep-alives stop, and systemd
restarts the service (``WatchdogSec`` with ``Restart=always`` in the unit). It does not go through the public port:
clients holding every connection slot (a slowloris) make the box refuse them, not restart.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

import trio

log = logging.getLogger("bambupi.watchdog")

# (timeout_s) -> healthy
HealthCheck = Callable[[float], Awaitable[bool]]


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between keep-alives (half of ``WATCHDOG_USEC``), or None when systemd set no watchdog for us."""
    usec = environ.get("WATCHDOG_USEC", "")
    owner = environ.get("WATCHDOG_PID", "")
    if owner and owner != str(pid):
        return None  # meant for another process (we were started by it, e.g. a wrapper script)
    if not usec.isdigit() or int(usec) == 0:
        return None
    return int(usec) / 2 / 1_000_000


class Watchdog:
    def __init__(self, healthy: HealthCheck, interval_s: float, notify: Callable[[str], None]) -> None:
        self.healthy = healthy
        self.interval_s = interval_s
        self.notify = notify

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        healthy = True
        while True:
            # The check may take at most half the interval, so a keep-alive is never later than systemd's limit.
            if await self.healthy(self.interval_s / 2):
                self.notify("WATCHDOG=1")
                if not healthy:
                    log.info("watchdog: the web app answers /healthz again")
                healthy = True
            elif healthy:
                log.warning("watchdog: the web app did not answer /healthz; systemd will restart bambupi "
                            "if it stays silent")
                healthy = False
            await trio.sleep(self.interval_s)
