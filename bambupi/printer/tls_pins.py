"""Certificate pins: the SHA-256 fingerprint of each printer's TLS certificate, trusted on first use.

Printers present a self-signed chain whose name does not match their IP, so the usual checks cannot
apply; pinning what we saw first means a different device on the printer's address is noticed before
the access code is sent to it. Everything that sends a printer its access code over TLS (the MQTT link, the
port-6000 camera) and the probe behind "trust the new certificate" use the one context and the one check here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import ssl
from pathlib import Path

from bambupi.atomic_file import write_atomically

log = logging.getLogger("bambupi.pins")


def camera_pin_key(printer_id: str) -> str:
    """The camera's pin, beside the printer's: a P1/A1 camera port is a TLS server of its own, and it is sent the
    access code too."""
    return f"{printer_id}/camera"


def fingerprint(der: bytes) -> str:
    """``sha256:<hex>`` of a DER certificate."""
    return "sha256:" + hashlib.sha256(der).hexdigest()


def normal_pin(pin: str) -> str:
    """A pin as :func:`fingerprint` writes it, from any spelling a user may paste (upper case, colons, no prefix)."""
    return "sha256:" + pin.lower().removeprefix("sha256:").replace(":", "")


def printer_tls_context() -> ssl.SSLContext:
    """The client context for a printer's TLS servers (MQTT on 8883, the camera on 6000).

    The printer's certificate names its serial, not its address, and chains to Bambu's private CA: neither the
    chain nor the name can be checked, so identity comes from the pinned fingerprint (:class:`TrustOnFirstUse`).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class CertificateRefused(Exception):
    """The device at a printer's address presents no certificate or another than the pinned one: nothing is sent.

    ``str()`` says so in words a user can act on, the same for the link and the camera; never holds a secret.
    """

    def __init__(self, where: str, seen: str | None, trusted: str | None, printer_id: str) -> None:
        if seen is None:
            reason = f"{where} presented no certificate; the access code was not sent"
        else:
            reason = (
                f"certificate changed: {where} presents a different certificate ({seen}) than the trusted one "
                f"({trusted}); the access code was not sent. If the printer's firmware was just updated, run "
                f"`bambupi trust {printer_id}` or use \"Trust the printer's new certificate\" in the settings"
            )
        super().__init__(reason)
        self.seen = seen
        self.trusted = trusted


def peer_fingerprint(der: bytes | None, where: str, printer_id: str) -> str:
    """The fingerprint of the certificate a TLS peer presented (``getpeercert(binary_form=True)``)."""
    if not der:
        raise CertificateRefused(where, None, None, printer_id)
    return fingerprint(der)


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
        write_atomically(self.path, json.dumps(pins, indent=2, sort_keys=True).encode("utf-8"))


class TrustOnFirstUse:
    """The pin check for one TLS server of one printer, run after the handshake and before the access code goes out.

    ``check`` refuses a certificate other than the trusted one: ``configured`` (the config file's
    ``tls_fingerprint``, which takes precedence) or the one pinned under ``key``. ``accept`` pins what was seen
    when nothing is trusted yet; callers call it once the device accepted the access code, so a wrong address
    (a device that is no printer) is never pinned.
    """

    def __init__(self, pins: PinStore, key: str, *, printer_id: str, configured: str | None = None) -> None:
        self.pins = pins
        self.key = key
        self.printer_id = printer_id
        self.configured = configured

    def trusted(self) -> str | None:
        pin = self.configured or self.pins.get(self.key)
        return None if pin is None else normal_pin(pin)

    def check(self, der: bytes | None, where: str) -> str:
        """The fingerprint seen; :class:`CertificateRefused` when it is not the trusted one (or there is none)."""
        seen = peer_fingerprint(der, where, self.printer_id)
        trusted = self.trusted()
        if trusted is not None and seen != trusted:
            raise CertificateRefused(where, seen, trusted, self.printer_id)
        return seen

    def accept(self, seen: str) -> None:
        if self.trusted() is None:
            self.pins.set(self.key, seen)
            log.info("%s: pinned the certificate of %s: %s", self.printer_id, self.key, seen)
