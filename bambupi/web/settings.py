"""The settings: ``GET/POST /api/settings`` and the settings page (trusting a printer's new certificate, which the
page offers too, is the printer's route: ``bambupi.printer.routes``).

Reading and writing both need the owner's session. The file is edited with tomlkit (comments and order survive)
and written atomically; the running service then applies what it can in place. A read gives the file's version
and a save must send it back: a file changed since (by hand, another page, `bambupi set-password`) is not
overwritten.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import bottle
import tomlkit
import trio

from bambupi.config import Config, load_config
from bambupi.config.file import (
    ConfigChanged,
    ConfigWriteError,
    apply_settings,
    edit_config,
    read_versioned,
    schema_view,
    settings_view,
)
from bambupi.printer.tls_pins import PinStore
from bambupi.web.responses import html_page, read_json_body
from bambupi.web.route_contract import Access, BadRequest, Conflict, HttpError, ServerError, expose

log = logging.getLogger("bambupi.web")

SETTINGS_PAGE = Path(__file__).with_name("settings.html")

Reconfigure = Callable[[Config], Awaitable[dict[str, list[str]]]]


def add_settings_routes(
    app: bottle.Bottle,
    *,
    config_path: Path | None,
    current: Callable[[], Config],
    reconfigure: Reconfigure,
    pins: PinStore,
) -> None:
    def read() -> dict[str, Any]:
        printers = trio.from_thread.run_sync(lambda: [p.id for p in current().printers])
        try:
            document, version = read_versioned(config_path) if config_path is not None else (tomlkit.document(), None)
        except ConfigWriteError as exc:
            # Edited by hand since bambupi started: say what is wrong instead of failing with a 500.
            message = f"{config_path} cannot be read; fix it by hand (bambupi check-config)"
            raise _file_problems(Conflict, message, exc) from None
        except OSError as exc:
            log.error("could not read %s: %s", config_path, exc.strerror)
            raise ServerError(f"could not read {config_path}: {exc.strerror}") from None
        return {
            "editable": config_path is not None,
            "config_path": str(config_path) if config_path else None,
            "version": version,
            "settings": settings_view(document),
            "schema": schema_view(),
            "pins": {pid: pins.get(pid) for pid in printers},
        }

    def write() -> dict[str, Any]:
        if config_path is None:
            raise Conflict("this box runs without a config file, so settings cannot be saved")
        body = read_json_body()
        changes = body.get("settings") if body else None
        if not isinstance(changes, dict):
            raise BadRequest('settings: required (JSON body {"settings": {...}, "version": "..."})')
        version = body.get("version") if body else None
        if not isinstance(version, str):
            raise BadRequest("version: required (the version GET /api/settings gave with the settings)")
        try:
            warnings, version = edit_config(
                config_path, lambda document: apply_settings(document, changes), version=version
            )
        except ConfigChanged as exc:
            raise Conflict(str(exc)) from None
        except ValueError as exc:
            key, _, message = str(exc).partition(": ")
            raise BadRequest(NOT_SAVED, fields=[{"key": key, "message": message}]) from None
        except ConfigWriteError as exc:
            raise _file_problems(BadRequest, NOT_SAVED, exc) from None
        except OSError as exc:
            log.error("could not write %s: %s", config_path, exc.strerror)
            raise ServerError(f"could not write {config_path}: {exc.strerror}") from None
        config, _ = load_config(config_path)
        outcome = trio.from_thread.run(reconfigure, config)
        log.info("settings saved: %s", "; ".join(outcome["applied"]) or "no live changes")
        return {**outcome, "warnings": [str(w) for w in warnings], "version": version}

    expose(app, "GET", "/api/settings", read, Access.OWNER)
    expose(app, "POST", "/api/settings", write, Access.OWNER)
    # The page is the owner's: without a login a browser is sent to it (and back), another role reads why not.
    expose(app, "GET", "/settings", html_page(SETTINGS_PAGE), Access.OWNER)


NOT_SAVED = "the settings have problems; nothing was saved"


def _file_problems(kind: type[HttpError], message: str, exc: ConfigWriteError) -> HttpError:
    """The file's problems, each with its key and line, in the answer's ``fields``."""
    return kind(message, fields=[{"key": p.key, "message": p.message, "line": p.line} for p in exc.problems])
