"""systemd's watchdog: ``WATCHDOG=1`` at half the interval systemd asks for, and only while the service is healthy.

Healthy means the web front door answers ``GET /healthz`` with 200 over a real connection to its own port. That
one request needs everything the box is for to be alive: the trio loop (which runs this task, accepts the
connection and owns the hub), a free Bottle worker thread, and the hub answering that thread. When any of them hangs
the keep-alives stop, and systemd restarts the service (``WatchdogSec`` with ``Restart=always`` in the unit).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import trio

log = logging.getLogger("bambupi.watchdog")


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between keep-alives (half of ``WATCHDOG_USEC``), or None when systemd set no watchdog for us."""
    usec = environ.get("WATCHDOG_USEC", "")
    owner = environ.get("WATCHDOG_PID", "")
    if owner and owner != str(pid):
        return None  # meant for another process (we were started by it, e.g. a wrapper script)
    if not usec.isdigit() or int(usec) == 0:
        return None
    return int(usec) / 2 / 1_000_000


def probe_host(listen_host: str) -> str:
    """Where to reach our own front door: loopback when it listens on every address."""
    if listen_host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if listen_host == "::":
        return "::1"
    return listen_host


async def front_door_answers(host: str, port: int, timeout_s: float) -> bool:
    """True when ``GET /healthz`` on host:port gets a 200 status line within ``timeout_s``."""
    with trio.move_on_after(timeout_s):
        try:
            stream = await trio.open_tcp_stream(host, port)
            async with stream:
                await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: watchdog\r\nConnection: close\r\n\r\n")
                head = b""
                while b"\r\n" not in head and len(head) < 1024:
                    chunk = await stream.receive_some(1024)
                    if not chunk:
                        break
                    head += chunk
                return head.startswith((b"HTTP/1.1 200 ", b"HTTP/1.0 200 "))
        except (OSError, trio.BrokenResourceError):
            return False
    return False


class Watchdog:
    def __init__(self, host: str, port: int, interval_s: float, notify: Callable[[str], None]) -> None:
        self.host = host
        self.port = port
        self.interval_s = interval_s
        self.notify = notify

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        healthy = True
        while True:
            # The probe may take at most half the interval, so a keep-alive is never later than systemd's limit.
            if await front_door_answers(self.host, self.port, self.interval_s / 2):
                self.notify("WATCHDOG=1")
                if not healthy:
                    log.info("watchdog: the web front door answers again")
                healthy = True
            elif healthy:
                log.warning("watchdog: the web front door did not answer /healthz; systemd will restart bambupi "
                            "if it stays silent")
                healthy = False
            await trio.sleep(self.interval_s)
