"""The print history on the web: the ``/history``, ``/history/<id>`` and ``/stats`` pages, ``GET /api/jobs`` (with
filters and paging), ``GET /api/jobs/<id>``, ``GET /api/jobs.csv``, ``GET /api/stats``, a job's plate picture and
the owner's ``DELETE /api/jobs/<id>``.

Handlers run in the front door's worker threads and read the database right here (its methods are blocking and
locked). A database that cannot be read is a warning on the pages (never a 500) and a 503 from the API. Rendering
is :mod:`bambupi.history.page`, the numbers :mod:`bambupi.history.statistics`, the CSV :mod:`bambupi.history.export`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from typing import Any, Final

import bottle
import trio

from bambupi.database import Database, DatabaseError
from bambupi.history.export import jobs_csv
from bambupi.history.page import Filters, render_history, render_job, render_stats
from bambupi.history.statistics import RESULTS, summarize
from bambupi.state_hub import StateHub
from bambupi.web.route_contract import Access, BadRequest, Conflict, NotFound, Unavailable, expose

PAGE_SIZE: Final = 50
# Bounds on what one request reads (each job row is small; 20 000 jobs is years of a busy farm's prints).
EXPORT_MAX_JOBS: Final = 20_000
NO_DATABASE: Final = "no database is configured"

Currency = Callable[[str], str]  # a printer's plug's currency ("" when none); called in trio


class FilterError(ValueError):
    """A filter's value is wrong; the message names the parameter."""


def parse_filters(query: Mapping[str, str]) -> tuple[Filters, dict[str, Any]]:
    """The filters of a query string, and the same as ``Database.jobs`` keywords (``since``/``until`` are local
    days, ``until`` included). Raises FilterError naming the parameter."""
    filters = Filters(**{name: (query.get(name) or "").strip() for name in Filters.__dataclass_fields__})
    if filters.result and filters.result not in RESULTS:
        raise FilterError(f"result: one of {', '.join(RESULTS)}")
    since = _day(filters.since, "since")
    until = _day(filters.until, "until")
    return filters, {
        "printer": filters.printer or None,
        "result": filters.result or None,
        "material": filters.material or None,
        "since": None if since is None else _local_midnight(since),
        "until": None if until is None else _local_midnight(until + timedelta(days=1)),
    }


