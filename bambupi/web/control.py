"""Routes for the owner's actions on printers: commands, discovery of new printers."""

from __future__ import annotations

import bottle
import trio

from bambupi.printer.commands import CommandError, Controls
from bambupi.printer.discovery import Discovery
from bambupi.web.login import Guard
from bambupi.web.responses import error_response, json_response, read_json_body


def add_command_routes(app: bottle.Bottle, guard: Guard, controls: Controls) -> None:
    def command(printer_id: str) -> str:
        refused = guard.refusal()
        if refused is not None:
            return refused
        body = read_json_body()
        name = body.get("command") if body else None
        if not isinstance(name, str) or body is None:
            return error_response(400, "command: required (JSON body {\"command\": \"pause\"})")
        try:
            outcome = trio.from_thread.run(controls.send, printer_id, name, body)
        except CommandError as exc:
            return error_response(exc.status, exc.message)
        status = 200 if outcome.result == "success" else 502
        return json_response(status, {"printer": printer_id, "command": name, **outcome.to_json()})

    app.route("/api/printers/<printer_id>/commands", "POST", command)


def add_discovery_routes(app: bottle.Bottle, guard: Guard, discovery: Discovery) -> None:
    def candidates() -> str:
        refused = guard.refusal(changes=False)
        if refused is not None:
            return refused
        found = trio.from_thread.run_sync(lambda: [a.to_json() for a in discovery.candidates()])
        return json_response(200, {"listening": discovery.listening, "port": discovery.port, "printers": found})

    app.route("/api/discovery", "GET", candidates)
