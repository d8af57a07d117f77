"""The ``/history``, ``/history/<id>`` and ``/stats`` pages, rendered: the templates beside this file filled with what
a person reads of each job (text, already formatted) and the statistics' SVG charts. Pure: data in, text out (the
routes read the data). They are drawn in the page frame (``bambupi/web/frame.py``, one ``/static/style.css``); the only
script, ``/static/history.js``, is the owner's delete button: filters, paging and CSV are plain links and forms.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

from bambupi.history.charts import Bar, bar_chart
from bambupi.history.statistics import RESULTS, FilamentGrams, filaments_of, job_grams
from bambupi.web import frame

HERE: Final = Path(__file__).parent
_COLOUR: Final = re.compile(r"#[0-9A-Fa-f]{6}")
EVENT_WORDS: Final = {
    "started": "Started", "joined": "Seen under way (the box started mid-print)",
    "paused": "Paused", "resumed": "Resumed", "finished": "Finished", "failed": "Failed",
    "cancelled": "Cancelled", "hms_raised": "HMS raised", "hms_cleared": "HMS cleared", "end": "End",
    "connection_lost": "Connection lost", "connection_restored": "Connection back",
}
HMS_KINDS: Final = frozenset({"hms_raised", "hms_cleared"})


@dataclass(frozen=True)
class Filters:
    """The history's filters, as the query string has them (``since``/``until``: ``YYYY-MM-DD``, local days)."""

    printer: str = ""
    result: str = ""
    material: str = ""
    since: str = ""
    until: str = ""

    def query(self, **more: Any) -> str:
        """The query string of these filters (and ``more``), empty values left out."""
        pairs = {**self.__dict__, **more}
        return urlencode({k: v for k, v in pairs.items() if v not in ("", None)})


@dataclass(frozen=True)
class Swatch:
    colour: str  # a checked "#RRGGBB", or "" (no swatch: the text says "colour unknown")
    text: str  # "PLA 12.3 g": the swatch is never the only signal


def _fmt(value: Any, pattern: str, missing: str = "—") -> str:
    return missing if value is None else pattern.format(value)


def local_time(at: float | None) -> str:
    return "—" if at is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(at))


def span(seconds: float | None) -> str:
    """``1 h 05 min``, ``42 min``, ``—``."""
    if seconds is None:
        return "—"
    minutes = round(max(seconds, 0.0) / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def offset(seconds: float) -> str:
    """A time into the job: ``+0:00:00``."""
    whole = int(max(seconds, 0.0))
    return f"+{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def result_text(job: Mapping[str, Any]) -> str:
    """Finished / Failed: <the error's text> / Cancelled / Unknown / Printing."""
    result = job.get("result")
    if result is None:
        return "Printing" if job.get("ended_at") is None else "Unknown"
    if result == "failed":
        error = job.get("error_text") or job.get("print_error")
        return f"Failed: {error}" if error else "Failed"
    return str(result).capitalize() if result in RESULTS else "Unknown"


def duration_text(job: Mapping[str, Any]) -> str:
    """How long it took against the slicer's prediction: ``1 h 05 min (predicted 58 min)``."""
    taken = "running" if job.get("ended_at") is None else span(job.get("duration_s"))
    predicted = job.get("predicted_s")
    return taken if predicted is None else f"{taken} (predicted {span(float(predicted))})"


def swatch(f: FilamentGrams) -> Swatch:
    grams = "? g" if f.planned is None else f"{f.planned:.1f} g planned"  # while it runs: what the file plans
    if f.grams is not None:
        grams = f"{f.grams:.1f} g"
    colour = f.colour if _COLOUR.fullmatch(f.colour) else ""
    return Swatch(colour=colour, text=f"{f.material} {grams}" + ("" if colour else " (colour unknown)"))


def job_view(job: Mapping[str, Any], *, names: Mapping[str, str], currency: str = "") -> dict[str, Any]:
    """What the list and the detail show of one job, as text (the template escapes it)."""
    grams = job_grams(job)
    printer = str(job.get("printer") or "")
    return {
        "id": int(job["id"]),
        "name": str(job.get("name") or "—"),
        "printer": names.get(printer, printer),
        "model": str(job.get("model") or ""),
        "start": local_time(job.get("started_at")),
        "end": local_time(job.get("ended_at")),
        "duration": duration_text(job),
        "result": result_text(job),
        "result_class": str(job.get("result") or "running"),
        "running": job.get("ended_at") is None,
        "thumbnail": f"/api/jobs/{int(job['id'])}/thumbnail" if job.get("thumbnail") else None,
        "swatches": [swatch(f) for f in filaments_of(job)],
        "grams": None if grams is None else f"{grams:.1f} g",
        "grams_unknown": str(job["file_problem"]) if job.get("file_problem") else None,
        "energy": _fmt(job.get("energy_kwh"), "{:.3f} kWh"),
        "cost": _fmt(job.get("cost"), "{:.2f}" + (f" {currency}" if currency else "")),
        "file": str(job.get("file_path") or ""),
        "plate": job.get("plate"),
    }


def timeline(job: Mapping[str, Any]) -> list[dict[str, str]]:
    """The job's events in time order, each with its offset from the start."""
    start = float(job["started_at"])
    rows = []
    for event in sorted(job.get("events") or (), key=lambda e: float(e["at"])):
        kind = str(event.get("kind") or "")
        plain = kind.removeprefix("job_")
        rows.append({
            "offset": offset(float(event["at"]) - start),
            "at": local_time(float(event["at"])),
            "kind": plain,
            "word": EVENT_WORDS.get(plain, plain.replace("_", " ").capitalize()),
            "code": str(event.get("code") or ""),
            "text": str(event.get("text") or ""),
        })
    return rows


def render_history(
    jobs: Sequence[Mapping[str, Any]], *, filters: Filters, page: int, more: bool, printers: Mapping[str, str],
    materials: Sequence[str], currency: Mapping[str, str], warning: str | None = None,
) -> str:
    """``jobs``: this page's rows, newest first; ``more``: an older page exists; ``printers``: id → name."""
    html: str = frame.render(
        HERE / "history.html",
        title="Print history",
        jobs=[job_view(j, names=printers, currency=currency.get(str(j.get("printer")), "")) for j in jobs],
        filters=filters,
        printers=sorted(printers.items(), key=lambda kv: kv[1]),
        results=RESULTS,
        materials=materials,
        newer=filters.query(page=page - 1) if page > 1 else None,
        older=filters.query(page=page + 1) if more else None,
        page=page,
        csv="/api/jobs.csv" + (f"?{filters.query()}" if filters.query() else ""),
        warning=warning,
    )
    return html


def render_job(
    job: Mapping[str, Any] | None, *, job_id: int, printers: Mapping[str, str], currency: str,
    warning: str | None = None,
) -> str:
    """One job's detail; ``job`` None: not found (or not readable: ``warning`` says so)."""
    events = timeline(job) if job is not None else []
    html: str = frame.render(
        HERE / "job.html",
        title=f"Print {job_id}",
        job=job_view(job, names=printers, currency=currency) if job is not None else None,
        job_id=job_id,
        events=events,
        hms=[e for e in events if e["kind"] in HMS_KINDS],
        warning=warning,
    )
    return html


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _money(value: float, currency: str) -> str:
    return f"{value:.2f}" + (f" {currency}" if currency else "")


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f} %"


