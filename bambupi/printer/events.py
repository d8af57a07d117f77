"""The pure function that turns two printer objects (before, after) into events.

Printer objects are the public JSON (``{id, name, model, connection, connection_reason, last_report_at,
controls_available, camera, state}``). The rules (docs/api.md lists the events a client receives):

- Jobs follow the printer's reported phase (:func:`bambupi.printer.phase.job_phase`, the box's one definition of
  "in a job"). A job starts when the phase goes from outside a job (idle, finished, failed, cancelled) to preparing
  (PREPARE, or SLICING on an X1) or printing, or when the job name changes while printing (a new job right after
  the last one). SLICING -> PREPARE -> RUNNING is one job.
- A job ends at FINISH (finished). At FAILED it ends when its end is known, which is ``state.job_result``
  (hms.job_result, settled by the hub): a real stop first reports FAILED with no error (``job_result`` *pending*,
  no event yet), then ``0300_400C``; so ``job_cancelled`` or ``job_failed`` comes when ``job_result`` turns from
  nothing or pending to cancelled or failed, and a pending end that leaves FAILED without a verdict (no error
  ever came) is cancelled. RUNNING -> PAUSE is paused, PAUSE -> RUNNING resumed.
- While no report has arrived yet (``last_report_at`` is null before), the new state only sets the baseline:
  no job or HMS events. Codes active in the baseline are standing and never raise.
- HMS: a code active now and not before is raised unless it is standing; a code gone is cleared (the event's
  ``hms`` entry says whether it was standing).
- Connection: lost when going from online to offline or stale; restored when going to online from anything
  else once a report has been seen. Online comes with a report (the hub sets both in one change), so the first
  report after start is not a "restore", and reconnects that bring no report change only the reason: a silent
  printer is lost once and restored once, however often the link retries.
- Ending soon (:func:`ending_soon`): ``job_ending_soon`` once per job, when a printing job's remaining time
  (``state.remaining_min``, the printer's own estimate) comes down to the lead time. The job must have been seen
  with more than the lead time left (a 3-minute print, or one joined in its last minutes, is not announced), and
  once told it is never told again in that job, however a pause and resume move the estimate. That needs a memory
  per job, which :func:`events` (two objects, nothing more) cannot have: the hub keeps it beside the job's other
  memories (a stop it sent, a pending end) and hands it in, so every consumer gets the one event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal, TypedDict

from bambupi.printer.hms import CANCELLED_RESULT
from bambupi.printer.phase import IN_JOB, WORKING, job_phase

PrinterObject = Mapping[str, Any]  # bambupi.state_hub.PrinterObject; read as plain JSON here


class Event(TypedDict, total=False):
    """One transition (from :func:`events`) or notice (the power service's ``power_*``, the hub's ``events_lost``),
    as every consumer and the WebSocket's ``event`` messages receive it. ``kind``, ``printer`` and (once the hub
    stamped it) ``at`` are always there; the rest depends on the kind."""

    kind: str  # EVENT_KINDS, power_check | power_warning | power_off, events_lost, filament_low
    printer: str
    at: float  # UTC epoch seconds
    job: str | None  # job_*: the job's name
    gcode_state: str | None
    print_error: str | None  # job_failed, job_cancelled
    description: str | None
    action: str | None  # job_failed: what to do, where the official text says
    result: str | None  # the words every surface shows for how the job ended
    code: str  # hms_*
    severity: str | None
    hms: dict[str, Any]
    connection: str  # connection_*
    reason: str | None
    message: str  # power_*, filament_low
    off_at: float | None  # power_warning: when the plug goes off (UTC epoch seconds)
    count: int  # events_lost
    remaining_min: float  # job_ending_soon: the printer's estimate when it came down to the lead time
    spool: int  # filament_low (bambupi.filament.inventory): the spool's id, what it is and what is left on it
    material: str
    colour: str
    remaining_g: float


EVENT_KINDS: Final = (
    "job_started",
    "job_joined",
    "job_finished",
    "job_failed",
    "job_cancelled",
    "job_paused",
    "job_resumed",
    "job_ending_soon",
    "hms_raised",
    "hms_cleared",
    "connection_lost",
    "connection_restored",
)
_LOST: Final = frozenset({"offline", "stale"})
_END_KINDS: Final = {"cancelled": "job_cancelled", "failed": "job_failed"}


def events(prev: PrinterObject, new: PrinterObject) -> list[Event]:
    """Every transition from ``prev`` to ``new``, in a stable order: job, then HMS, then connection."""
    found: list[Event] = []
    if prev.get("last_report_at") is not None:
        found.extend(_job_events(prev, new))
        found.extend(_hms_events(prev, new))
    elif new.get("last_report_at") is not None and job_phase(_state(new)) in IN_JOB:
        # The box's first report of this printer shows a job under way (the box started, or the printer was added,
        # mid-print): no start was seen, yet the job is recorded, its file fetched and its grams shown.
        found.append(_job_event("job_joined", new))
    found.extend(_connection_events(prev, new))
    return found


def _state(printer: PrinterObject) -> Mapping[str, Any]:
    state = printer.get("state")
    return state if isinstance(state, Mapping) else {}


def _job_event(kind: str, printer: PrinterObject) -> Event:
    state = _state(printer)
    return {
        "kind": kind,
        "printer": printer["id"],
        "job": state.get("subtask_name"),
        "gcode_state": state.get("gcode_state"),
    }


def _job_kind(prev: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    before, after = job_phase(prev), job_phase(new)
    if after in WORKING and before not in IN_JOB:
        return "job_started"
    if before == "printing" and after in WORKING and _renamed(prev, new):
        return "job_started"
    if before in IN_JOB and after == "finished":
        return "job_finished"
    if before in WORKING and after == "paused":
        return "job_paused"
    if before == "paused" and after == "printing":
        return "job_resumed"
    return None


def _renamed(prev: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    # A name that only now arrives is late news about the same job, not a new one.
    before, after = prev.get("subtask_name"), new.get("subtask_name")
    return bool(before) and bool(after) and before != after


def _outcome(state: Mapping[str, Any]) -> str | None:
    result = state.get("job_result")
    outcome = result.get("outcome") if isinstance(result, dict) else None
    return outcome if isinstance(outcome, str) else None


def _job_end(prev: PrinterObject, new: PrinterObject) -> Event | None:
    """The end of a job once it is known (see the module's rules), else None."""
    before, after = _state(prev), _state(new)
    was_pending = _outcome(before) == "pending"
    if _outcome(before) in _END_KINDS:
        return None  # already announced
    if _outcome(after) in _END_KINDS and (was_pending or job_phase(before) in IN_JOB):
        ended, result = new, after["job_result"]
    elif was_pending and after.get("gcode_state") != "FAILED":
        ended, result = prev, CANCELLED_RESULT  # it left FAILED and no error ever came
    else:
        return None
    event = _job_event(_END_KINDS[result["outcome"]], ended)
    print_error = _state(ended).get("print_error")
    event["print_error"] = print_error
    # The state's words for the error (the official text in the owner's language, hms.describe_print_error).
    event["description"] = _state(ended).get("print_error_text") if isinstance(print_error, str) else None
    event["action"] = _state(ended).get("print_error_action") if isinstance(print_error, str) else None
    event["result"] = result.get("text")  # the words every surface shows
    return event


def _job_events(prev: PrinterObject, new: PrinterObject) -> list[Event]:
    found: list[Event] = []
    end = _job_end(prev, new)
    if end is not None:
        found.append(end)
    kind = _job_kind(_state(prev), _state(new))
    if kind is not None:
        found.append(_job_event(kind, new))
    return found


def _hms_by_code(printer: PrinterObject) -> dict[str, dict[str, Any]]:
    entries = _state(printer).get("hms")
    if not isinstance(entries, list):
        return {}
    return {entry["code"]: entry for entry in entries if isinstance(entry, dict) and "code" in entry}


def _hms_event(kind: str, printer: PrinterObject, entry: dict[str, Any]) -> Event:
    return {
        "kind": kind,
        "printer": printer["id"],
        "code": entry["code"],
        "severity": entry.get("severity"),
        "hms": entry,
    }


def _hms_events(prev: PrinterObject, new: PrinterObject) -> list[Event]:
    before, after = _hms_by_code(prev), _hms_by_code(new)
    raised = [
        _hms_event("hms_raised", new, entry)
        for code, entry in after.items()
        if code not in before and not entry.get("standing")
    ]
    cleared = [_hms_event("hms_cleared", new, entry) for code, entry in before.items() if code not in after]
    return raised + cleared


def _connection_events(prev: PrinterObject, new: PrinterObject) -> list[Event]:
    before, after = prev.get("connection"), new.get("connection")
    if before == after:
        return []
    if before == "online" and after in _LOST:
        kind = "connection_lost"
    elif after == "online" and prev.get("last_report_at") is not None:
        kind = "connection_restored"
    else:
        return []
    return [{"kind": kind, "printer": new["id"], "connection": after, "reason": new.get("connection_reason")}]


# -- ending soon ---------------------------------------------------------------------------------------------------

EndingSoon = Literal["waiting", "armed", "told"]  # per job: not yet seen above the lead time, seen, announced


def ending_soon(memory: EndingSoon, new: PrinterObject, lead_min: float) -> tuple[EndingSoon, Event | None]:
    """The job's memory after ``new`` and the ``job_ending_soon`` event to send now, if any (the module's rules).

    ``memory`` starts as "waiting" with each job (job_started, job_joined); a ``lead_min`` of 0 announces nothing."""
    if memory == "told" or lead_min <= 0:
        return memory, None
    state = _state(new)
    remaining = state.get("remaining_min")
    if isinstance(remaining, bool) or not isinstance(remaining, int | float) or job_phase(state) not in IN_JOB:
        return memory, None
    if remaining > lead_min:
        return "armed", None
    if memory == "armed" and job_phase(state) == "printing" and remaining >= 0:
        event = _job_event("job_ending_soon", new)
        event["remaining_min"] = remaining
        return "told", event
    return memory, None
