"""Printer discovery: Bambu printers announce themselves with SSDP NOTIFY datagrams on UDP port 2021.

The box listens, lists printers it hears that are not configured yet (the settings page offers them for one-tap
adding), and follows a configured printer to its new address by serial when DHCP moved it.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import trio

from bambupi.printer_models import MODEL_BY_SSDP_CODE

log = logging.getLogger("bambupi.discovery")

SSDP_PORT: Final = 2021
SEARCH_TARGET: Final = "urn:bambulab-com:device:3dprinter:1"
MAX_DATAGRAM: Final = 4096
MAX_CANDIDATES: Final = 64
FORGET_AFTER_S: Final = 30 * 60.0  # printers announce every few seconds; silence this long means gone


@dataclass(frozen=True)
class Announcement:
    serial: str
    host: str
    model: str
    name: str | None
    signal_dbm: int | None
    connection: str | None  # "lan" (LAN only mode) or "cloud"
    seen_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "host": self.host,
            "model": self.model,
            "name": self.name,
            "signal_dbm": self.signal_dbm,
            "connection": self.connection,
            "seen_at": self.seen_at,
        }


def parse_announcement(data: bytes, sender: str, *, now: float) -> Announcement | None:
    """The printer an SSDP datagram announces, or None when it is not a Bambu printer's announcement."""
    try:
        text = data[:MAX_DATAGRAM].decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = text.replace("\r\n", "\n").split("\n")
    if not lines or not lines[0].upper().startswith(("NOTIFY ", "HTTP/1.1 200")):
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    if SEARCH_TARGET not in (headers.get("nt"), headers.get("st")):
        return None
    serial = headers.get("usn", "").upper()
    if not (8 <= len(serial) <= 20 and serial.isalnum()):
        return None
    host = headers.get("location", "") or sender
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        return None
    code = headers.get("devmodel.bambu.com", "")
    signal = headers.get("devsignal.bambu.com", "")
    try:
        signal_dbm: int | None = int(signal)
    except ValueError:
        signal_dbm = None
    return Announcement(
        serial=serial,
        host=host,
        model=MODEL_BY_SSDP_CODE.get(code.upper(), code[:32] or "unknown"),  # unknown codes pass through
        name=headers.get("devname.bambu.com", "")[:64] or None,
        signal_dbm=signal_dbm,
        connection=headers.get("devconnect.bambu.com") or None,
        seen_at=now,
    )


class Discovery:
    """Listens for announcements; ``follow(serial, host)`` is called when a known serial shows a new address."""

    def __init__(
        self,
        known_hosts: Callable[[], dict[str, str]],
        follow: Callable[[str, str], None],
        *,
        host: str = "0.0.0.0",
        port: int = SSDP_PORT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._known_hosts = known_hosts  # serial -> configured/current host
        self._follow = follow
        self.host = host
        self.port = port
        self._clock = clock
        self._candidates: dict[str, Announcement] = {}
        self.ignored = 0
        self.listening = False

    def candidates(self) -> list[Announcement]:
        """Printers heard recently that are not configured."""
        now = self._clock()
        known = self._known_hosts()
        return [
            a for a in self._candidates.values() if a.serial not in known and now - a.seen_at < FORGET_AFTER_S
        ]

    def handle(self, data: bytes, sender: str) -> Announcement | None:
        announcement = parse_announcement(data, sender, now=self._clock())
        if announcement is None:
            self.ignored += 1
            return None
        if announcement.serial not in self._candidates and len(self._candidates) >= MAX_CANDIDATES:
            oldest = min(self._candidates.values(), key=lambda a: a.seen_at)
            del self._candidates[oldest.serial]
        self._candidates[announcement.serial] = announcement
        current = self._known_hosts().get(announcement.serial)
        if current is not None and current != announcement.host:
            log.info("printer %s moved from %s to %s; following it", announcement.serial, current, announcement.host)
            self._follow(announcement.serial, announcement.host)
        return announcement

    async def run(self, *, task_status: trio.TaskStatus[Discovery] = trio.TASK_STATUS_IGNORED) -> None:
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        try:
            await sock.bind((self.host, self.port))
        except OSError as exc:
            # Discovery is a convenience: without it the box still works with addresses from the config.
            log.warning("printer discovery is off: cannot listen on UDP %s:%d (%s)", self.host, self.port, exc)
            sock.close()
            task_status.started(self)
            return
        self.port = sock.getsockname()[1]
        self.listening = True
        task_status.started(self)
        with sock:
            while True:
                data, address = await sock.recvfrom(MAX_DATAGRAM)
                self.handle(data, address[0])
