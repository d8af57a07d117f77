"""Power and print history on the web: ``GET /api/power``, ``GET /api/jobs``, the ``/power`` page, and the owner's
plug switch and auto-off cancel (login + CSRF, like every change).

Handlers run in the front door's worker threads: the live readings come from trio through
``trio.from_thread.run_sync``; the database is read right here (its methods are blocking and locked).
Rendering (the page, the 24 h chart) is pure: data in, text out.
"""

from __future__ import annotations

import contextlib
import functools
import html
import time
from collections.abc import Sequence
from typing import Any, Final

import bottle
import trio

from bambupi.hub import StateHub
from bambupi.outgoing import OneAtATime
from bambupi.power.meter import PowerService, SwitchRefused, today_energy
from bambupi.power.plugs import PlugError
from bambupi.power.store import PowerStore, Sample, StoreError
from bambupi.web.login import Guard
from bambupi.web.responses import error_response, json_response, read_json_body

CHART_HOURS: Final = 24
CHART_BUCKET_S: Final = 300.0


def add_power_routes(
    app: bottle.Bottle, guard: Guard, hub: StateHub, power: PowerService, store: PowerStore | None
) -> None:
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
                done = [j for j in store.jobs(printer_id, 5) if j["ended_at"] is not None]
                last_job = done[0] if done else None
                series = store.series(printer_id, now - hours * 3600, CHART_BUCKET_S)
            except StoreError:
                history.readable = False
        series = merge_series(series, unwritten, CHART_BUCKET_S)
        return {**live, "today_kwh": today_kwh, "last_job": last_job, "series": [[t, w] for t, w in series]}

    def hours_param() -> float:
        try:
            hours = float(bottle.request.query.get("hours", str(CHART_HOURS)))
        except ValueError:
            raise bottle.HTTPError(400, "hours: must be a number") from None
        if not 0 < hours <= 24 * 31:
            raise bottle.HTTPError(400, "hours: must be between 0 and 744")
        return hours

    def api_power() -> str:
        hours = hours_param()
        ids = trio.from_thread.run_sync(hub.ids)
        history = _History()
        printers = {pid: printer_data(pid, hours=hours, history=history) for pid in ids}
        return json_response(200, {"printers": printers, "warning": store.problem if store is not None else None})

    def api_jobs() -> str:
        printer = bottle.request.query.get("printer") or None
        try:
            limit = min(max(int(bottle.request.query.get("limit", "50")), 1), 1000)
        except ValueError:
            return error_response(400, "limit: must be a whole number")
        try:
            jobs = store.jobs(printer, limit) if store is not None else []
        except StoreError as exc:
            return error_response(503, str(exc))
        return json_response(200, {"jobs": jobs})

    def switch(printer_id: str) -> str:
        refused = guard.refusal()
        if refused is not None:
            return refused
        body = read_json_body() or {}
        on, confirmed = body.get("on"), body.get("confirm", False)
        if not isinstance(on, bool):
            return error_response(400, 'on: required, true or false (JSON body {"on": false})')
        if not isinstance(confirmed, bool):
            return error_response(400, "confirm: true or false")
        if not trio.from_thread.run_sync(power.has_plug, printer_id):
            return error_response(404, f"no plug configured for printer {printer_id!r}")
        # This thread waits for the plug (within its deadline, ``timeout_s`` a request): one switch per plug at a
        # time, so clicks on a plug that hangs hold one web thread, not all of them.
        with switching.claim(printer_id) as mine:
            if not mine:
                return error_response(409, "the plug is being switched already; try again when that is done")
            try:
                reading = trio.from_thread.run(functools.partial(power.switch, printer_id, on, confirmed=confirmed))
            except SwitchRefused as exc:
                # 409: the printer's state conflicts with the request; the page asks this question and sends it
                # again with "confirm": true.
                return json_response(409, {"error": f"{exc} Send \"confirm\": true to switch off anyway.",
                                            "status": 409, "confirm": str(exc)})
            except PlugError as exc:
                return error_response(502, str(exc))
        return json_response(200, {"printer": printer_id, "reading": reading.to_json()})

    def cancel_auto_off(printer_id: str) -> str:
        refused = guard.refusal()
        if refused is not None:
            return refused
        cancelled, status = trio.from_thread.run_sync(
            lambda: (power.cancel_auto_off(printer_id), power.auto_off.status(printer_id))
        )
        # Nothing pending is no error, but the answer says so, with the current state of auto-off.
        return json_response(200, {"printer": printer_id, "cancelled": cancelled, "auto_off": status})

    def page() -> str:
        ids = trio.from_thread.run_sync(hub.ids)
        names = trio.from_thread.run_sync(lambda: {pid: hub.printer(pid)["name"] for pid in ids})
        history = _History()
        printers = [{**printer_data(pid, hours=CHART_HOURS, history=history), "name": names[pid]} for pid in ids]
        jobs: list[dict[str, Any]] = []
        with contextlib.suppress(StoreError):  # shown as the page's warning
            jobs = store.jobs(None, 100) if store is not None and history.readable else []
        bottle.response.content_type = "text/html; charset=utf-8"
        bottle.response.set_header("Cache-Control", "no-store")
        return render_page(printers, jobs, now=time.time(), warning=store.problem if store is not None else None)

    app.route("/api/power", "GET", api_power)
    app.route("/api/jobs", "GET", api_jobs)
    app.route("/api/printers/<printer_id>/plug", "POST", switch)
    app.route("/api/printers/<printer_id>/auto-off/cancel", "POST", cancel_auto_off)
    app.route("/power", "GET", page)


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