def _day(text: str, name: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise FilterError(f"{name}: a date as YYYY-MM-DD") from None


def _local_midnight(day: date) -> float:
    return time.mktime((day.year, day.month, day.day, 0, 0, 0, 0, 0, -1))


def _whole(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(query.get(name) or default)
    except ValueError:
        raise BadRequest(f"{name}: must be a whole number") from None
    return min(max(value, low), high)


def add_history_routes(app: bottle.Bottle, hub: StateHub, store: Database | None, *, currency: Currency) -> None:
    def printer_names() -> dict[str, str]:
        return trio.from_thread.run_sync(lambda: {pid: str(hub.printer(pid)["name"]) for pid in hub.ids()})

    def currencies(printers: Mapping[str, str]) -> dict[str, str]:
        return trio.from_thread.run_sync(lambda: {pid: currency(pid) for pid in printers})

    def api_filters() -> dict[str, Any]:
        try:
            return parse_filters(bottle.request.query)[1]
        except FilterError as exc:
            raise BadRequest(str(exc)) from None

    def read(what: Callable[[Database], Any]) -> Any:
        """A read for the API: no database or one that cannot be read is a 503 naming the problem."""
        if store is None:
            raise Unavailable(NO_DATABASE)
        try:
            return what(store)
        except DatabaseError as exc:
            raise Unavailable(str(exc)) from None

    def api_jobs() -> dict[str, Any]:
        query = bottle.request.query
        limit = _whole(query, "limit", PAGE_SIZE, 1, 1000)
        offset = _whole(query, "offset", 0, 0, 10**9)
        where = api_filters()
        if store is None:
            return {"jobs": []}
        return {"jobs": read(lambda db: db.jobs(limit=limit, offset=offset, **where))}

    def api_job(job_id: int) -> dict[str, Any]:
        job = read(lambda db: db.job(job_id))
        if job is None:
            raise NotFound(f"no job {job_id}")
        result: dict[str, Any] = job
        return result

    def api_csv() -> str:
        where = api_filters()
        jobs = read(lambda db: db.jobs(limit=EXPORT_MAX_JOBS, **where))
        bottle.response.content_type = "text/csv; charset=utf-8"
        bottle.response.set_header("Content-Disposition", 'attachment; filename="bambupi-jobs.csv"')
        bottle.response.set_header("Cache-Control", "no-store")
        return jobs_csv(jobs)

    def api_stats() -> dict[str, Any]:
        where = api_filters()
        return summarize(read(lambda db: db.jobs(limit=EXPORT_MAX_JOBS, **where)))

    def thumbnail(job_id: int) -> Any:
        path = read(lambda db: db.thumbnail_path(job_id))
        if path is None or not path.is_file():
            raise NotFound(f"no picture for job {job_id}")
        response = bottle.static_file(path.name, root=str(path.parent), mimetype="image/png")
        if isinstance(response, bottle.HTTPError):  # gone between the check and the read
            raise NotFound(f"no picture for job {job_id}")
        # A job's picture never changes (a new job has a new id); deleting the job removes it.
        response.set_header("Cache-Control", "max-age=86400")
        response.set_header("X-Content-Type-Options", "nosniff")
        return response

    def delete(job_id: int) -> dict[str, Any]:
        job = read(lambda db: db.job(job_id))
        if job is None:
            raise NotFound(f"no job {job_id}")
        if job["ended_at"] is None:
            raise Conflict("this print is still being recorded; delete it once it has ended")
        read(lambda db: db.delete_job(job_id))
        return {"deleted": job_id}

    def page_warning(problem: str | None) -> str | None:
        """Why the page is not all there: a read that failed, else a write that fails (a full or read-only disk:
        what is stored still reads, but a print since is missing until the database takes it)."""
        if store is None:
            return NO_DATABASE
        return problem or store.problem

    def history_page() -> str:
        printers = printer_names()
        query = bottle.request.query
        problem: str | None = None
        jobs: list[dict[str, Any]] = []
        materials: list[str] = []
        page = _whole(query, "page", 1, 1, 10**6)
        try:
            filters, where = parse_filters(query)
        except FilterError as exc:
            filters, where, problem = Filters(), {}, f"Filter not applied: {exc}"
        more = False
        if store is not None:
            try:
                rows = store.jobs(limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE, **where)
                more, jobs = len(rows) > PAGE_SIZE, rows[:PAGE_SIZE]
                materials = _materials(store)
            except DatabaseError as exc:
                problem = f"The print history cannot be read: {exc}"
        for job in jobs:
            printers.setdefault(str(job["printer"]), str(job["printer"]))  # a printer removed since
        return _html(render_history(
            jobs, filters=filters, page=page, more=more, printers=printers, materials=materials,
            currency=currencies(printers), warning=page_warning(problem),
        ))

    def job_page(job_id: int) -> str:
        printers = printer_names()
        problem: str | None = None
        job = None
        if store is not None:
            try:
                job = store.job(job_id)
            except DatabaseError as exc:
                problem = f"The print history cannot be read: {exc}"
        if job is None:
            bottle.response.status = 404 if problem is None and store is not None else 200
        money = trio.from_thread.run_sync(currency, str(job["printer"])) if job is not None else ""
        return _html(render_job(job, job_id=job_id, printers=printers, currency=money, warning=page_warning(problem)))

    def stats_page() -> str:
        printers = printer_names()
        problem: str | None = None
        jobs: list[dict[str, Any]] = []
        if store is not None:
            try:
                jobs = store.jobs(limit=EXPORT_MAX_JOBS)
            except DatabaseError as exc:
                problem = f"The statistics cannot be read: {exc}"
        for job in jobs:
            printers.setdefault(str(job["printer"]), str(job["printer"]))
        used = set(currencies(printers).values()) - {""}
        return _html(render_stats(
            summarize(jobs), printers=printers, currency=used.pop() if len(used) == 1 else "",
            warning=page_warning(problem),
        ))

    expose(app, "GET", "/history", history_page, Access.ANYONE)
    expose(app, "GET", "/history/<job_id:int>", job_page, Access.ANYONE)
    expose(app, "GET", "/stats", stats_page, Access.ANYONE)
    expose(app, "GET", "/api/jobs", api_jobs, Access.ANYONE)
    expose(app, "GET", "/api/jobs.csv", api_csv, Access.ANYONE)
    expose(app, "GET", "/api/jobs/<job_id:int>", api_job, Access.ANYONE)
    expose(app, "GET", "/api/jobs/<job_id:int>/thumbnail", thumbnail, Access.ANYONE)
    expose(app, "DELETE", "/api/jobs/<job_id:int>", delete, Access.OWNER)
    expose(app, "GET", "/api/stats", api_stats, Access.ANYONE)


def _materials(store: Database) -> list[str]:
    """The materials of the recorded jobs, for the filter's choices."""
    with store.reading() as db:
        rows = db.execute(
            "SELECT DISTINCT UPPER(material) FROM job_filaments WHERE material IS NOT NULL AND material != ''"
            " ORDER BY 1"
        ).fetchall()
    return [str(r[0]) for r in rows]


def _html(text: str) -> str:
    bottle.response.content_type = "text/html; charset=utf-8"
    bottle.response.set_header("Cache-Control", "no-store")
    return text
