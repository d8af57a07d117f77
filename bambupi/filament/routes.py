"""The spools on the web: the ``/filament`` page, ``GET /api/spools``, and the owner's add, edit, delete and assign
(login + CSRF, like every change).

Handlers run in the front door's worker threads: the database is used right here (its methods are blocking and
locked); the hub and the inventory are reached in trio through ``trio.from_thread``. Every body is checked field by
field, and an error names the field.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import bottle
import trio

from bambupi.database import Database, DatabaseError
from bambupi.filament import spools
from bambupi.filament.inventory import Inventory
from bambupi.filament.page import render_page
from bambupi.filament.spools import Location, NewSpool
from bambupi.state_hub import StateHub
from bambupi.web.responses import read_json_body
from bambupi.web.route_contract import Access, BadRequest, NotFound, Reply, Unavailable, expose

MAX_GRAMS: Final = 100_000.0
TEXT_LIMITS: Final = {"material": 32, "brand": 64}
_COLOUR: Final = re.compile(r"#[0-9A-Fa-f]{6}")


def _text(body: Mapping[str, Any], key: str, *, required: bool) -> str:
    value = body.get(key, None if required else "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise BadRequest(f"{key}: {'required, ' if required else ''}a text")
    if len(value) > TEXT_LIMITS[key] or any(ord(ch) < 32 for ch in value):
        raise BadRequest(f"{key}: at most {TEXT_LIMITS[key]} characters, no control characters")
    return value.strip()


def _colour(body: Mapping[str, Any]) -> str:
    value = body.get("colour", "")
    if value == "":
        return ""
    if not isinstance(value, str) or not _COLOUR.fullmatch(value):
        raise BadRequest('colour: "#RRGGBB" or ""')
    return value.upper()


def _grams(body: Mapping[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not 0 <= value <= MAX_GRAMS:
        raise BadRequest(f"{key}: grams from 0 to {MAX_GRAMS:.0f}, or null when not known")
    return float(value)


def _int(body: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"{key}: a whole number from {low} to {high}")
    return value


def _body() -> Mapping[str, Any]:
    """The request's JSON object; anything else (bad JSON, a list, nothing) is refused as such, not as a missing
    field."""
    body = read_json_body()
    if body is None:
        raise BadRequest("body: a JSON object")
    return body


def parse_new(body: Mapping[str, Any]) -> NewSpool:
    return NewSpool(
        material=_text(body, "material", required=True), colour=_colour(body),
        brand=_text(body, "brand", required=False), net_g=_grams(body, "net_g"),
        remaining_g=_grams(body, "remaining_g"),
    )


def parse_changes(body: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(body) - set(spools.EDITABLE))
    if unknown:
        raise BadRequest(f"{unknown[0]}: not a field you can change (only {', '.join(spools.EDITABLE)})")
    changes: dict[str, Any] = {}
    if "material" in body:
        changes["material"] = _text(body, "material", required=True)
    if "brand" in body:
        changes["brand"] = _text(body, "brand", required=False)
    if "colour" in body:
        changes["colour"] = _colour(body)
    for key in ("net_g", "remaining_g"):
        if key in body:
            changes[key] = _grams(body, key)
    return changes


def parse_location(body: Mapping[str, Any], has_printer: Callable[[str], bool]) -> Location:
    kind = body.get("location")
    if kind == "shelf":
        return spools.SHELF
    if kind not in ("ams", "external"):
        raise BadRequest('location: "shelf", "ams" (with printer, ams, tray) or "external" (with printer)')
    printer = body.get("printer")
    if not isinstance(printer, str) or not has_printer(printer):
        raise BadRequest("printer: the id of a configured printer")
    if kind == "ams":
        return Location("ams", printer, _int(body, "ams", 0, 255), _int(body, "tray", 0, 15))
    holder = body.get("holder")
    return Location("external", printer, None, None if holder is None else _int(body, "holder", 254, 255))


def add_filament_routes(
    app: bottle.Bottle, hub: StateHub, inventory: Inventory, *, low_g: Callable[[], float],
    spoolman: Callable[[], dict[str, Any] | None], changed: Callable[[], None],
) -> None:
    def store() -> Database:
        if inventory.store is None:
            raise Unavailable("the database is not open")
        return inventory.store

    def listed() -> tuple[list[dict[str, Any]], str | None]:
        try:
            rows = spools.all_spools(store())
        except DatabaseError as exc:
            return [], str(exc)
        return [spools.to_json(row, low_g=low_g()) for row in rows], store().problem

    def api_spools() -> dict[str, Any]:
        found, problem = listed()
        return {"spools": found, "low_g": low_g(), "warning": problem,
                "spoolman": trio.from_thread.run_sync(spoolman)}  # fmt: skip

    def after_change() -> None:
        trio.from_thread.run_sync(changed)

    def create() -> Reply:
        spool = parse_new(_body())
        row = _writing(lambda: spools.add(store(), spool, now=time.time(), low_g=low_g()))
        after_change()
        return Reply(201, spools.to_json(row, low_g=low_g()))

    def update(spool_id: int) -> dict[str, Any]:
        changes = parse_changes(_body())
        row = _writing(lambda: spools.edit(store(), spool_id, changes, now=time.time(), low_g=low_g()))
        if row is None:
            raise NotFound(f"no spool {spool_id}")
        after_change()
        return spools.to_json(row, low_g=low_g())

    def remove(spool_id: int) -> dict[str, Any]:
        if not _writing(lambda: spools.delete(store(), spool_id, now=time.time())):
            raise NotFound(f"no spool {spool_id}")
        after_change()
        return {"deleted": spool_id}

    def assign(spool_id: int) -> dict[str, Any]:
        where = parse_location(_body(), lambda pid: trio.from_thread.run_sync(hub.has, pid))
        row = _writing(lambda: spools.place(store(), spool_id, where, now=time.time()))
        if row is None:
            raise NotFound(f"no spool {spool_id}")
        if where.printer is not None:
            # The printer's next report is read afresh: a tagged spool it holds in that slot wins over the owner.
            trio.from_thread.run_sync(inventory.forget, where.printer)
        after_change()
        return spools.to_json(row, low_g=low_g())

    def page() -> str:
        found, problem = listed()
        printers = trio.from_thread.run_sync(lambda: dict(hub.snapshot()))
        bottle.response.content_type = "text/html; charset=utf-8"
        bottle.response.set_header("Cache-Control", "no-store")
        return render_page(found, printers, low_g=low_g(), warning=problem,
                           spoolman=trio.from_thread.run_sync(spoolman))  # fmt: skip

    expose(app, "GET", "/filament", page, Access.ANYONE)
    expose(app, "GET", "/api/spools", api_spools, Access.ANYONE)
    expose(app, "POST", "/api/spools", create, Access.OPERATOR)
    expose(app, "PATCH", "/api/spools/<spool_id:int>", update, Access.OPERATOR)
    expose(app, "DELETE", "/api/spools/<spool_id:int>", remove, Access.OWNER)
    expose(app, "POST", "/api/spools/<spool_id:int>/assign", assign, Access.OPERATOR)


def _writing(write: Callable[[], Any]) -> Any:
    """A write; a database that cannot take it is a 503 naming the problem (nothing stored is lost)."""
    try:
        return write()
    except DatabaseError as exc:
        raise Unavailable(f"the spool could not be saved: {exc}") from None
