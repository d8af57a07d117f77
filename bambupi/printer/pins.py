"""Certificate pins: the SHA-256 fingerprint of each printer's TLS certificate, trusted on first use.

Printers present a self-signed chain whose name does not match their IP, so the usual checks cannot
apply; pinning what we saw first means a different device on the printer's address is noticed before
the access code is sent to it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger("bambupi.pins")


def camera_pin_key(printer_id: str) -> str:
    """The camera's pin, beside the printer's: a P1/A1 camera port is a TLS server of its own, and it is sent the
    access code too."""
    return f"{printer_id}/camera"


def fingerprint(der: bytes) -> str:
    """``sha256:<hex>`` of a DER certificate."""
    return "sha256:" + hashlib.sha256(der).hexdigest()


class PinStore:
    """A small JSON file ``{printer_id: "sha256:..."}`` beside the database, re-read on every lookup.

    Re-reading keeps the running service and ``bambupi trust`` (a separate process) in agreement
    without any signalling: a trusted certificate is accepted on the link's next attempt.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.error("cannot read certificate pins from %s (%s); treating as empty", self.path, exc)
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): str(v) for k, v in data.items() if isinstance(v, str)}

    def get(self, printer_id: str) -> str | None:
        return self._read().get(printer_id)

    def set(self, printer_id: str, pin: str) -> None:
        pins = self._read()
        pins[printer_id] = pin
        self._write(pins)

    def forget(self, printer_id: str) -> bool:
        pins = self._read()
        if pins.pop(printer_id, None) is None:
            return False
        self._write(pins)
        return True

    def _write(self, pins: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".pins-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(pins, f, indent=2, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
