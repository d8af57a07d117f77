"""Fetching the job's 3MF from the printer: which paths to try, and the whole fetch under one deadline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from bambupi.printer.tls_pins import PinStore
from bambupi.secret import Secret

FTPS_PORT: Final = 990


@dataclass(frozen=True)
class FtpsTarget:
    """A printer's FTPS server. Its certificate must be the one pinned for ``printer_id`` (the MQTT link's pin, or the
    config's ``tls_fingerprint`` which takes precedence), the printers' one certificate for MQTT and FTPS alike."""

    host: str
    access_code: Secret
    serial: str
    pins: PinStore
    model: str
    printer_id: str
    configured_pin: str | None = None  # the config file's tls_fingerprint
    port: int = FTPS_PORT


@dataclass(frozen=True)
class JobFileLimits:
    max_bytes: int = 200 * 1024 * 1024  # [history] max_file_mb: a larger 3MF is refused with the reason
    deadline_s: float = 120.0  # [history] fetch_timeout_s: the whole fetch, every candidate path