# --- rendering (pure) -------------------------------------------------------------------------------------------


def render_chart(
    series: Sequence[Sequence[Any]], *, end: float, hours: float = CHART_HOURS, width: int = 600, height: int = 140
) -> str:
    """An inline SVG line of watts over the last ``hours`` (no chart library, nothing fetched at runtime)."""
    start = end - hours * 3600
    points = [(float(t), float(w)) for t, w in series if w is not None and start <= float(t) <= end]
    top = max([w for _, w in points] + [10.0]) * 1.1
    pad = 30

    def x(t: float) -> float:
        return pad + (t - start) / (end - start) * (width - pad)

    def y(w: float) -> float:
        return height - 15 - w / top * (height - 25)

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="power over the last '
        f'{hours:g} hours" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{pad}" y1="{height - 15}" x2="{width}" y2="{height - 15}" stroke="#999"/>',
        f'<text x="0" y="12" font-size="10">{top:.0f} W</text><text x="0" y="{height - 15}" font-size="10">0</text>',
        f'<text x="{pad}" y="{height - 2}" font-size="10">-{hours:g} h</text>',
        f'<text x="{width - 20}" y="{height - 2}" font-size="10">now</text>',
    ]
    if points:
        line = " ".join(f"{x(t):.1f},{y(w):.1f}" for t, w in points)
        parts.append(f'<polyline fill="none" stroke="#e07000" stroke-width="1.5" points="{line}"/>')
    else:
        parts.append(f'<text x="{width / 2 - 40}" y="{height / 2}" font-size="12">no readings yet</text>')
    parts.append("</svg>")
    return "".join(parts)


def _fmt(value: Any, pattern: str, missing: str = "—") -> str:
    return missing if value is None else pattern.format(value)


def _when(at: float | None) -> str:
    return "—" if at is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(at))


def _printer_section(p: dict[str, Any], now: float) -> str:
    e = html.escape
    pid = str(p["printer"])
    head = f'<section><h2>{e(str(p["name"]))}</h2>'
    if p.get("plug") is None:
        return head + "<p>No smart plug configured ([printer.plug] in the config).</p></section>"
    reading = p.get("reading") or {}
    currency = e(str(p.get("currency") or ""))
    last = p.get("last_job") or {}
    auto = p.get("auto_off") or {}
    rows = [
        ("Plug", e(str(p["plug"]["address"])) + (" — on" if reading.get("on") else " — off" if reading else "")),
        ("Now", _fmt(reading.get("watts"), "{:.0f} W")),
        ("Today", _fmt(p.get("today_kwh"), "{:.3f} kWh")),
        ("Last print", e(str(last.get("name") or "—")) + " · " + _fmt(last.get("energy_kwh"), "{:.3f} kWh")
         + " · " + _fmt(last.get("cost"), "{:.2f} " + currency)),
        ("Auto-off", e(str(auto.get("reason", "off"))) if auto.get("enabled") else "off"),
    ]
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    alerts = "".join(
        f'<p class="warn">{e(str(text))}</p>' for text in (p.get("error"), p.get("warning")) if text
    )
    if auto.get("warning"):
        alerts += f'<p class="warn">Auto-off: {e(str(auto.get("reason")))}</p>'
    buttons = (
        f'<button onclick="act(\'{e(pid)}\', \'plug\', {{on: true}})">On</button> '
        f'<button onclick="act(\'{e(pid)}\', \'plug\', {{on: false}})">Off</button> '
        f'<button onclick="act(\'{e(pid)}\', \'auto-off/cancel\', {{}})">Cancel auto-off</button>'
    )
    # Filled and shown by the script when the box answers that an Off would interrupt the printer.
    confirm = (
        f'<p class="confirm warn" id="confirm-{e(pid)}" hidden><span class="question"></span> '
        f'<button class="yes" onclick="act(\'{e(pid)}\', \'plug\', {{on: false, confirm: true}})">Switch off</button> '
        f'<button class="no" onclick="keepOn(\'{e(pid)}\')">Keep it on</button></p>'
    )
    chart = render_chart(p.get("series") or [], end=now)
    return (f"{head}{alerts}<table>{body}</table>{chart}<p>{buttons} <span id=\"msg-{e(pid)}\"></span></p>"
            f"{confirm}</section>")


