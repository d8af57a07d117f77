"""A print history as a box would have recorded it, written through the real ``Database`` methods into a real SQLite
file: two printers (one since removed from the config), three months, every result, several materials and colours,
a plate picture, a timeline with a pause and an HMS message, a job whose file could not be read, one still running,
and names a spreadsheet would trip on (a formula, a comma, quotes)."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from bambupi.database import Database, JobEnd, JobFilamentUse
from bambupi.jobfile.threemf import PlannedFilament

FORMULA_NAME = "=HYPERLINK(\"http://evil\",\"x\")"
HMS_CODE = "0300_0100_0001_0007"
HMS_TEXT = "The heatbed temperature is abnormal."


def local(year: int, month: int, day: int, hour: int = 10) -> float:
    return time.mktime((year, month, day, hour, 0, 0, 0, 0, -1))


def png(colour: tuple[int, int, int] = (200, 60, 20)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(out, format="PNG")
    return out.getvalue()


@dataclass(frozen=True)
class Planned:
    material: str
    colour: str
    grams: float  # planned
    used: float | None  # used grams at the end (None: not known)


@dataclass(frozen=True)
class Job:
    printer: str
    name: str
    start: float
    result: str | None  # None: still printing
    duration_s: float = 3600.0
    predicted_s: float | None = 3500.0
    filaments: tuple[Planned, ...] = ()
    energy_kwh: float | None = None
    cost: float | None = None
    file_problem: str | None = None
    error_text: str | None = None
    thumbnail: bool = False
    events: tuple[tuple[float, str, str | None, str | None], ...] = ()  # (offset s, kind, code, text)


JOBS: tuple[Job, ...] = (
    Job("garage", "Gear", local(2026, 9, 16), "finished", 5400, 5000,
        (Planned("PLA", "#FF0000", 30.0, 30.0),), 0.2, 0.06),
    Job("garage", 'Clip "quoted"', local(2026, 9, 15), "unknown", 600, None,
        (Planned("PLA", "#FFFFFF", 8.0, 3.5),)),
    Job("attic", "Bracket, large", local(2026, 10, 5), "cancelled", 1800, 4000,
        (Planned("PETG", "#0000FF", 40.0, 20.0),), 0.05, 0.015),
    Job("attic", "Vase", local(2026, 10, 6), "finished", 7200, 7000, (), 0.3, 0.09,
        file_problem="FTPS refused the login"),
    Job("garage", "Benchy", local(2026, 11, 20), "finished", 3720, 3400,
        (Planned("PLA", "#FF0000", 12.3, 12.3), Planned("PETG", "#000000", 4.1, 4.1)), 0.12, 0.04, thumbnail=True,
        events=((0, "started", None, None), (600, "paused", None, None), (660, "resumed", None, None),
                (900, "hms_raised", HMS_CODE, HMS_TEXT), (960, "hms_cleared", HMS_CODE, HMS_TEXT),
                (3720, "finished", None, None))),
    Job("garage", FORMULA_NAME, local(2026, 11, 21), "failed", 1200, 3000,
        (Planned("PLA", "#00FF00", 10.0, 4.0),), 0.03, 0.01, error_text="Filament ran out. Load new filament."),
    Job("garage", "Running now", local(2026, 12, 1), None, 0, 3600, (Planned("ASA", "#808080", 25.0, None),)),
)


def fill(path: Path) -> dict[str, int]:
    """Write :data:`JOBS` into the database at ``path``; their ids by name."""
    db = Database(path)
    ids: dict[str, int] = {}
    for job in JOBS:
        job_id = db.start_job(job.printer, job.name, "P1S", job.start)
        ids[job.name] = job_id
        if job.file_problem is not None:
            db.set_job_file_problem(job_id, job.file_problem)
        else:
            db.set_job_file(
                job_id, path=f"/cache/{job.name}.3mf", plate=1, predicted_s=job.predicted_s,
                planned_g=sum(f.grams for f in job.filaments),
                filaments=[PlannedFilament(i + 1, f.material, f.colour, f.grams, None, None)
                           for i, f in enumerate(job.filaments)],
                thumbnail_png=png() if job.thumbnail else None,
            )
        for offset, kind, code, text in job.events:
            db.add_job_event(job_id, job.start + offset, kind, code, text)
        if job.result is None:
            continue
        used = [f.used for f in job.filaments if f.used is not None]
        db.set_job_usage(job_id, sum(used) if used else None,
                         {i + 1: JobFilamentUse(f.used, ams=0, tray=i) for i, f in enumerate(job.filaments)})
        db.end_job(job_id, JobEnd(
            ended_at=job.start + job.duration_s, result=job.result, energy_kwh=job.energy_kwh, cost=job.cost,
            peak_watts=None, duration_s=job.duration_s, print_error="0300_4000" if job.error_text else None,
            error_text=job.error_text,
        ))
    db.close()
    return ids
