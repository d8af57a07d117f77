"""Power on the web: ``GET /api/power``, the ``/power`` page (with the latest print jobs; the whole history and its
API are :mod:`bambupi.history.routes`), and the owner's plug switch and auto-off cancel (login + CSRF, like every
change).

Handlers run in the front door's worker threads: the live readings come from trio through
``trio.from_thread.run_sync``; the database is read right here (its methods are blocking and locked).
The page's rendering is :mod:`bambupi.power.page`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Sequence
from typing import Any, Final

import bottle
import trio

from bambupi.database import Database, DatabaseError, Sample
from bambupi.outgoing import OneAtATime
from bambupi.power.page import CHART_HOURS, render_page
from bambupi.power.plugs import PlugError
from bambupi.power.service import PowerService, SwitchRefused, today_energy
from bambupi.state_hub import StateHub
from bambupi.web.responses import read_json_body
from bambupi.web.route_contract import Access, BadGateway, BadRequest, Conflict, NotFound, caller_origin, expose

log = logging.getLogger("bambupi.power")

CHART_BUCKET_S: Final = 300.0


def add_power_routes(app: bottle.Bottle, hub: StateHub, power: PowerService, store: Database | None) -> None:
    switching = OneAtATime()  # printers whose plug a request is switching now

    def printer_data(printer_id: str, *, hours: float, history: _History) -> dict[str, Any]:
        live, unwritten = trio.from_thread.run_sync(lambda: (power.status(printer_id), power.unwritten(printer_id)))
        now = time.time()
        midnight = _local_midnight(now)
        last_job = None
        today_kwh = None
        series: list[tuple[float, float | None]] = []
        if store is not None and history.readable:
            # A database that cannot be read leaves the history out; its problem is the answer's ``warning``.
            try:
                today = store.samples(printer_id, midnight) + unwritten
                today_kwh = today_energy(today, max_gap_s=3 * power.settings.sample_interval_s)
                done = [j for j in store.jobs(printer_id, limit=5) if j["ended_at"] is not None]
                last_job = done[0] if done else None
                series = store.series(printer_id, now - hours * 3600, CHART_BUCKET_S)
            except DatabaseError:
                history.readable = False
        series = merge_series(series, unwritten, CHART_BUCKET_S)
        return {**live, "today_kwh": today_kwh, "last_job": last_job, "series": [[t, w] for t, w in series]}

    def hours_param() -> float:
        try:
            hours = float(bottle.request.query.get("hours", str(CHART_HOURS)))
        except ValueError:
            raise BadRequest("hours: must be a number") from None
        if not 0 < hours <= 24 * 31:
            raise BadRequest("hours: must be between 0 and 744")
        return hours

    def api_power() -> dict[str, Any]:
        hours = hours_param()
        ids = trio.from_thread.run_sync(hub.ids)
        history = _History()
        printers = {pid: printer_data(pid, hours=hours, history=history) for pid in ids}
        return {"printers": printers, "warning": store.problem if store is not None else None}

    def switch(printer_id: str) -> dict[str, Any]:
        body = read_json_body() or {}
        on, confirmed = body.get("on"), body.get("confirm", False)
        if not isinstance(on, bool):
            raise BadRequest('on: required, true or false (JSON body {"on": false})')
        if not isinstance(confirmed, bool):
            raise BadRequest("confirm: true or false")
        if not trio.from_thread.run_sync(power.has_plug, printer_id):
            raise NotFound(f"no plug configured for printer {printer_id!r}")
        # This thread waits for the plug (within its deadline, ``timeout_s`` a request): one switch per plug at a
        # time, so clicks on a plug that hangs hold one web thread, not all of them.
        with switching.claim(printer_id) as mine:
            if not mine:
                raise Conflict("the plug is being switched already; try again when that is done")
            try:
                reading = trio.from_thread.run(functools.partial(power.switch, printer_id, on, confirmed=confirmed))
            except SwitchRefused as exc:
                # 409: the printer's state conflicts with the request; the page asks this question and sends it
                # again with "confirm": true.
                raise Conflict(f"{exc} Send \"confirm\": true to switch off anyway.", confirm=str(exc)) from None
            except PlugError as exc:
                raise BadGateway(str(exc)) from None
        log.info("%s: plug switched %s by %s", printer_id, "on" if on else "off", caller_origin())
        return {"printer": printer_id, "reading": reading.to_json()}

    def cancel_auto_off(printer_id: str) -> dict[str, Any]:
        cancelled, status = trio.from_thread.run_sync(
            lambda: (power.cancel_auto_off(printer_id), power.auto_off.status(printer_id))
        )
        if cancelled:
            log.info("%s: auto-off cancelled by %s", printer_id, caller_origin())
        # Nothing pending is no error, but the answer says so, with the current state of auto-off.
        return {"printer": printer_id, "cancelled": cancelled, "auto_off": status}

    def page() -> str:
        ids = trio.from_thread.run_sync(hub.ids)
        names = trio.from_thread.run_sync(lambda: {pid: hub.printer(pid)["name"] for pid in ids})
        history = _History()
        printers = [{**printer_data(pid, hours=CHART_HOURS, history=history), "name": names[pid]} for pid in ids]
        jobs: list[dict[str, Any]] = []
        with contextlib.suppress(DatabaseError):  # shown as the page's warning
            jobs = store.jobs(limit=100) if store is not None and history.readable else []
        bottle.response.content_type = "text/html; charset=utf-8"
        bottle.response.set_header("Cache-Control", "no-store")
        return render_page(printers, jobs, now=time.time(), warning=store.problem if store is not None else None)

    expose(app, "GET", "/api/power", api_power, Access.ANYONE)
    expose(app, "POST", "/api/printers/<printer_id>/plug", switch, Access.OPERATOR)
    expose(app, "POST", "/api/printers/<printer_id>/auto-off/cancel", cancel_auto_off, Access.OPERATOR)
    expose(app, "GET", "/power", page, Access.ANYONE)


class _History:
    """One request's reads of the power log: after the first that fails (each waits at most the store's read
    timeout, ~1 s) the rest are skipped, so a locked or broken file costs a request one wait, not one per read."""

    def __init__(self) -> None:
        self.readable = True


def _local_midnight(now: float) -> float:
    local = time.localtime(now)
    return time.mktime((local.tm_year, local.tm_mon, local.tm_mday, 0, 0, 0, 0, 0, -1))


def merge_series(
    stored: Sequence[tuple[float, float | None]], unwritten: Sequence[Sample], bucket_s: float
) -> list[tuple[float, float | None]]:
    """The stored buckets plus buckets made from samples not yet written (they are always the newest)."""
    buckets: dict[float, list[float]] = {}
    for sample in unwritten:
        if sample.watts is not None:
            buckets.setdefault(sample.at // bucket_s * bucket_s, []).append(sample.watts)
    merged = dict(stored)
    for at, values in buckets.items():
        merged.setdefault(at, sum(values) / len(values))
    return sorted(merged.items())
