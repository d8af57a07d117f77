"""A copy of the spools on the owner's Spoolman server (``[filament] spoolman_url``), over Spoolman's REST API.

The box's own database stays the truth: the copy goes one way, box → Spoolman. Each spool gets a Spoolman spool
(``POST /api/v1/spool``) of a Spoolman filament (``/api/v1/filament``: material, colour, net weight, found or made)
of its brand's vendor (``/api/v1/vendor``), and its Spoolman id is kept beside it. From then on its remaining weight
and location are set with ``PATCH /api/v1/spool/<id>``: setting the weight is the same however often it is sent, so
a retry after an answer that never came cannot take a job's grams twice (``PUT .../use`` would). A spool deleted in
Spoolman is made again at the next round.

Each call has a total deadline and a bounded answer (bambupi.outgoing). A server that is down, answers something
that is not Spoolman's JSON, or answers too much is a problem shown in ``/healthz`` and on the page, said once in
the log, and tried again after a pause that doubles up to ``spoolman_sync_s``; nothing of the box's is changed by
it. A change of a spool is sent within seconds (:meth:`SpoolmanSync.poke`); every ``spoolman_sync_s`` the whole
list is checked again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import trio

from bambupi import outgoing
from bambupi.config import FilamentConfig
from bambupi.database import Database, DatabaseError
from bambupi.filament import spools
from bambupi.filament.inventory import location_words

log = logging.getLogger("bambupi.filament")

DEADLINE_S: Final = 10.0
MAX_ANSWER_BYTES: Final = 1024 * 1024  # a page of a few thousand spools; more is not Spoolman's answer
BACKOFF_MIN_S: Final = 5.0
POKE_DELAY_S: Final = 2.0  # changes that come together (a job's several spools) go in one round
DIAMETER_MM: Final = 1.75
# Spoolman asks each filament's density (g/cm³); the usual figures, PLA's for anything else.
DENSITY: Final = {"PLA": 1.24, "PETG": 1.27, "ABS": 1.04, "ASA": 1.07, "TPU": 1.21, "PA": 1.14, "PC": 1.2,
                  "PVA": 1.23, "HIPS": 1.04}  # fmt: skip


class SpoolmanError(Exception):
    """The server did not do what was asked; ``str()`` says what happened in words (never a URL or its secret)."""


@dataclass
class _Status:
    error: str | None = None
    failures: int = 0
    last_sync_at: float | None = None  # UTC epoch seconds
    retry_at: float | None = None  # trio clock


class SpoolmanSync:
    def __init__(self, store: Database | None, settings: Callable[[], FilamentConfig], *,
                 deadline_s: float = DEADLINE_S, max_bytes: int = MAX_ANSWER_BYTES,
                 backoff_min_s: float = BACKOFF_MIN_S, poke_delay_s: float = POKE_DELAY_S) -> None:  # fmt: skip
        self.store = store
        self._settings = settings
        self._deadline_s = deadline_s
        self._max_bytes = max_bytes
        self._backoff_min_s = backoff_min_s
        self._poke_delay_s = poke_delay_s
        self._status = _Status()
        self._wake = trio.Event()
        self._sent: dict[int, tuple[Any, ...]] = {}  # spool id -> what Spoolman was last told of it
        self._url = ""

    def poke(self) -> None:
        """A spool changed: send it soon (in trio's thread)."""
        self._wake.set()

    def status(self) -> dict[str, Any] | None:
        """None when no server is set; else ``{ok, error, last_sync_at, retry_in_s}`` for /healthz and the page."""
        if not self._settings().spoolman_url:
            return None
        state = self._status
        retry = None if state.retry_at is None else round(max(0.0, state.retry_at - trio.current_time()), 1)
        return {"ok": state.error is None, "error": state.error, "last_sync_at": state.last_sync_at,
                "retry_in_s": retry if state.error is not None else None}  # fmt: skip

    async def run(self) -> None:
        async with httpx.AsyncClient() as client:
            while True:
                url = self._settings().spoolman_url
                if url != self._url:  # another server: nothing was sent to it yet
                    self._url, self._sent, self._status = url, {}, _Status()
                wait = self._settings().spoolman_sync_s
                if url:
                    wait = await self._round(client, url)
                with trio.move_on_after(wait):
                    await self._wake.wait()
                    if self._status.error is None:
                        await trio.sleep(self._poke_delay_s)
                self._wake = trio.Event()

    async def _round(self, client: httpx.AsyncClient, url: str) -> float:
        """One round; the pause until the next one (the interval, or the backoff after a failure)."""
        state = self._status
        try:
            sent = await self.sync_once(client, url)
        except SpoolmanError as exc:
            state.failures += 1
            delay = float(min(self._backoff_min_s * 2.0 ** (state.failures - 1), self._settings().spoolman_sync_s))
            if state.error is None:
                log.warning("Spoolman: %s; the spools are kept here and sent again in %g s", exc, delay)
            state.error, state.retry_at = str(exc), trio.current_time() + delay
            return delay
        if state.error is not None:
            log.info("Spoolman: reachable again")
        state.error, state.failures, state.retry_at, state.last_sync_at = None, 0, None, time.time()
        if sent:
            log.info("Spoolman: %d spool%s sent", sent, "" if sent == 1 else "s")
        return float(self._settings().spoolman_sync_s)

    async def sync_once(self, client: httpx.AsyncClient, url: str) -> int:
        """Bring the copy up to date; the number of spools sent. Raises :class:`SpoolmanError`."""
        if self.store is None:
            return 0
        try:
            rows = await trio.to_thread.run_sync(spools.all_spools, self.store)
        except DatabaseError:
            return 0  # the database's own problem is shown already; the copy waits for it
        vendors: dict[str, int] = {}
        filaments: dict[tuple[Any, ...], int] = {}
        sent = 0
        for row in rows:
            location = location_words(spools.to_json(row, low_g=0)["location"])[:64]
            facts = (row["spoolman_id"], row["remaining_g"], location, row["net_g"])
            if self._sent.get(row["id"]) == facts:
                continue
            spoolman_id = row["spoolman_id"]
            if spoolman_id is not None:
                patch = {"remaining_weight": row["remaining_g"], "location": location}
                updated = await self._call(client, "PATCH", f"{url}/api/v1/spool/{spoolman_id}", "a spool's update",
                                           json=patch, missing_ok=True)  # fmt: skip
                if updated is None:
                    spoolman_id = None  # deleted in Spoolman: made again below
            if spoolman_id is None:
                filament = await self._filament(client, url, row, vendors, filaments)
                body: dict[str, Any] = {"filament_id": filament, "location": location,
                                        "comment": f"bambupi spool {row['id']}"}  # fmt: skip
                if row["remaining_g"] is not None:
                    body["remaining_weight"] = row["remaining_g"]
                created = await self._call(client, "POST", f"{url}/api/v1/spool", "a new spool", json=body)
                spoolman_id = _id(created, "a new spool")
                await self._keep_id(row["id"], spoolman_id)
            self._sent[row["id"]] = (spoolman_id, row["remaining_g"], location, row["net_g"])
            sent += 1
        return sent

    async def _keep_id(self, spool_id: int, spoolman_id: int) -> None:
        store = self.store
        assert store is not None  # sync_once sends nothing without one
        try:
            await trio.to_thread.run_sync(spools.set_spoolman_id, store, spool_id, spoolman_id)
        except DatabaseError as exc:
            raise SpoolmanError("the Spoolman id of a spool could not be saved here (the database's problem)") \
                from exc

    async def _filament(self, client: httpx.AsyncClient, url: str, row: Mapping[str, Any],
                        vendors: dict[str, int], filaments: dict[tuple[Any, ...], int]) -> int:  # fmt: skip
        """The Spoolman filament of a spool's brand, material, colour and net weight: found, else made."""
        brand, material = row["brand"], row["material"]
        colour = (row["colour"] or "").lstrip("#").lower()
        key = (brand, material, colour, row["net_g"])
        if key in filaments:
            return filaments[key]
        vendor = await self._vendor(client, url, brand, vendors) if brand else None
        params: dict[str, Any] = {"material": material}
        if vendor is not None:
            params["vendor.id"] = vendor
        for found in _list(await self._call(client, "GET", f"{url}/api/v1/filament", "the filaments", params=params),
                           "the filaments"):  # fmt: skip
            same_vendor = (found.get("vendor") or {}).get("id") == vendor if vendor is not None else True
            if found.get("material") == material and (found.get("color_hex") or "").lower() == colour \
                    and found.get("weight") == row["net_g"] and same_vendor:
                filaments[key] = _id(found, "the filaments")
                return filaments[key]
        body: dict[str, Any] = {
            "name": " ".join(p for p in (material, "#" + colour.upper() if colour else "") if p), "material": material,
            "density": DENSITY.get(material.split("-")[0].upper(), DENSITY["PLA"]), "diameter": DIAMETER_MM,
        }
        if vendor is not None:
            body["vendor_id"] = vendor
        if colour:
            body["color_hex"] = colour
        if row["net_g"] is not None:
            body["weight"] = row["net_g"]
        filaments[key] = _id(await self._call(client, "POST", f"{url}/api/v1/filament", "a new filament", json=body),
                             "a new filament")  # fmt: skip
        return filaments[key]

    async def _vendor(self, client: httpx.AsyncClient, url: str, name: str, vendors: dict[str, int]) -> int:
        if name not in vendors:
            found = _list(await self._call(client, "GET", f"{url}/api/v1/vendor", "the vendors", params={"name": name}),
                          "the vendors")  # fmt: skip
            same = [v for v in found if v.get("name") == name]
            vendors[name] = _id(same[0], "the vendors") if same else _id(
                await self._call(client, "POST", f"{url}/api/v1/vendor", "a new vendor", json={"name": name}),
                "a new vendor",
            )
        return vendors[name]

    async def _call(self, client: httpx.AsyncClient, method: str, url: str, what: str, *, missing_ok: bool = False,
                    **request: Any) -> Any:  # fmt: skip
        """One call's JSON answer (None for a 404 when ``missing_ok``); :class:`SpoolmanError` in words otherwise."""
        try:
            answer = await outgoing.send(client, method, url, deadline_s=self._deadline_s,
                                         max_bytes=self._max_bytes, **request)  # fmt: skip
        except trio.TooSlowError:
            raise SpoolmanError(f"no answer for {what} within {self._deadline_s:g} s") from None
        except httpx.HTTPError as exc:
            host = urlsplit(url).hostname or "the server"
            raise SpoolmanError(f"cannot reach {host} ({type(exc).__name__})") from None
        if answer.status == 404 and missing_ok:
            return None
        if not 200 <= answer.status < 300:
            raise SpoolmanError(f"HTTP {answer.status} for {what}")
        if not answer.complete:
            raise SpoolmanError(f"the answer for {what} is larger than {self._max_bytes // 1024} KiB: not Spoolman's")
        try:
            return json.loads(answer.body)
        except (ValueError, RecursionError):
            raise SpoolmanError(f"the answer for {what} is not JSON: is this a Spoolman server?") from None


def _list(answer: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(answer, list) or not all(isinstance(item, dict) for item in answer):
        raise SpoolmanError(f"the answer for {what} is not a list of objects: is this a Spoolman server?")
    return answer


def _id(answer: Any, what: str) -> int:
    value = answer.get("id") if isinstance(answer, dict) else None
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpoolmanError(f"the answer for {what} has no id: is this a Spoolman server?")
    return value
