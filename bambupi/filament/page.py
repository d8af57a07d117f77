"""The ``/filament`` page, rendered: the template ``web/templates/filament.html`` filled with each spool as a person
reads it (text already formatted) and the places a spool can be put. Pure: data in, text out (the routes read the
data). It is drawn in the page frame (``bambupi/web/frame.py``, one ``/static/style.css``); ``/static/filament.js``
is the owner's add, edit, delete and assign.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bambupi.filament.inventory import location_words, sightings, two_holders
from bambupi.web import frame

PAGE: Final = Path(__file__).parent.parent / "web" / "templates" / "filament.html"
_COLOUR: Final = re.compile(r"#[0-9A-Fa-f]{6}")


@dataclass(frozen=True)
class SpoolView:
    id: int
    colour: str  # a checked "#RRGGBB" for the swatch, or "" (the text says the colour either way)
    title: str  # "PLA · Bambu Lab"
    colour_text: str  # "#FFFFFF" or "colour unknown"
    grams: str  # "812 g of 1000 g"
    percent: int  # the bar's fill, 0-100
    low: bool
    where: str
    tagged: bool
    fields_json: str  # what the edit form starts from (the template escapes it into an attribute)


@dataclass(frozen=True)
class Place:
    value: str  # "shelf", "ams:<printer>:<unit>:<slot>", "external:<printer>:<holder>"
    label: str


def spool_view(spool: Mapping[str, Any], names: Mapping[str, str], sides: Collection[str] = ()) -> SpoolView:
    remaining, net = spool["remaining_g"], spool["net_g"]
    grams = "weight unknown" if remaining is None else f"{remaining:.0f} g" + (f" of {net:.0f} g" if net else "")
    percent = round(max(0.0, min(1.0, remaining / net)) * 100) if remaining is not None and net else 0
    colour = spool["colour"] if _COLOUR.fullmatch(spool["colour"] or "") else ""
    location = spool["location"]
    return SpoolView(
        id=spool["id"], colour=colour,
        title=" · ".join(part for part in (spool["material"], spool["brand"]) if part),
        colour_text=colour.upper() or "colour unknown", grams=grams, percent=percent, low=bool(spool["low"]),
        where=location_words(location, names.get(str(location.get("printer")), ""),
                             sides=location.get("printer") in sides),
        tagged=spool["rfid"] is not None,
        fields_json=json.dumps({key: spool[key] for key in ("material", "colour", "brand", "net_g", "remaining_g")}),
    )


def places(printers: Mapping[str, Mapping[str, Any]]) -> list[Place]:
    """Every AMS slot and external holder the printers report, and the shelf."""
    found = [Place("shelf", "shelf")]
    for printer_id, printer in printers.items():
        for seen in sightings(printer_id, printer.get("state") or {}):
            where = seen.where
            location = where.to_json()
            if where.kind == "ams":
                value = f"ams:{printer_id}:{where.ams}:{where.tray}"
            else:
                value = f"external:{printer_id}:{where.tray}"
            found.append(Place(value, location_words(location, str(printer.get("name") or printer_id),
                                                     sides=two_holders(printer.get("state") or {}))))
    return found


def render_page(
    spools: Sequence[Mapping[str, Any]], printers: Mapping[str, Mapping[str, Any]], *, low_g: float,
    warning: str | None, spoolman: Mapping[str, Any] | None,
) -> str:
    names = {pid: str(p.get("name") or pid) for pid, p in printers.items()}
    sides = {pid for pid, p in printers.items() if two_holders(p.get("state") or {})}
    views = [spool_view(s, names, sides) for s in spools]
    html: str = frame.render(
        PAGE,
        spools=views, places=places(printers), low_g=f"{low_g:g}", warning=warning, spoolman=spoolman,
        low_count=sum(v.low for v in views),
    )
    return html