def _grams(value: float) -> str:
    return f"{value / 1000:.2f} kg" if value >= 1000 else f"{value:.0f} g"


def stats_rows(tally: Mapping[str, Any], currency: str) -> list[tuple[str, str]]:
    """The figures of one tally (totals, a month, a printer) as label and text."""
    return [
        ("Jobs", str(tally["jobs"])),
        ("Finished", str(tally["finished"])),
        ("Failed", str(tally["failed"])),
        ("Cancelled", str(tally["cancelled"])),
        ("Unknown end", str(tally["unknown"])),
        ("Success rate", _rate(tally["success_rate"])),
        ("Print hours", f"{tally['print_hours']:.1f} h"),
        ("Filament", _grams(tally["grams"])),
        ("Energy", f"{tally['energy_kwh']:.2f} kWh"),
        ("Cost", _money(tally["cost"], currency)),
    ]


def render_stats(
    stats: Mapping[str, Any], *, printers: Mapping[str, str], currency: str, warning: str | None = None
) -> str:
    """``currency``: the one every plug uses, or "" (costs of plugs in several currencies are summed as numbers)."""
    months = stats["months"]
    totals = stats["totals"]
    charts = [
        ("Jobs per month", bar_chart([Bar(m["month"], m["jobs"], _count(m["jobs"], "job")) for m in months],
                                     title="jobs per month")),
        ("Print hours per month", bar_chart(
            [Bar(m["month"], m["print_hours"], f"{m['print_hours']:.1f} h") for m in months],
            title="print hours per month")),
        ("Filament by material", bar_chart(
            [Bar(mat, g, _grams(g)) for mat, g in totals["grams_by_material"].items()],
            title="filament grams by material")),
        ("Filament by colour", bar_chart(
            [Bar(f"{c['material']} {c['colour'] or '?'}", c["grams"], _grams(c["grams"]),
                 colour=c["colour"] if _COLOUR.fullmatch(c["colour"]) else "")
             for c in totals["grams_by_colour"][:12]],
            title="filament grams by material and colour")),
    ]
    html: str = frame.render(
        HERE / "stats.html",
        title="Statistics",
        totals=stats_rows(totals, currency),
        months=[
            (m["month"], str(m["jobs"]), f"{m['print_hours']:.1f} h", _rate(m["success_rate"]), _grams(m["grams"]),
             f"{m['energy_kwh']:.2f} kWh", _money(m["cost"], currency))
            for m in reversed(months)
        ],
        printers=[(printers.get(p["printer"], p["printer"]), stats_rows(p, currency)) for p in stats["printers"]],
        averages=[(a["material"], str(a["jobs"]), span(a["average_s"])) for a in stats["average_print_s"]],
        charts=charts,
        warning=warning,
    )
    return html
