"""The ``/power`` page, rendered: the template ``power.html`` filled with each printer's figures, its 24 h chart as
SVG coordinates, and the print jobs. Pure: data in, text out (the routes read the data).

It is drawn in the page frame (``bambupi/web/frame.py``, one ``/static/style.css``); its script is
``/static/power.js``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bambupi.web import frame

PAGE: Final = Path(__file__).with_name("power.html")
CHART_HOURS: Final = 24


@dataclass(frozen=True)
class Chart:
    """Where the 24 h chart's parts go in its SVG (``power.html`` draws it: no chart library, nothing fetched)."""

    width: int
    height: int
    pad: int
    hours: float
    top_watts: float
    points: str  # the polyline's "x,y x,y ..."; empty when there are no readings in the window

    @property
    def baseline(self) -> int:
        return self.height - 15

    @property
    def hours_label(self) -> str:
        return f"{self.hours:g}"

    @property
    def top_label(self) -> str:
        return f"{self.top_watts:.0f}"


def chart(
    series: Sequence[Sequence[Any]], *, end: float, hours: float = CHART_HOURS, width: int = 360, height: int = 150
) -> Chart:
    """Watts over the last ``hours`` as a line scaled into ``width`` × ``height``."""
    start = end - hours * 3600
    points = [(float(t), float(w)) for t, w in series if w is not None and start <= float(t) <= end]
    top = max([w for _, w in points] + [10.0]) * 1.1
    pad = 30

    def x(t: float) -> float:
        return pad + (t - start) / (end - start) * (width - pad)

    def y(w: float) -> float:
        return height - 15 - w / top * (height - 25)

    line = " ".join(f"{x(t):.1f},{y(w):.1f}" for t, w in points)
    return Chart(width=width, height=height, pad=pad, hours=hours, top_watts=top, points=line)


def _fmt(value: Any, pattern: str, missing: str = "—") -> str:
    return missing if value is None else pattern.format(value)


def _when(at: float | None) -> str:
    return "—" if at is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(at))


def _printer_view(p: dict[str, Any], now: float) -> dict[str, Any]:
    """What the page shows of one printer, as text (the template escapes it)."""
    view: dict[str, Any] = {"id": str(p["printer"]), "name": str(p["name"]), "plug": p.get("plug") is not None}
    if not view["plug"]:
        return view
    reading = p.get("reading") or {}
    currency = str(p.get("currency") or "")
    last = p.get("last_job") or {}
    auto = p.get("auto_off") or {}
    view["rows"] = [
        ("Plug", str(p["plug"]["address"]) + (" — on" if reading.get("on") else " — off" if reading else "")),
        ("Now", _fmt(reading.get("watts"), "{:.0f} W")),
        ("Today", _fmt(p.get("today_kwh"), "{:.3f} kWh")),
        ("Last print", str(last.get("name") or "—") + " · " + _fmt(last.get("energy_kwh"), "{:.3f} kWh")
         + " · " + _fmt(last.get("cost"), "{:.2f} " + currency)),
        ("Auto-off", str(auto.get("reason", "off")) if auto.get("enabled") else "off"),
    ]
    alerts = [str(text) for text in (p.get("error"), p.get("warning")) if text]
    if auto.get("warning"):
        alerts.append(f"Auto-off: {auto.get('reason')}")
    view["alerts"] = alerts
    view["chart"] = chart(p.get("series") or [], end=now)
    return view


JOB_COLUMNS: Final = ("Printer", "Print", "Start", "Duration", "Result", "Energy", "Cost", "Peak")


def _job_cells(job: dict[str, Any]) -> list[str]:
    duration = job.get("duration_s")
    return [
        str(job.get("printer")),
        str(job.get("name") or "—"),
        _when(job.get("started_at")),
        "running" if job.get("ended_at") is None else _fmt(None if duration is None else duration / 60, "{:.0f} min"),
        str(job.get("result") or "—"),
        _fmt(job.get("energy_kwh"), "{:.3f} kWh"),
        _fmt(job.get("cost"), "{:.2f}"),
        _fmt(job.get("peak_watts"), "{:.0f} W"),
    ]


def render_page(
    printers: Sequence[dict[str, Any]], jobs: Sequence[dict[str, Any]], *, now: float, warning: str | None = None
) -> str:
    """``warning``: the power log's problem (full disk, unreadable file), shown above everything."""
    html: str = frame.render(
        PAGE,
        printers=[_printer_view(p, now) for p in printers],
        jobs=[_job_cells(j) for j in jobs],
        columns=JOB_COLUMNS,
        warning=warning,
    )
    return html
