"""The facade's own TLS certificate: self-signed, made once, kept in the box's data folder.

Apps connect to a printer over TLS without checking its certificate against a CA (it is issued by Bambu's own CA for
the serial, never for an address): ha-bambulab, bambulabs_api, bambu-connect and the ESP32 screens all accept any
certificate, as they must with a printer. So the facade needs no CA, only a certificate of its own that stays the
same across restarts (an app that pins what it saw first keeps working).

It is made with the ``openssl`` command (Debian's ``openssl`` package, which ``ca-certificates`` brings on every
Raspberry Pi OS): no new Python dependency for one key made once. RSA 2048, the key type every TLS stack an ESP32
screen uses (mbedTLS) takes; ten years valid. The key file is readable by the service's user only.
"""

from __future__ import annotations

import logging
import os
import shutil
import ssl
from pathlib import Path
from typing import Final

import trio

log = logging.getLogger("bambupi.facade")

CERT_NAME: Final = "facade-cert.pem"
KEY_NAME: Final = "facade-key.pem"
MAKE_TIMEOUT_S: Final = 120.0  # RSA 2048 takes a few seconds on a Pi 3
VALID_DAYS: Final = 3650
SUBJECT: Final = "/CN=bambupi facade"


class CertificateError(Exception):
    """The certificate could not be made or read; the message says why, for /healthz."""


async def ensure_certificate(folder: Path) -> tuple[Path, Path]:
    """The certificate and key in ``folder``, made now if either is missing or unreadable."""
    cert, key = folder / CERT_NAME, folder / KEY_NAME
    if cert.is_file() and key.is_file():
        try:
            await trio.to_thread.run_sync(server_context, cert, key)
            return cert, key
        except CertificateError as exc:
            log.warning("facade: the certificate in %s cannot be used (%s); making a new one", folder, exc)
    await _make(folder, cert, key)
    return cert, key


async def _make(folder: Path, cert: Path, key: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise CertificateError("the openssl command is not installed (sudo apt install openssl)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CertificateError(f"cannot create {folder}: {exc.strerror or exc}") from None
    new_cert, new_key = folder / f".{CERT_NAME}.new", folder / f".{KEY_NAME}.new"
    command = [
        openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", str(VALID_DAYS),
        "-subj", SUBJECT, "-keyout", str(new_key), "-out", str(new_cert),
    ]  # fmt: skip
    old_umask = os.umask(0o077)  # the key is born readable by its owner only
    try:
        with trio.fail_after(MAKE_TIMEOUT_S):
            done = await trio.run_process(command, capture_stdout=True, capture_stderr=True, check=False)
    except trio.TooSlowError:
        raise CertificateError(f"openssl did not make a key within {MAKE_TIMEOUT_S:g} s") from None
    except OSError as exc:
        raise CertificateError(f"cannot run openssl: {exc.strerror or exc}") from None
    finally:
        os.umask(old_umask)
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise CertificateError(f"openssl failed ({done.returncode}): {said[-1] if said else 'no message'}")
    # The key first: a certificate without its key is never the pair read at the next start.
    new_key.replace(key)
    new_cert.replace(cert)
    log.info("facade: made the box's own TLS certificate in %s", folder)


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context with the facade's certificate: TLS 1.2 and newer (printers speak 1.2; apps take either)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise CertificateError(f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}") from None
    return context
