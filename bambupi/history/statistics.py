"""Print statistics from job rows (as ``Database.jobs`` returns them): totals, per month, per material and colour,
per printer. Pure: rows in, numbers out; the routes read the rows, the page and ``GET /api/stats`` show the result.

The rules, in one place so the page, the CSV and the statistics agree (docs/history.md says them to the owner):
- A job's grams per filament are its ``used_g`` (planned grams on finish, proportional on failure or cancel: the
  recorder's rule); a filament whose used grams are unknown counts no grams.
- Success rate = finished / (finished + failed). A cancelled job (the owner stopped it) and a job whose end was not
  seen (``unknown``) are counted apart and left out of the rate: neither says whether the printer prints well.
  Running jobs count in nothing but ``running``.
- Print hours are the durations of ended jobs, whatever their result. The average print time of a material is over
  its finished jobs (a job of two materials counts for both).
- A job's month is the month of its start in the box's local time.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

RESULTS: Final = ("finished", "failed", "cancelled", "unknown")


@dataclass(frozen=True)
class FilamentGrams:
    """One filament of a job as the page, the CSV and the statistics count it."""

    material: str
    colour: str  # "#RRGGBB" or ""
    grams: float | None  # used; None: unknown
    planned: float | None = None  # what the 3MF planned (shown while the job runs; never counted)


def filaments_of(job: Mapping[str, Any]) -> list[FilamentGrams]:
    """The job's filaments in the 3MF's order, with the grams they used."""
    rows = sorted(job.get("filaments") or (), key=lambda f: int(f.get("idx") or 0))
    return [
        FilamentGrams(
            material=str(f.get("material") or "?"),
            colour=str(f.get("colour") or ""),
            grams=None if f.get("used_g") is None else float(f["used_g"]),
            planned=None if f.get("planned_g") is None else float(f["planned_g"]),
        )
        for f in rows
    ]


def job_grams(job: Mapping[str, Any]) -> float | None:
    """The job's total grams: the sum of its filaments' known grams; None when none is known."""
    known = [f.grams for f in filaments_of(job) if f.grams is not None]
    return sum(known) if known else None


def month_of(at: float) -> str:
    """``YYYY-MM`` of an epoch time in the box's local time."""
    return time.strftime("%Y-%m", time.localtime(at))


class _Tally:
    """Sums for one group of jobs (all, a month, a printer)."""

    def __init__(self) -> None:
        self.jobs = 0
        self.results = dict.fromkeys((*RESULTS, "running"), 0)
        self.print_s = 0.0
        self.grams = 0.0
        self.energy_kwh = 0.0
        self.cost = 0.0
        self.grams_by_material: dict[str, float] = {}
        self.grams_by_colour: dict[tuple[str, str], float] = {}

    def add(self, job: Mapping[str, Any], filaments: list[FilamentGrams]) -> None:
        self.jobs += 1
        result = job.get("result")
        self.results[result if result in RESULTS else "running" if job.get("ended_at") is None else "unknown"] += 1
        if job.get("ended_at") is not None and job.get("duration_s") is not None:
            self.print_s += float(job["duration_s"])
        self.energy_kwh += float(job.get("energy_kwh") or 0.0)
        self.cost += float(job.get("cost") or 0.0)
        for f in filaments:
            if f.grams is not None:
                self.grams += f.grams
                self.grams_by_material[f.material] = self.grams_by_material.get(f.material, 0.0) + f.grams
                key = (f.material, f.colour)
                self.grams_by_colour[key] = self.grams_by_colour.get(key, 0.0) + f.grams

    def to_json(self) -> dict[str, Any]:
        judged = self.results["finished"] + self.results["failed"]
        return {
            "jobs": self.jobs,
            **self.results,
            "success_rate": self.results["finished"] / judged if judged else None,
            "print_hours": self.print_s / 3600,
            "grams": self.grams,
            "grams_by_material": dict(sorted(self.grams_by_material.items(), key=lambda kv: (-kv[1], kv[0]))),
            "grams_by_colour": [
                {"material": material, "colour": colour, "grams": grams}
                for (material, colour), grams in sorted(self.grams_by_colour.items(), key=lambda kv: (-kv[1], kv[0]))
            ],
            "energy_kwh": self.energy_kwh,
            "cost": self.cost,
        }


def summarize(jobs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The statistics of ``jobs`` (any order). Months are oldest first; materials and colours by grams, printers
    by jobs, most first."""
    total = _Tally()
    months: dict[str, _Tally] = {}
    printers: dict[str, _Tally] = {}
    material_times: dict[str, list[float]] = {}
    for job in jobs:
        filaments = filaments_of(job)
        total.add(job, filaments)
        months.setdefault(month_of(float(job["started_at"])), _Tally()).add(job, filaments)
        printers.setdefault(str(job.get("printer")), _Tally()).add(job, filaments)
        if job.get("result") == "finished" and job.get("duration_s") is not None:
            for material in {f.material for f in filaments}:
                material_times.setdefault(material, []).append(float(job["duration_s"]))
    return {
        "totals": total.to_json(),
        "months": [{"month": month, **tally.to_json()} for month, tally in sorted(months.items())],
        "printers": [
            {"printer": printer, **tally.to_json()}
            for printer, tally in sorted(printers.items(), key=lambda kv: (-kv[1].jobs, kv[0]))
        ],
        "average_print_s": [
            {"material": material, "jobs": len(times), "average_s": sum(times) / len(times)}
            for material, times in sorted(material_times.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        ],
    }
