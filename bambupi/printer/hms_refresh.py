"""Keeps Bambu's official HMS texts fresh: one table per device type (the first 3 characters of a serial) in the
configured language, fetched from Bambu's HMS service in the background and stored under the data folder.

- Start-up never waits on the network: the stored copies are loaded (a corrupt one is ignored with one log line and
  replaced by the next good fetch), handed to the hub, and only then the fetching starts.
- A table is fetched when there is none, or the stored one is a week old. Its fetch time is stored with it (UTC
  epoch seconds, so a restart keeps the week); a time in the future (the clock was stepped back) counts as stale,
  so a clock step can neither hide a table from refreshing for years nor cause more than one fetch.
- A failed fetch is retried after :data:`RETRY_FIRST_S`, doubling up to :data:`RETRY_MAX_S` (monotonic clock).
- Every fetch has a total deadline and a size limit (outgoing.send); a broken, empty, wrong-language or huge
  answer is refused and the last good table stays.
- ``[alerts] language`` applies live (:meth:`HmsRefresher.configure`): the stored tables in that language are
  loaded and the missing ones fetched.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import httpx
import trio

from bambupi import outgoing
from bambupi.atomic_file import write_atomically
from bambupi.config import AlertsConfig, Config, PrinterConfig
from bambupi.printer.hms_texts import (
    MAX_ANSWER_BYTES,
    Catalog,
    TableError,
    UpToDate,
    parse_service_data,
    read_service_answer,
)

log = logging.getLogger("bambupi.hms")

REFRESH_S: Final = 7 * 24 * 3600.0
RETRY_FIRST_S: Final = 5 * 60.0
RETRY_MAX_S: Final = 6 * 3600.0
FETCH_DEADLINE_S: Final = 60.0  # about 1 MB over a slow home uplink
# Re-read the wall clock at least this often while waiting for a weekly refresh, so a clock step is noticed.
RECHECK_S: Final = 3600.0
STORE_FORMAT: Final = 1
_DEVICE: Final = re.compile(r"[0-9A-Z]{3}")


class Catalogs(Protocol):
    """Where new tables go (the StateHub)."""

    def set_hms_catalogs(self, catalogs: dict[str, Catalog]) -> None: ...


@dataclass
class _Table:
    catalog: Catalog
    fetched_at: float  # UTC epoch seconds
    source: str  # "stored" | "service"


@dataclass
class _Attempts:
    failures: int = 0
    retry_at: float = -math.inf  # trio clock


class HmsRefresher:
    def __init__(
        self,
        hub: Catalogs,
        folder: Path,
        alerts: AlertsConfig,
        printers: Iterable[PrinterConfig],
        *,
        wall_clock: Callable[[], float] = time.time,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._hub = hub
        self.folder = folder
        self._service = alerts.hms_service.rstrip("/")
        self._language = alerts.language
        self._devices = _devices(p.serial for p in printers)
        self._wall = wall_clock
        self._client = client
        self._tables: dict[str, _Table] = {}
        self._attempts: dict[str, _Attempts] = {}
        self._changed = trio.Event()
        self._republish = False  # the tables the hub has are not the wanted ones (another language)
        self._looked_up: set[str] = set()  # devices whose stored table was read (or found missing) in this language
        self.last_fetch: dict[str, Any] | None = None  # {"ok", "at", "device", "error"}: for /healthz

    # -- the service's side ------------------------------------------------------------------------------------

    # -- the component (bambupi.component) --------------------------------------------------------------------

    name = "hms_texts"
    sections = ("alerts", "printer")

    def add_routes(self, web: object) -> None:
        pass  # the texts reach the page through the printers' state

    async def apply(self, old: Config, new: Config) -> list[str]:
        language = self._language
        self.configure(new.alerts, new.printers)
        return [f"HMS texts: {new.alerts.language}"] if new.alerts.language != language else []

    def configure(self, alerts: AlertsConfig, printers: Iterable[PrinterConfig]) -> None:
        """New settings: another language or service reloads and refetches, new printers' device types are
        fetched. Returns at once; the work happens in :meth:`run`."""
        service, language = alerts.hms_service.rstrip("/"), alerts.language
        devices = _devices(p.serial for p in printers)
        if (service, language, devices) == (self._service, self._language, self._devices):
            return
        if (service, language) != (self._service, self._language):
            self._tables.clear()
            self._attempts.clear()
            self._looked_up.clear()
            self._republish = True
        self._service, self._language, self._devices = service, language, devices
        self._changed.set()

    def health(self) -> dict[str, Any]:
        """The texts' part of ``/healthz``. A failed fetch is reported but is no fault: the last table, or the
        shipped English one, still names every code."""
        tables = {
            device: {"source": t.source, "fetched_at": t.fetched_at, "version": t.catalog.version}
            for device, t in self._tables.items()
        }
        return {"hms_fetch": {"ok": True, "language": self._language, "tables": tables, "last_fetch": self.last_fetch}}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()  # never wait for the disk or the network before the service is ready
        async with self._http() as client:
            while True:
                self._changed = trio.Event()
                await self._load_stored()
                for device in self._devices:
                    if self._due(device):
                        await self._fetch(client, device)
                with trio.move_on_after(self._wait_s()):
                    await self._changed.wait()

    # -- internals --------------------------------------------------------------------------------------------

    def _http(self) -> Any:
        if self._client is not None:
            return _Borrowed(self._client)
        return httpx.AsyncClient(follow_redirects=True)

    def _path(self, device: str) -> Path:
        return self.folder / f"hms_{self._language}_{device}.json"

    async def _load_stored(self) -> None:
        # Each stored file is read once per language (not at every wake-up: a missing one stays missing).
        missing = [d for d in self._devices if d not in self._tables and d not in self._looked_up]
        loaded = False
        for device in missing:
            self._looked_up.add(device)
            table = await trio.to_thread.run_sync(self._read, device, self._language)
            if table is not None and device in self._devices:
                self._tables[device] = table
                loaded = True
        if loaded or self._republish or any(d not in self._devices for d in self._tables):
            self._tables = {d: t for d, t in self._tables.items() if d in self._devices}
            self._republish = False
            self._publish()

    def _read(self, device: str, language: str) -> _Table | None:
        path = self.folder / f"hms_{language}_{device}.json"
        try:
            body = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("HMS texts: cannot read %s (%s); fetching a new copy", path, exc.strerror or exc)
            return None
        try:
            root = json.loads(body)
            if not isinstance(root, dict) or root.get("format") != STORE_FORMAT or root.get("language") != language:
                raise TableError("not a stored table of this version and language")
            fetched_at = root.get("fetched_at")
            if not isinstance(fetched_at, int | float) or isinstance(fetched_at, bool) or not math.isfinite(fetched_at):
                raise TableError("no fetch time")
            data = root.get("data")
            if not isinstance(data, dict):
                raise TableError("no data")
            catalog = parse_service_data(data, language, int(root.get("ver", 0)))
        except (ValueError, TypeError, RecursionError) as exc:  # TableError is a ValueError
            log.warning("HMS texts: ignored the stored %s (%s); the next good fetch replaces it", path.name, exc)
            return None
        return _Table(catalog, float(fetched_at), "stored")

    def _due(self, device: str) -> bool:
        attempts = self._attempts.get(device)
        if attempts is not None and attempts.failures and trio.current_time() < attempts.retry_at:
            return False
        table = self._tables.get(device)
        if table is None:
            return True
        age = self._wall() - table.fetched_at
        return age < 0 or age >= REFRESH_S

    def _wait_s(self) -> float:
        now = trio.current_time()
        waits = [RECHECK_S]
        for device in self._devices:
            attempts = self._attempts.get(device)
            if attempts is not None and attempts.failures:
                waits.append(attempts.retry_at - now)
            table = self._tables.get(device)
            if table is not None and (attempts is None or not attempts.failures):
                waits.append(table.fetched_at + REFRESH_S - self._wall())
        return max(0.0, min(waits))

    async def _fetch(self, client: httpx.AsyncClient, device: str) -> None:
        language, service = self._language, self._service
        params = {"lang": language, "d": device}
        stored = self._tables.get(device)
        if stored is not None:
            params["v"] = str(stored.catalog.version)  # "201": nothing newer
        try:
            answer = await outgoing.send(
                client, "GET", f"{service}/query.php", deadline_s=FETCH_DEADLINE_S, max_bytes=MAX_ANSWER_BYTES,
                params=params,
            )
            if not answer.complete:
                raise TableError(f"the answer is larger than {MAX_ANSWER_BYTES} bytes; not read further")
            if answer.status != 200:
                raise TableError(f"HTTP {answer.status}")
            # Up to 8 MiB of JSON: read in a worker thread, not on the loop every other part shares.
            parsed, data = await trio.to_thread.run_sync(read_service_answer, answer.body, language)
        except (httpx.HTTPError, trio.TooSlowError, OSError, TableError) as exc:
            self._failed(device, _reason(exc))
            return
        if (language, service) != (self._language, self._service):
            return  # the settings changed meanwhile: this table is not wanted any more
        now = self._wall()
        if isinstance(parsed, UpToDate):
            if stored is None:
                self._failed(device, "the service said 'up to date' for a table we do not have")
                return
            catalog = stored.catalog
            data = _stored_data(stored.catalog)
        else:
            catalog = parsed
        self._tables[device] = _Table(catalog, now, "service")
        await trio.to_thread.run_sync(self._write, device, language, catalog.version, now, data)
        self._succeeded(device, now)
        if not isinstance(parsed, UpToDate):
            log.info("HMS texts: %d codes in %r for device type %s (version %d)", len(catalog.hms), language,
                     device, catalog.version)
            self._publish()

    def _write(self, device: str, language: str, version: int, fetched_at: float, data: dict[str, Any]) -> None:
        body = json.dumps(
            {"format": STORE_FORMAT, "language": language, "device": device, "ver": version, "fetched_at": fetched_at,
             "data": data},
            ensure_ascii=False,
        ).encode("utf-8")
        path = self.folder / f"hms_{language}_{device}.json"
        try:
            write_atomically(path, body, mode=0o644)
        except OSError as exc:
            log.warning("HMS texts: cannot store %s (%s); kept in memory", path, exc.strerror or exc)

    def _failed(self, device: str, reason: str) -> None:
        attempts = self._attempts.setdefault(device, _Attempts())
        attempts.failures += 1
        delay = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** min(attempts.failures - 1, 20))
        attempts.retry_at = trio.current_time() + delay
        if attempts.failures == 1:  # said once when it goes bad, not at every retry
            log.warning("HMS texts: fetching %r for device type %s failed (%s); keeping the last table, retrying",
                        self._language, device, reason)
        self.last_fetch = {"ok": False, "at": self._wall(), "device": device, "error": reason}

    def _succeeded(self, device: str, now: float) -> None:
        attempts = self._attempts.pop(device, None)
        if attempts is not None and attempts.failures:
            log.info("HMS texts: fetching for device type %s works again", device)
        self.last_fetch = {"ok": True, "at": now, "device": device, "error": None}

    def _publish(self) -> None:
        self._hub.set_hms_catalogs({device: table.catalog for device, table in self._tables.items()})


class _Borrowed:
    """A client the caller owns (tests): used, not closed."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def __aenter__(self) -> httpx.AsyncClient:
        return self._client

    async def __aexit__(self, *_: object) -> None:
        return None


def _devices(serials: Iterable[str]) -> frozenset[str]:
    return frozenset(serial[:3].upper() for serial in serials if _DEVICE.fullmatch(serial[:3].upper()))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, trio.TooSlowError):
        return f"no answer within {FETCH_DEADLINE_S:.0f} s"
    # httpx's messages name the URL, which holds no secret here; keep them short anyway.
    return (str(exc) or type(exc).__name__)[:200]


def _stored_data(catalog: Catalog) -> dict[str, Any]:
    """A catalog back in the service's ``data`` shape (to store a table the service confirmed as current)."""
    return {
        "device_hms": {catalog.language: [{"ecode": k, "intro": v[0].text} for k, v in catalog.hms.items()]},
        "device_error": {catalog.language: [{"ecode": k, "intro": v[0].text} for k, v in catalog.errors.items()]},
    }
