"""The spools' queries on the box's database (the ``spools`` and ``spool_usage`` tables, bambupi.database).

Every function is blocking (call it through ``trio.to_thread.run_sync``, or from a web worker thread) and does its
work in one transaction of :meth:`Database.transaction` or one snapshot of :meth:`Database.reading`, so a spool is
never half written; a failure is :class:`bambupi.database.DatabaseError`.

Where a spool is (:class:`Location`): on the shelf, in an AMS slot of a printer (``ams`` unit id, ``tray`` slot), or
on an external holder of a printer (``tray`` the holder's id, 254 or 255, when known). One slot holds one spool:
placing a spool somewhere sends whatever was there to the shelf.

A spool with an RFID tag is known by it (``rfid`` is UNIQUE): seeing the tag again, in any slot of any printer, moves
that spool; it is never created twice, even by two writers at once (the insert is an upsert on the tag). A tagged
spool the owner deletes is kept, archived, so the AMS does not bring it back a second later.

A job's grams are taken from a spool once (``spool_usage``'s key is the spool and the job). A spool whose remaining
grams fall below the threshold is *low* once per crossing: ``low_notified`` is set when it is told, and cleared
when the owner sets the remaining weight above the threshold again (a refill).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from bambupi.database import Database

LocationKind = Literal["shelf", "ams", "external"]
BAMBU_BRAND: Final = "Bambu Lab"  # only Bambu's spools carry the tag the AMS reads

_COLUMNS: Final = (
    "id", "material", "colour", "brand", "net_g", "remaining_g", "rfid", "tray_info_idx", "location", "printer",
    "ams", "tray", "spoolman_id", "low_notified", "archived", "created_at", "updated_at",
)
_SELECT: Final = f"SELECT {', '.join(_COLUMNS)} FROM spools"
# What the owner may change with an edit (the rest is the box's own bookkeeping or the spool's tag).
EDITABLE: Final = ("material", "colour", "brand", "net_g", "remaining_g")


@dataclass(frozen=True)
class Location:
    kind: LocationKind
    printer: str | None = None
    ams: int | None = None  # kind "ams": the AMS unit's id (0-3, 16 an A2L's AMS lite, 128+ an AMS HT)
    tray: int | None = None  # kind "ams": the slot; kind "external": the holder's id, None when not known

    def to_json(self) -> dict[str, Any]:
        if self.kind == "ams":
            return {"kind": "ams", "printer": self.printer, "ams": self.ams, "tray": self.tray}
        if self.kind == "external":
            return {"kind": "external", "printer": self.printer, "holder": self.tray}
        return {"kind": "shelf"}


SHELF: Final = Location("shelf")


@dataclass(frozen=True)
class NewSpool:
    material: str
    colour: str = ""  # "#RRGGBB" or ""
    brand: str = ""
    net_g: float | None = None
    remaining_g: float | None = None


@dataclass(frozen=True)
class Sighting:
    """What a printer's state says is in one slot or holder (bambupi.filament.inventory.sightings)."""

    where: Location
    empty: bool
    rfid: str | None = None
    material: str = ""
    colour: str = ""
    net_g: float | None = None
    remaining_g: float | None = None
    tray_info_idx: str | None = None