_JOB_COLUMNS: Final = ("Printer", "Print", "Start", "Duration", "Result", "Energy", "Cost", "Peak")


def _job_row(job: dict[str, Any]) -> str:
    e = html.escape
    duration = job.get("duration_s")
    cells = [
        e(str(job.get("printer"))),
        e(str(job.get("name") or "—")),
        _when(job.get("started_at")),
        "running" if job.get("ended_at") is None else _fmt(None if duration is None else duration / 60, "{:.0f} min"),
        e(str(job.get("result") or "—")),
        _fmt(job.get("energy_kwh"), "{:.3f} kWh"),
        _fmt(job.get("cost"), "{:.2f}"),
        _fmt(job.get("peak_watts"), "{:.0f} W"),
    ]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def render_page(
    printers: Sequence[dict[str, Any]], jobs: Sequence[dict[str, Any]], *, now: float, warning: str | None = None
) -> str:
    """``warning``: the power log's problem (full disk, unreadable file), shown above everything."""
    sections = "".join(_printer_section(p, now) for p in printers) or "<p>No printers configured.</p>"
    head = "".join(f"<th>{c}</th>" for c in _JOB_COLUMNS)
    rows = "".join(_job_row(j) for j in jobs) or f'<tr><td colspan="{len(_JOB_COLUMNS)}">No prints yet.</td></tr>'
    banner = (
        f'<p class="warn" id="power-log-warning">{html.escape(warning)}. Monitoring, alarms and notifications keep '
        "running; new readings wait in memory (up to an hour) and are saved once the power log works again.</p>"
        if warning else ""
    )
    return _PAGE.format(banner=banner, sections=sections, head=head, rows=rows, script=_SCRIPT)


_SCRIPT: Final = """
async function act(id, what, body) {
  const msg = document.getElementById("msg-" + id);
  const confirmBox = document.getElementById("confirm-" + id);
  confirmBox.hidden = true;
  const session = await (await fetch("/api/session")).json();
  if (!session.logged_in) { msg.textContent = "log in first (/login)"; return; }
  const r = await fetch(`/api/printers/${encodeURIComponent(id)}/${what}`, {method: "POST",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": session.csrf}, body: JSON.stringify(body)});
  const answer = await r.json();
  if (r.status === 409 && answer.confirm) {
    // The box refused an Off that would interrupt the printer: ask, naming what would happen.
    confirmBox.querySelector(".question").textContent = answer.confirm + " Switch the plug off?";
    confirmBox.hidden = false;
    msg.textContent = "";
    return;
  }
  if (!r.ok) { msg.textContent = answer.error; return; }
  if (answer.cancelled === false) { msg.textContent = "nothing to cancel: " + answer.auto_off.reason; return; }
  msg.textContent = "done";
  setTimeout(() => location.reload(), 800);
}
// Fresh figures every 30 s, except while a question is open: it must not vanish under the owner's finger.
setInterval(() => { if (!document.querySelector(".confirm:not([hidden])")) location.reload(); }, 30000);
function keepOn(id) {
  document.getElementById("confirm-" + id).hidden = true;
  document.getElementById("msg-" + id).textContent = "kept on";
}
"""

_PAGE: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>bambupi · power and prints</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1rem; max-width: 56rem; }}
table {{ border-collapse: collapse; margin: .5rem 0; }} th, td {{ text-align: left; padding: .2rem .6rem; }}
.jobs td, .jobs th {{ border-bottom: 1px solid #ddd; }} .warn {{ color: #a40000; font-weight: bold; }}
.chart {{ width: 100%; max-width: 600px; height: auto; }} section {{ margin-bottom: 1.5rem; }}
</style></head><body>
<h1>Power and prints</h1>
{banner}
{sections}
<h2>Print history</h2>
<table class="jobs"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>
<script>{script}</script>
</body></html>
"""
