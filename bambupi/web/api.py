"""The JSON API, as a Bottle app. It runs in worker threads behind the front door and reads the hub
only through ``trio.from_thread.run_sync``, so every read happens in trio's thread, never beside a write."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import bottle
import trio

from bambupi import __version__
from bambupi.state_hub import StateHub
from bambupi.web.route_contract import Access, NotFound, RouteContract, expose

T = TypeVar("T")


def _in_trio(fn: Callable[..., T], *args: Any) -> T:
    return trio.from_thread.run_sync(fn, *args)


def make_app(hub: StateHub, *, health: Callable[[], dict[str, Any]] | None = None) -> bottle.Bottle:
    """The Bottle app every feature adds its routes to (with ``expose``), holding the route contract."""
    app = bottle.Bottle(catchall=True)
    app.config["json.enable"] = False
    app.install(RouteContract())

    def healthz() -> dict[str, Any]:
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
        return {"status": "ok" if ok else "degraded", "version": __version__, "components": components}

    def printers() -> list[object]:
        return list(_in_trio(hub.snapshot).values())

    def printer(printer_id: str) -> object:
        if not _in_trio(hub.has, printer_id):
            raise NotFound(f"no printer with id {printer_id!r}")
        return _in_trio(hub.printer, printer_id)

    expose(app, "GET", "/healthz", healthz, Access.ANYONE)
    expose(app, "GET", "/api/printers", printers, Access.ANYONE)
    expose(app, "GET", "/api/printers/<printer_id>", printer, Access.ANYONE)

    return app
