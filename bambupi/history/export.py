"""The job history as CSV (``GET /api/jobs.csv``): one row per job, the same rows as the ``/history`` page with the
same filters. Pure: job rows in, text out.

Quoting is RFC 4180's, by the csv module (``\\r\\n`` line ends, fields with commas, quotes or line breaks quoted).
A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula (CSV injection: a job name
comes from whoever sent the print), so a text cell starting with one of those, or with a tab or carriage return,
gets a leading ``'``. Number cells are written by the box and never start so.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterable, Mapping
from typing import Any, Final

from bambupi.history.statistics import filaments_of, job_grams

COLUMNS: Final = (
    "id", "printer", "name", "model", "started", "ended", "duration_min", "predicted_min", "result", "error",
    "filaments", "grams", "energy_kwh", "cost", "grams_unknown_reason",
)
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def safe_text(value: str) -> str:
    """A text cell a spreadsheet shows as text, never runs."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def filaments_cell(job: Mapping[str, Any]) -> str:
    """``PLA #FF0000 12.3 g; PETG #000000 ? g``: each filament's material, colour and grams (``?``: unknown)."""
    parts = []
    for f in filaments_of(job):
        grams = "?" if f.grams is None else f"{f.grams:.1f}"
        parts.append(" ".join(p for p in (f.material, f.colour, f"{grams} g") if p))
    return "; ".join(parts)


def _local(at: Any) -> str:
    return "" if at is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(at)))


def _number(value: Any, digits: int) -> str:
    return "" if value is None else f"{float(value):.{digits}f}"


def _minutes(seconds: Any) -> str:
    return "" if seconds is None else f"{float(seconds) / 60:.1f}"


def job_row(job: Mapping[str, Any]) -> list[str]:
    grams = job_grams(job)
    error = job.get("error_text") or job.get("print_error") or ""
    return [
        str(job["id"]),
        safe_text(str(job.get("printer") or "")),
        safe_text(str(job.get("name") or "")),
        safe_text(str(job.get("model") or "")),
        _local(job.get("started_at")),
        _local(job.get("ended_at")),
        _minutes(job.get("duration_s")),
        _minutes(job.get("predicted_s")),
        str(job.get("result") or ("running" if job.get("ended_at") is None else "")),
        safe_text(str(error)),
        safe_text(filaments_cell(job)),
        _number(grams, 1),
        _number(job.get("energy_kwh"), 3),
        _number(job.get("cost"), 2),
        safe_text(str(job.get("file_problem") or "")),
    ]


def jobs_csv(jobs: Iterable[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180; QUOTE_MINIMAL quotes what needs it
    writer.writerow(COLUMNS)
    for job in jobs:
        writer.writerow(job_row(job))
    return out.getvalue()
