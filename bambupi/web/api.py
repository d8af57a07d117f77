"""The JSON API, as a Bottle app. It runs in worker threads behind the front door and reads the hub
only through ``trio.from_thread.run_sync``, so every read happens in trio's thread, never beside a write."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import bottle
import trio

from bambupi import __version__
from bambupi.hub import StateHub
from bambupi.web.responses import error_response, json_response

T = TypeVar("T")


def _in_trio(fn: Callable[..., T], *args: Any) -> T:
    return trio.from_thread.run_sync(fn, *args)


def make_app(hub: StateHub, *, health: Callable[[], dict[str, Any]] | None = None) -> bottle.Bottle:
    app = bottle.Bottle(catchall=True)
    app.config["json.enable"] = False

    def printer_or_404(printer_id: str) -> dict[str, Any] | None:
        if not _in_trio(hub.has, printer_id):
            return None
        return _in_trio(hub.printer, printer_id)

    def healthz() -> str:
        snapshot = _in_trio(hub.snapshot)
        printers = {
            pid: {
                "connection": p["connection"],
                "reason": p["connection_reason"],
                "last_report_at": p["last_report_at"],
            }
            for pid, p in snapshot.items()
        }
        components: dict[str, Any] = {"hub": {"ok": True}, "web": {"ok": True}, "printers": printers}
        if health is not None:
            components.update(_in_trio(health))
        ok = all(p["connection"] == "online" for p in printers.values())
        ok = ok and all(part.get("ok") is not False for part in components.values())  # e.g. the power log
        body = {"status": "ok" if ok else "degraded", "version": __version__, "components": components}
        return json_response(200, body)

    def printers() -> str:
        return json_response(200, list(_in_trio(hub.snapshot).values()))

    def printer(printer_id: str) -> str:
        found = printer_or_404(printer_id)
        if found is None:
            return error_response(404, f"no printer with id {printer_id!r}")
        return json_response(200, found)

    def mqtt_log(printer_id: str) -> str:
        if not _in_trio(hub.has, printer_id):
            return error_response(404, f"no printer with id {printer_id!r}")
        try:
            since = int(bottle.request.query.get("since", "0"))
        except ValueError:
            return error_response(400, "since: must be an integer")

        def read() -> list[dict[str, Any]]:
            return [m.to_json() for m in hub.capture(printer_id).messages(since=since)]

        return json_response(200, {"printer": printer_id, "messages": _in_trio(read)})

    app.route("/healthz", "GET", healthz)
    app.route("/api/printers", "GET", printers)
    app.route("/api/printers/<printer_id>", "GET", printer)
    app.route("/api/printers/<printer_id>/mqtt-log", "GET", mqtt_log)

    def on_error(err: bottle.HTTPError) -> str:
        status = int(err.status_code)
        if status == 404:
            return error_response(404, f"no route {bottle.request.path}")
        if status == 405:
            return error_response(405, f"method {bottle.request.method} not allowed here")
        if status >= 500:
            return error_response(status, "internal error")
        return error_response(status, str(err.body) or "error")

    for code in (400, 403, 404, 405, 500):  # JSON like every other answer, never Bottle's HTML page
        app.error_handler[code] = on_error
    return app
