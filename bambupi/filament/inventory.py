"""The spool inventory's rules: which spool each printer slot holds (from the printers' state), what a job took from
which spool, and when a spool is low.

Pure parts: :func:`sightings` reads a printer's state into what each slot and holder holds; :func:`low_event` words
a low spool; :func:`low_spools` picks the loaded spools below the threshold. :class:`Inventory` applies them to the
database (bambupi.filament.spools, in a worker thread) and tells the hub: the job recorder (bambupi.history.recorder)
asks it which spool a tray holds and hands it each ended job's grams; the filament component feeds it every
printer's state; the panel (bambupi.panel.service) reads its low spools to show one while that printer is idle.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NoReturn, Protocol

import trio

from bambupi.database import Database, DatabaseError
from bambupi.filament import spools
from bambupi.filament.spools import Location, Sighting
from bambupi.printer.events import Event

log = logging.getLogger("bambupi.filament")

TrayRef = Mapping[str, Any]  # {"ams": unit, "tray": slot} | {"external": True} (| "id": holder), as the recorder has
Usage = Mapping[int, tuple[float, TrayRef | None]]  # per filament index: grams, and the tray it came from
AMS_LITE_A2L: Final = 16
AMS_HT_FIRST: Final = 128


class Hub(Protocol):
    """What the inventory uses of the StateHub."""

    def publish_event(self, event: Event) -> None: ...

    def has(self, printer_id: str) -> bool: ...

    def printer(self, printer_id: str) -> Mapping[str, Any]: ...


def _int(key: Any) -> int | None:
    try:
        return int(key)
    except (TypeError, ValueError):
        return None


def sightings(printer_id: str, state: Mapping[str, Any]) -> tuple[Sighting, ...]:
    """What each AMS slot and external holder of a printer holds, as its state says (bambupi.printer.state):
    empty, a spool with an RFID tag (``tray_uuid``), or a spool without one. Slots the state does not list yet (no
    report) say nothing."""
    found: list[Sighting] = []
    units = (state.get("ams") or {}).get("units") or {}
    for unit_key, unit in units.items():
        for tray_key, tray in ((unit or {}).get("trays") or {}).items():
            unit_id, slot = _int(unit_key), _int(tray_key)
            if unit_id is None or slot is None or not isinstance(tray, Mapping):
                continue
            found.append(_sighting(Location("ams", printer_id, unit_id, slot), tray))
    for holder_key, holder in (state.get("external_spools") or {}).items():
        holder_id = _int(holder_key)
        if holder_id is not None and isinstance(holder, Mapping):
            found.append(_sighting(Location("external", printer_id, None, holder_id), holder))
    return tuple(sorted(found, key=lambda s: (s.where.kind, s.where.ams or 0, s.where.tray or 0)))


def _sighting(where: Location, tray: Mapping[str, Any]) -> Sighting:
    if tray.get("empty"):
        return Sighting(where, empty=True)
    rfid = tray.get("tray_uuid")
    weight = tray.get("tray_weight")
    remain = tray.get("remain")
    net = float(weight) if isinstance(weight, int | float) and weight > 0 else None
    if net is not None and isinstance(remain, int | float):
        remaining: float | None = round(net * remain / 100.0, 1)
    else:
        remaining = net  # a tag without the printer's estimate: a full spool of its net weight
    return Sighting(
        where, empty=False, rfid=rfid if isinstance(rfid, str) else None, material=str(tray.get("type") or ""),
        colour=str(tray.get("color") or ""), net_g=net, remaining_g=remaining,
        tray_info_idx=tray.get("tray_info_idx") if isinstance(tray.get("tray_info_idx"), str) else None,
    )


def two_holders(state: Mapping[str, Any]) -> bool:
    """Whether a printer has a left and a right external holder (dual nozzle): only then is a holder named by its
    side (a P1S's only holder is id 254, as the left one of an H2D is)."""
    return len(state.get("external_spools") or {}) > 1


def location_words(location: Mapping[str, Any], printer_name: str = "", *, sides: bool = False) -> str:
    """Where a spool is, as a person reads it: "Workshop: AMS 1 slot 2", "Workshop: external holder", "shelf"."""
    prefix = f"{printer_name or location.get('printer') or ''}: " if location.get("kind") in ("ams", "external") else ""
    return prefix + slot_words(location, sides=sides)


def slot_words(location: Mapping[str, Any], *, sides: bool = False) -> str:
    """The place within its printer: "AMS 1 slot 2", "AMS HT 1", "external holder" ("left external holder" with
    ``sides``, on a printer with two: :func:`two_holders`); "shelf" off a printer."""
    kind = location.get("kind")
    if kind == "ams":
        unit, slot = location.get("ams"), location.get("tray")
        if isinstance(unit, int) and unit >= AMS_HT_FIRST:
            return f"AMS HT {unit - AMS_HT_FIRST + 1}"
        name = "AMS lite" if unit == AMS_LITE_A2L else f"AMS {unit + 1 if isinstance(unit, int) else '?'}"
        return f"{name} slot {slot + 1 if isinstance(slot, int) else '?'}"
    if kind == "external":
        holder = {254: "left ", 255: "right "}.get(location.get("holder"), "") if sides else ""  # type: ignore[arg-type]
        return f"{holder}external holder"
    return "shelf"


@dataclass(frozen=True)
class LowSpool:
    """A spool in a printer with fewer grams left than the threshold (what the OLED shows while that printer idles)."""

    spool: int
    printer: str
    material: str
    colour: str  # "#RRGGBB" or ""
    remaining_g: float
    where: str  # within the printer: "AMS 1 slot 2" (slot_words)


def low_spools(rows: Iterable[Mapping[str, Any]], *, low_g: float, sides: Collection[str] = ()
               ) -> tuple[LowSpool, ...]:  # fmt: skip
    """The spools in a printer (an AMS slot or external holder) below ``low_g``, the emptiest first. A low spool on
    the shelf is left out: it runs out in no print until it is put in one. ``sides``: the printers with two
    external holders."""
    found = [
        LowSpool(
            spool=row["id"], printer=row["printer"], material=row["material"], colour=row["colour"],
            remaining_g=row["remaining_g"],
            where=slot_words(Location(row["location"], row["printer"], row["ams"], row["tray"]).to_json(),
                             sides=row["printer"] in sides),
        )
        for row in rows
        if row["location"] in ("ams", "external") and row["printer"] and row["remaining_g"] is not None
        and row["remaining_g"] < low_g and not row["archived"]
    ]
    return tuple(sorted(found, key=lambda s: (s.remaining_g, s.spool)))


def low_event(spool: Mapping[str, Any], *, printer_id: str, printer_name: str, sides: bool = False) -> Event:
    """The ``filament_low`` event of a spool that fell below the threshold (docs/api.md)."""
    remaining = spool["remaining_g"]
    location = Location(spool["location"], spool["printer"], spool["ams"], spool["tray"]).to_json()
    what = " ".join(part for part in (spool["material"], spool["colour"]) if part) or "a spool"
    message = f"{what} low: {remaining:.0f} g left ({location_words(location, printer_name, sides=sides)})"
    return Event(
        kind="filament_low", printer=printer_id, spool=spool["id"], material=spool["material"],
        colour=spool["colour"], remaining_g=remaining, message=message,
    )


class Inventory:
    """The spools, as the rest of the box asks about them. ``low_g`` is read at every use (live settings)."""

    def __init__(
        self, hub: Hub, store: Database | None, *, low_g: Callable[[], float],
        changed: Callable[[], None] = lambda: None, clock: Callable[[], float] = time.time,
    ) -> None:
        self._hub = hub
        self.store = store
        self._low_g = low_g
        self._changed = changed  # a spool's weight or place changed (the Spoolman sync wakes)
        self._clock = clock
        self._seen: dict[str, tuple[Sighting, ...]] = {}  # per printer, what was last applied
        self._low: tuple[LowSpool, ...] = ()
        self._low_stale = trio.Event()
        self._low_stale.set()  # read once at start

    def low_spools(self) -> tuple[LowSpool, ...]:
        """The spools in a printer below the threshold, as last read (:meth:`follow_low`); the panel reads this."""
        return self._low

    def spools_changed(self) -> None:
        """A spool's weight or place, or the threshold, changed (here, on the page, in the settings): the Spoolman
        copy and the low list follow."""
        self._low_stale.set()
        self._changed()

    async def follow_low(self) -> NoReturn:
        """Keep :meth:`low_spools` current: read again after every change. A database that cannot be read keeps the
        last list (its problem is in /healthz) until the next change."""
        while True:
            await self._low_stale.wait()
            self._low_stale = trio.Event()
            if self.store is None:
                continue
            with contextlib.suppress(DatabaseError):
                rows = await trio.to_thread.run_sync(spools.all_spools, self.store)
                printers = {row["printer"] for row in rows if row["printer"]}
                sides = {pid for pid in printers if self._hub.has(pid) and two_holders(self._hub.printer(pid)["state"])}
                self._low = low_spools(rows, low_g=self._low_g(), sides=sides)

    async def spool_at(self, printer_id: str, tray: TrayRef) -> int | None:
        """The spool in a printer's tray (``{"ams", "tray"}`` or ``{"external": true}``), or None."""
        where = _location(printer_id, tray)
        if where is None or self.store is None:
            return None
        row = await trio.to_thread.run_sync(spools.at, self.store, where)
        return None if row is None else int(row["id"])

    async def job_ended(self, job_id: int, printer_id: str, usage: Usage) -> None:
        """Take an ended job's grams from the spools its filaments came from (once per spool and job, however often
        this is called); a spool that falls below the threshold raises ``filament_low``."""
        if self.store is None:
            return
        grams: dict[int, float] = {}
        for used, tray in usage.values():
            spool_id = await self.spool_at(printer_id, tray) if tray is not None else None
            if spool_id is not None and used > 0:
                grams[spool_id] = grams.get(spool_id, 0.0) + used
        if not grams:
            return
        crossed = await trio.to_thread.run_sync(
            lambda: spools.take(self.store, job_id, grams, now=self._clock(), low_g=self._low_g())  # type: ignore[arg-type]
        )
        log.info("%s: job %s took %s", printer_id, job_id, ", ".join(f"{g:.1f} g from spool {s}"
                                                                     for s, g in grams.items()))  # fmt: skip
        for spool in crossed:
            self._tell_low(spool, printer_id)
        self.spools_changed()

    async def observe(self, printer_id: str, state: Mapping[str, Any]) -> None:
        """Follow a printer's slots (tagged spools appear and move by themselves); only a change is written."""
        seen = sightings(printer_id, state)
        if self.store is None or not seen or self._seen.get(printer_id) == seen:
            return
        low_g = self._low_g()
        created = await trio.to_thread.run_sync(
            lambda: spools.observe(self.store, seen, now=self._clock(), low_g=low_g)  # type: ignore[arg-type]
        )
        self._seen[printer_id] = seen  # after the write: a failed one is tried again at the next report
        for spool in created:
            log.info("%s: a tagged spool appeared in %s: %s %s (%s g)", printer_id,
                     location_words(Location(spool["location"], spool["printer"], spool["ams"],
                                             spool["tray"]).to_json()),
                     spool["material"], spool["colour"], spool["remaining_g"])  # fmt: skip
            if spool["remaining_g"] is not None and spool["remaining_g"] < low_g:
                self._tell_low(spool, printer_id)
        self.spools_changed()

    def forget(self, printer_id: str) -> None:
        """Read the printer's slots afresh at its next report (the owner moved a spool by hand)."""
        self._seen.pop(printer_id, None)

    def _tell_low(self, spool: Mapping[str, Any], printer_id: str) -> None:
        known = self._hub.has(printer_id)
        printer = self._hub.printer(printer_id) if known else None
        event = low_event(spool, printer_id=printer_id, printer_name=printer["name"] if printer else printer_id,
                          sides=printer is not None and two_holders(printer["state"]))
        log.info("%s: %s", printer_id, event.get("message"))
        self._hub.publish_event(event)


def _location(printer_id: str, tray: TrayRef) -> Location | None:
    if tray.get("external"):
        holder = tray.get("id")
        return Location("external", printer_id, None, holder if isinstance(holder, int) else None)
    unit, slot = tray.get("ams"), tray.get("tray")
    if isinstance(unit, int) and isinstance(slot, int):
        return Location("ams", printer_id, unit, slot)
    return None