def to_json(row: Mapping[str, Any], *, low_g: float) -> dict[str, Any]:
    """A spool as ``GET /api/spools`` and the page show it; ``low`` is below the threshold now."""
    remaining = row["remaining_g"]
    location = Location(row["location"], row["printer"], row["ams"], row["tray"])
    return {
        "id": row["id"], "material": row["material"], "colour": row["colour"], "brand": row["brand"],
        "net_g": row["net_g"], "remaining_g": remaining, "rfid": row["rfid"], "tray_info_idx": row["tray_info_idx"],
        "location": location.to_json(), "spoolman_id": row["spoolman_id"],
        "low": remaining is not None and remaining < low_g, "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def _rows(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    return [dict(zip(_COLUMNS, row, strict=True)) for row in cursor.fetchall()]


def _one(db: sqlite3.Connection, spool_id: int) -> dict[str, Any] | None:
    rows = _rows(db.execute(f"{_SELECT} WHERE id = ?", (spool_id,)))
    return rows[0] if rows else None


def _where(where: Location) -> tuple[str, tuple[Any, ...]]:
    """The SQL condition of the spools at ``where`` (an external holder of unknown id matches any of the printer's)."""
    if where.kind == "ams":
        return "location = 'ams' AND printer = ? AND ams = ? AND tray = ?", (where.printer, where.ams, where.tray)
    if where.kind == "external":
        if where.tray is None:
            return "location = 'external' AND printer = ?", (where.printer,)
        return "location = 'external' AND printer = ? AND (tray = ? OR tray IS NULL)", (where.printer, where.tray)
    return "location = 'shelf'", ()


def _to_shelf(db: sqlite3.Connection, where: Location, *, now: float, except_id: int | None = None,
              tagged_only: bool = False) -> int:  # fmt: skip
    condition, args = _where(where)
    if except_id is not None:
        condition += " AND id != ?"
        args += (except_id,)
    if tagged_only:
        condition += " AND rfid IS NOT NULL"
    return db.execute(
        "UPDATE spools SET location = 'shelf', printer = NULL, ams = NULL, tray = NULL, updated_at = ?"
        f" WHERE archived = 0 AND {condition}",
        (now, *args),
    ).rowcount


# -- reading ----------------------------------------------------------------------------------------------------------


def all_spools(store: Database) -> list[dict[str, Any]]:
    """Every spool not deleted, those in a printer first (by printer, unit, slot), then the shelf by material."""
    with store.reading() as db:
        return _rows(db.execute(
            f"{_SELECT} WHERE archived = 0 ORDER BY location = 'shelf', printer, ams, tray, material, colour, id"
        ))  # fmt: skip


def one(store: Database, spool_id: int) -> dict[str, Any] | None:
    with store.reading() as db:
        row = _one(db, spool_id)
    return row if row is not None and not row["archived"] else None


def at(store: Database, where: Location) -> dict[str, Any] | None:
    """The spool at a slot or holder, or None."""
    condition, args = _where(where)
    with store.reading() as db:
        rows = _rows(db.execute(f"{_SELECT} WHERE archived = 0 AND {condition} ORDER BY tray IS NULL, id", args))
    return rows[0] if rows else None


# -- the owner's changes ----------------------------------------------------------------------------------------------


def add(store: Database, spool: NewSpool, *, now: float, low_g: float) -> dict[str, Any]:
    """A spool the owner adds (on the shelf). One that starts low is not told about: the owner just said so."""
    low = spool.remaining_g is not None and spool.remaining_g < low_g
    with store.transaction() as db:
        cursor = db.execute(
            "INSERT INTO spools (material, colour, brand, net_g, remaining_g, low_notified, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (spool.material, spool.colour, spool.brand, spool.net_g, spool.remaining_g, int(low), now, now),
        )
        row = _one(db, int(cursor.lastrowid or 0))
    assert row is not None
    return row


def edit(store: Database, spool_id: int, changes: Mapping[str, Any], *, now: float, low_g: float
         ) -> dict[str, Any] | None:  # fmt: skip
    """Change the ``EDITABLE`` fields in ``changes`` (already checked); None when there is no such spool.

    A remaining weight set at or above the threshold re-arms the low notice (a refill); one set below it counts as
    told (the owner just typed it)."""
    fields = {key: value for key, value in changes.items() if key in EDITABLE}
    with store.transaction() as db:
        row = _one(db, spool_id)
        if row is None or row["archived"]:
            return None
        if "remaining_g" in fields:
            remaining = fields["remaining_g"]
            fields["low_notified"] = int(remaining is not None and remaining < low_g)
        if fields:
            assignments = ", ".join(f"{key} = ?" for key in fields)  # keys from EDITABLE only, never the caller's
            db.execute(f"UPDATE spools SET {assignments}, updated_at = ? WHERE id = ?", (*fields.values(), now,
                                                                                           spool_id))
        return _one(db, spool_id)


def delete(store: Database, spool_id: int, *, now: float) -> bool:
    """Remove a spool; a tagged one is archived instead (see the module's docstring). False when there is none."""
    with store.transaction() as db:
        row = _one(db, spool_id)
        if row is None or row["archived"]:
            return False
        if row["rfid"] is None:
            db.execute("DELETE FROM spools WHERE id = ?", (spool_id,))
        else:
            db.execute(
                "UPDATE spools SET archived = 1, location = 'shelf', printer = NULL, ams = NULL, tray = NULL,"
                " updated_at = ? WHERE id = ?",
                (now, spool_id),
            )
    return True


def place(store: Database, spool_id: int, where: Location, *, now: float) -> dict[str, Any] | None:
    """Put a spool at ``where``; whatever was there goes to the shelf. None when there is no such spool."""
    with store.transaction() as db:
        row = _one(db, spool_id)
        if row is None or row["archived"]:
            return None
        if where.kind != "shelf":
            _to_shelf(db, where, now=now, except_id=spool_id)
        db.execute(
            "UPDATE spools SET location = ?, printer = ?, ams = ?, tray = ?, updated_at = ? WHERE id = ?",
            (where.kind, where.printer, where.ams, where.tray, now, spool_id),
        )
        return _one(db, spool_id)


def set_spoolman_id(store: Database, spool_id: int, spoolman_id: int | None) -> None:
    with store.transaction() as db:
        db.execute("UPDATE spools SET spoolman_id = ? WHERE id = ?", (spoolman_id, spool_id))


# -- what the printers say --------------------------------------------------------------------------------------------


def observe(store: Database, seen: Sequence[Sighting], *, now: float, low_g: float) -> list[dict[str, Any]]:
    """Follow what the printers' slots hold, in one transaction, and return the tagged spools created now.

    - an empty slot or holder: the spool recorded there goes to the shelf;
    - a tagged spool: the spool with that tag is there now (created from the tag the first time: remaining from the
      printer's ``remain`` × net weight where it reports one, else the net weight); any other spool there goes to
      the shelf;
    - an untagged spool: a tagged spool recorded there was taken out (the owner's own assignment stays).
    """
    created: list[dict[str, Any]] = []
    with store.transaction() as db:
        for sighting in seen:
            where = sighting.where
            if sighting.empty:
                _to_shelf(db, where, now=now)
            elif sighting.rfid is None:
                _to_shelf(db, where, now=now, tagged_only=True)
            else:
                spool, new = _tagged(db, sighting, now=now, low_g=low_g)
                _to_shelf(db, where, now=now, except_id=spool["id"])
                if new:
                    created.append(spool)
    return created


def _tagged(db: sqlite3.Connection, sighting: Sighting, *, now: float, low_g: float
            ) -> tuple[dict[str, Any], bool]:  # fmt: skip
    """The spool with the sighting's tag, at the sighting's place (unless the owner deleted it), and whether it was
    created now. One created below ``low_g`` counts as told: the caller tells it."""
    where = sighting.where
    remaining = sighting.remaining_g
    low = remaining is not None and remaining < low_g
    # The upsert keeps one row per tag whatever else writes meanwhile (another process on the same file).
    cursor = db.execute(
        "INSERT INTO spools (material, colour, brand, net_g, remaining_g, rfid, tray_info_idx, location, printer,"
        " ams, tray, low_notified, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (rfid) DO NOTHING",
        (sighting.material, sighting.colour, BAMBU_BRAND, sighting.net_g, remaining, sighting.rfid,
         sighting.tray_info_idx, where.kind, where.printer, where.ams, where.tray, int(low), now, now),
    )  # fmt: skip
    created = cursor.rowcount == 1
    rows = _rows(db.execute(f"{_SELECT} WHERE rfid = ?", (sighting.rfid,)))
    spool = rows[0]
    if spool["archived"]:
        return spool, False
    here = (spool["location"], spool["printer"], spool["ams"], spool["tray"])
    if here != (where.kind, where.printer, where.ams, where.tray):
        db.execute(
            "UPDATE spools SET location = ?, printer = ?, ams = ?, tray = ?, updated_at = ? WHERE id = ?",
            (where.kind, where.printer, where.ams, where.tray, now, spool["id"]),
        )
        spool = {**spool, "location": where.kind, "printer": where.printer, "ams": where.ams, "tray": where.tray}
    return spool, created


def take(store: Database, job_id: int, grams: Mapping[int, float], *, now: float, low_g: float
         ) -> list[dict[str, Any]]:  # fmt: skip
    """Take a job's grams from its spools (``grams``: spool id → grams), each spool once per job; return the spools
    that fell below ``low_g`` now and had not been told (their notice is marked given)."""
    crossed: list[dict[str, Any]] = []
    with store.transaction() as db:
        for spool_id, used in grams.items():
            row = _one(db, spool_id)
            if row is None:
                continue  # deleted meanwhile
            taken = db.execute(
                "INSERT INTO spool_usage (spool_id, job_id, grams, at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (spool_id, job_id) DO NOTHING",
                (spool_id, job_id, used, now),
            ).rowcount
            if not taken or row["remaining_g"] is None:
                continue  # taken before (a second call for the same job), or how much is left was never known
            remaining = max(0.0, round(row["remaining_g"] - used, 2))
            low = remaining < low_g and not row["low_notified"]
            db.execute(
                "UPDATE spools SET remaining_g = ?, low_notified = low_notified OR ?, updated_at = ? WHERE id = ?",
                (remaining, int(low), now, spool_id),
            )
            if low:
                crossed.append({**row, "remaining_g": remaining, "low_notified": 1})
    return crossed

