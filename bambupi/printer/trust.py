"""Trusting a printer's new certificate: the one flow behind `bambupi trust` and the settings page's button.

A firmware update can give a printer a new certificate; the link and the camera then refuse it (see
:class:`~bambupi.printer.tls_pins.TrustOnFirstUse`) until the user says the new one is the printer's. This fetches what
the printer presents now, pins it, and forgets the camera's pin, which is taken afresh at its next connection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio

from bambupi.config import PrinterConfig
from bambupi.printer.tls_pins import CertificateRefused, PinStore, camera_pin_key, peer_fingerprint, printer_tls_context

log = logging.getLogger("bambupi.pins")


class Unreachable(Exception):
    """The printer's certificate could not be fetched; ``str()`` says where and why, for the user."""


@dataclass(frozen=True)
class Trusted:
    fingerprint: str
    previous: str | None
    problem: str | None  # why the pin could not be saved (it is trusted until the service restarts), or None
    overridden: bool  # the config file's tls_fingerprint takes precedence over the pin


async def probe_fingerprint(config: PrinterConfig) -> str:
    """Connect with TLS only (no login, nothing sent) and return the fingerprint the printer presents now."""
    where = f"{config.host}:{config.mqtt_port}"
    try:
        with trio.fail_after(config.connect_timeout_s):
            stream = await trio.open_ssl_over_tcp_stream(
                config.host, config.mqtt_port, ssl_context=printer_tls_context()
            )
            try:
                await stream.do_handshake()
                der = stream.getpeercert(binary_form=True)
            finally:
                await trio.aclose_forcefully(stream)
        return peer_fingerprint(der, f"the printer at {where}", config.id)
    except trio.TooSlowError:
        raise Unreachable(f"cannot reach {where}: timeout") from None
    except (OSError, trio.BrokenResourceError) as exc:
        raise Unreachable(f"cannot reach {where}: {exc or type(exc).__name__}") from None
    except CertificateRefused as refused:
        raise Unreachable(str(refused)) from None


async def trust_current_certificate(config: PrinterConfig, pins: PinStore) -> Trusted:
    """Pin the certificate ``config``'s printer presents now (:class:`Unreachable` when it cannot be fetched)."""
    seen = await probe_fingerprint(config)

    def pin() -> Trusted:  # file writes, flushed to the card: off the event loop
        previous = pins.get(config.id)
        saved = pins.set(config.id, seen)
        pins.forget(camera_pin_key(config.id))
        log.info("%s: now trusting certificate %s (was %s)", config.id, seen, previous)
        return Trusted(seen, previous, None if saved else pins.problem, bool(config.tls_fingerprint))

    return await trio.to_thread.run_sync(pin)
