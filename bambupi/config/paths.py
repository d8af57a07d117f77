"""Where bambupi keeps things: the config file, the database and, beside it, the certificate pins."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Final

from bambupi.config.model import DEFAULT_STORAGE_PATH, Config

log = logging.getLogger("bambupi.config")

DEFAULT_CONFIG_PATH = Path("/etc/bambupi/bambupi.toml")
EXAMPLE_CONFIG_PATH: Final = Path(__file__).resolve().parent.parent / "data" / "bambupi.example.toml"
PINS_FILE_NAME: Final = "tls-pins.json"
# Beside the database: the SD-card image's first boot writes here why it rejected the bambupi.toml on the boot
# partition (one problem per line), so the OLED can say so; removed when a file is applied.
SETUP_ERRORS_FILE_NAME: Final = "setup-errors.txt"


def user_data_dir() -> Path:
    """``$XDG_DATA_HOME/bambupi``, or ``~/.local/share/bambupi``."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "bambupi"


def _unwritable(folder: Path) -> str | None:
    """Why files cannot be created in ``folder`` (creating it if needed), or None when they can.

    Creating a real file is the only honest test: access() says yes to root on a read-only mount, and a parent
    that is a regular file fails only on creation.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


_fallbacks_logged: set[Path] = set()


def resolve_storage_path(configured: Path, *, explicit: bool) -> Path:
    """Where the database really lives: ``configured``, or the same file name in :func:`user_data_dir` when
    ``configured``'s folder cannot be created or written (a developer's machine has no /var/lib/bambupi).

    ``explicit`` says the path came from the config file (the warning then names ``storage.path``).
    The fallback is logged once per path.

    A database that is already there stays where it is, even when its folder cannot be written now (an SD card
    the kernel remounted read-only): beside it are the printers' certificate pins and the facade's certificate,
    which a fresh folder would silently replace (trusting whatever certificate a printer shows next, and a new one
    for every app), and its history would seem gone. The parts that cannot write then say so in /healthz.
    """
    why = _unwritable(configured.parent)
    if why is None or configured.is_file():
        return configured
    fallback = user_data_dir() / configured.name
    if configured not in _fallbacks_logged:
        _fallbacks_logged.add(configured)
        what = f"storage.path {configured}" if explicit else f"default storage path {configured}"
        also = _unwritable(fallback.parent)
        log.warning(
            "%s: cannot write to its folder (%s); using %s instead%s",
            what,
            why,
            fallback,
            f" (which is not writable either: {also})" if also else "",
        )
    return fallback


def pins_file(storage_folder: Path) -> Path:
    """The certificate pins (printers' and cameras'), kept in the folder of the database."""
    return storage_folder / PINS_FILE_NAME


def pins_path(config: Config) -> Path:
    """The certificate pins of the box that runs ``config`` (its database's folder, after any fallback)."""
    explicit = config.storage.path != DEFAULT_STORAGE_PATH
    return pins_file(resolve_storage_path(config.storage.path, explicit=explicit).parent)
