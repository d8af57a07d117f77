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

    A pin that cannot be written (a full or read-only disk) is kept in memory and written with the next change:
    the link must not die on the disk, and a pin only in memory still protects the access code until a restart.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._unsaved: dict[str, str | None] = {}  # printer id -> pin (None: forgotten) not yet on disk
        self.problem: str | None = None  # why the last write failed, until one succeeds

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

    def _current(self) -> dict[str, str]:
        pins = self._read()
        for printer_id, pin in self._unsaved.items():
            if pin is None:
                pins.pop(printer_id, None)
            else:
                pins[printer_id] = pin
        return pins

    def get(self, printer_id: str) -> str | None:
        return self._current().get(printer_id)

    def set(self, printer_id: str, pin: str) -> bool:
        """Pin ``pin`` for ``printer_id``; False when it could only be kept in memory (see ``problem``)."""
        self._unsaved[printer_id] = pin
        return self._save()

    def forget(self, printer_id: str) -> bool:
        if self.get(printer_id) is None:
            return False
        self._unsaved[printer_id] = None
        self._save()
        return True

    def _save(self) -> bool:
        pins = self._current()
        try:
            self._write(pins)
        except OSError as exc:
            problem = f"cannot save certificate pins to {self.path} ({exc.strerror or exc}); kept in memory"
            if problem != self.problem:
                log.error("%s", problem)
            self.problem = problem
            return False
        if self.problem is not None:
            log.info("certificate pins saved to %s again", self.path)
        self.problem = None
        self._unsaved.clear()
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
