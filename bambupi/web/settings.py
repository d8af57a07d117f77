"""The settings: ``GET/POST /api/settings``, the settings page, and "trust the new certificate" per printer.

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
from bambupi.outgoing import OneAtATime
from bambupi.printer.link import probe_fingerprint
from bambupi.printer.pins import PinStore, camera_pin_key
from bambupi.web.login import Guard
from bambupi.web.responses import error_response, html_page, json_response, read_json_body

log = logging.getLogger("bambupi.web")

SETTINGS_PAGE = Path(__file__).with_name("settings.html")

Reconfigure = Callable[[Config], Awaitable[dict[str, list[str]]]]


def add_settings_routes(
    app: bottle.Bottle,
    guard: Guard,
    *,
    config_path: Path | None,
    current: Callable[[], Config],
    reconfigure: Reconfigure,
    pins: PinStore,
    wake_link: Callable[[str], object],
) -> None:
    probing = OneAtATime()  # printers whose certificate a request is fetching now

    def read() -> str:
        refused = guard.refusal(changes=False)
        if refused is not None:
            return refused
        printers = trio.from_thread.run_sync(lambda: [p.id for p in current().printers])
        try:
            document, version = read_versioned(config_path) if config_path is not None else (tomlkit.document(), None)
        except ConfigWriteError as exc:
            # Edited by hand since bambupi started: say what is wrong instead of failing with a 500.
            return _file_problems(409, f"{config_path} cannot be read; fix it by hand (bambupi check-config)", exc)
        except OSError as exc:
            log.error("could not read %s: %s", config_path, exc.strerror)
            return error_response(500, f"could not read {config_path}: {exc.strerror}")
        return json_response(
            200,
            {
                "editable": config_path is not None,
                "config_path": str(config_path) if config_path else None,
                "version": version,
                "settings": settings_view(document),
                "schema": schema_view(),
                "pins": {pid: pins.get(pid) for pid in printers},
            },
        )

    def write() -> str:
        refused = guard.refusal()
        if refused is not None:
            return refused
        if config_path is None:
            return error_response(409, "this box runs without a config file, so settings cannot be saved")
        body = read_json_body()
        changes = body.get("settings") if body else None
        if not isinstance(changes, dict):
            return error_response(400, 'settings: required (JSON body {"settings": {...}, "version": "..."})')
        version = body.get("version") if body else None
        if not isinstance(version, str):
            return error_response(400, "version: required (the version GET /api/settings gave with the settings)")
        try:
            warnings, version = edit_config(
                config_path, lambda document: apply_settings(document, changes), version=version
            )
        except ConfigChanged as exc:
            return error_response(409, str(exc))
        except ValueError as exc:
            key, _, message = str(exc).partition(": ")
            return _field_errors([{"key": key, "message": message}])
        except ConfigWriteError as exc:
            return _file_problems(400, "the settings have problems; nothing was saved", exc)
        except OSError as exc:
            log.error("could not write %s: %s", config_path, exc.strerror)
            return error_response(500, f"could not write {config_path}: {exc.strerror}")
        config, _ = load_config(config_path)
        outcome = trio.from_thread.run(reconfigure, config)
        log.info("settings saved: %s", "; ".join(outcome["applied"]) or "no live changes")
        return json_response(200, {**outcome, "warnings": [str(w) for w in warnings], "version": version})

    def trust(printer_id: str) -> str:
        refused = guard.refusal()
        if refused is not None:
            return refused
        printer = trio.from_thread.run_sync(lambda: next((p for p in current().printers if p.id == printer_id), None))
        if printer is None:
            return error_response(404, f"no printer with id {printer_id!r}")
        # This thread waits for the printer (within connect_timeout_s): one probe per printer at a time, so clicks on
        # a printer that never answers hold one web thread, not all of them.
        with probing.claim(printer_id) as mine:
            if not mine:
                return error_response(409, "the printer's certificate is being fetched already; try again after that")
            try:
                seen = trio.from_thread.run(probe_fingerprint, printer)
            except (OSError, trio.TooSlowError) as exc:
                return error_response(502, f"cannot reach {printer.host}:{printer.mqtt_port}: {exc or 'timeout'}")
        previous = pins.get(printer_id)
        saved = pins.set(printer_id, seen)
        pins.forget(camera_pin_key(printer_id))  # the camera's is taken afresh at its next connection
        log.info("%s: now trusting certificate %s (was %s)", printer_id, seen, previous)
        trio.from_thread.run_sync(wake_link, printer_id)
        note = "tls_fingerprint in the config file takes precedence; clear it" if printer.tls_fingerprint else None
        if not saved:
            # Kept in memory: the running link trusts it now, but a restart would ask again.
            note = f"{pins.problem}: trusted until the box restarts"
        return json_response(200, {"printer": printer_id, "fingerprint": seen, "previous": previous, "note": note})

    app.route("/api/settings", "GET", read)
    app.route("/api/settings", "POST", write)
    app.route("/api/printers/<printer_id>/trust", "POST", trust)
    app.route("/settings", "GET", html_page(SETTINGS_PAGE))


def _field_errors(errors: list[dict[str, Any]], *, status: int = 400, message: str | None = None) -> str:
    body = {"error": message or "the settings have problems; nothing was saved", "status": status, "fields": errors}
    return json_response(status, body)


def _file_problems(status: int, message: str, exc: ConfigWriteError) -> str:
    fields = [{"key": p.key, "message": p.message, "line": p.line} for p in exc.problems]
    return _field_errors(fields, status=status, message=message)
