"""The printer's HTTP routes: its MQTT debug capture, the owner's commands, "trust the new certificate", and the
discovery of printers on the LAN.

Handlers run in the front door's worker threads and reach trio through ``trio.from_thread``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from typing import Any

import bottle
import trio

from bambupi.config import PrinterConfig
from bambupi.outgoing import OneAtATime
from bambupi.printer.capture import CapturedMessage
from bambupi.printer.commands import CommandError, Controls
from bambupi.printer.discovery import Discovery
from bambupi.printer.hms import HmsEntry
from bambupi.printer.state import reported_hms
from bambupi.printer.tls_pins import PinStore
from bambupi.printer.trust import Unreachable, trust_current_certificate
from bambupi.state_hub import StateHub
from bambupi.web.responses import read_json_body
from bambupi.web.route_contract import (
    Access,
    BadGateway,
    BadRequest,
    Conflict,
    HttpError,
    NotFound,
    Reply,
    caller_origin,
    expose,
)


def add_printer_routes(
    app: bottle.Bottle,
    *,
    hub: StateHub,
    controls: Controls,
    printers: Callable[[], Iterable[PrinterConfig]],
    pins: PinStore,
    wake_link: Callable[[str], object],
) -> None:
    """``printers`` gives the running config's printers (read in trio's thread); ``wake_link`` makes a printer's
    link connect again at once (after its certificate is trusted)."""
    probing = OneAtATime()  # printers whose certificate a request is fetching now

    def mqtt_log(printer_id: str) -> dict[str, Any]:
        if not trio.from_thread.run_sync(hub.has, printer_id):
            raise NotFound(f"no printer with id {printer_id!r}")
        try:
            since = int(bottle.request.query.get("since", "0"))
        except ValueError:
            raise BadRequest("since: must be an integer") from None

        def read() -> tuple[list[CapturedMessage], Callable[[int, int], HmsEntry]]:
            return hub.capture(printer_id).messages(since=since), hub.hms_describer(printer_id)

        captured, describe = trio.from_thread.run_sync(read)
        # Parsed here, in the web's thread, not in trio's: up to the capture's 200 reports of up to 64 KiB.
        return {"printer": printer_id, "messages": [logged(m, describe) for m in captured]}

    def command(printer_id: str) -> Reply:
        body = read_json_body()
        name = body.get("command") if body else None
        if not isinstance(name, str) or body is None:
            raise BadRequest("command: required (JSON body {\"command\": \"pause\"})")
        try:
            outcome = trio.from_thread.run(
                functools.partial(controls.send, printer_id, name, body, origin=caller_origin())
            )
        except CommandError as exc:
            raise HttpError(exc.message, status=exc.status) from None
        status = 200 if outcome.result == "success" else 502
        return Reply(status, {"printer": printer_id, "command": name, **outcome.to_json()})

    def trust(printer_id: str) -> dict[str, Any]:
        printer = trio.from_thread.run_sync(lambda: next((p for p in printers() if p.id == printer_id), None))
        if printer is None:
            raise NotFound(f"no printer with id {printer_id!r}")
        # This thread waits for the printer (within connect_timeout_s): one probe per printer at a time, so clicks on
        # a printer that never answers hold one web thread, not all of them.
        with probing.claim(printer_id) as mine:
            if not mine:
                raise Conflict("the printer's certificate is being fetched already; try again after that")
            try:
                trusted = trio.from_thread.run(trust_current_certificate, printer, pins)
            except Unreachable as exc:
                raise BadGateway(str(exc)) from None
        trio.from_thread.run_sync(wake_link, printer_id)
        note = "tls_fingerprint in the config file takes precedence; clear it" if trusted.overridden else None
        if trusted.problem is not None:
            # Kept in memory: the running link trusts it now, but a restart would ask again.
            note = f"{trusted.problem}: trusted until the box restarts"
        return {"printer": printer_id, "fingerprint": trusted.fingerprint, "previous": trusted.previous, "note": note}

    expose(app, "GET", "/api/printers/<printer_id>/mqtt-log", mqtt_log, Access.ANYONE)
    expose(app, "POST", "/api/printers/<printer_id>/commands", command, Access.OPERATOR)
    expose(app, "POST", "/api/printers/<printer_id>/trust", trust, Access.OWNER)


def logged(message: CapturedMessage, describe: Callable[[int, int], HmsEntry]) -> dict[str, Any]:
    """A captured message as the MQTT log shows it: a received report that lists HMS codes carries them decoded
    (``hms``: code, severity, module, description, action, url, silent), described as the card describes them, so
    the page names a code the printer has cleared since."""
    body = message.to_json()
    if message.direction == "in" and '"hms"' in message.payload:  # most reports have none: not parsed
        try:
            report = json.loads(message.payload)
        except ValueError:  # cut at the capture's size limit, or not JSON at all
            report = None
        pairs = reported_hms(report) if isinstance(report, dict) else []
        if pairs:
            body["hms"] = [_described(describe(attr, code)) for attr, code in pairs]
    return body


def _described(entry: HmsEntry) -> dict[str, Any]:
    described = entry.to_json(standing=False)
    del described["standing"]  # the state's notion (active when the box started), not the report's
    return described


def add_discovery_routes(app: bottle.Bottle, discovery: Discovery) -> None:
    def candidates() -> dict[str, Any]:
        found = trio.from_thread.run_sync(lambda: [a.to_json() for a in discovery.candidates()])
        return {"listening": discovery.listening, "port": discovery.port, "printers": found}

    # Owner only: the list names printers the box does not watch (serials, addresses) on the owner's LAN.
    expose(app, "GET", "/api/discovery", candidates, Access.OWNER)
