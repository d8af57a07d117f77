"""Where a printer is in its job, in one word: the one definition of "in a job" for every part of the box.

The hub computes a printer's :func:`phase` once per change and puts it in the printer object (``phase``); the
panel, power, camera, notify and the page read that field instead of deciding from ``gcode_state`` themselves
(they disagreed on SLICING and PAUSE).

Two states are decided deliberately:

- **SLICING is preparing**: an X1 slices a job it was sent before it heats up; the job exists, so the plug must not
  be switched off under it, the camera may stay open for it, and its ``job_started`` comes now (SLICING -> PREPARE
  is the same job, as PREPARE -> RUNNING is).
- **PAUSE is in the job**: a paused print is unfinished; auto-off waits, the camera stays, the stop button stays.
  Parts that mean "the printer is working right now" (the panel's busy screen, the plug's near-zero reading check)
  ask for :data:`WORKING` (preparing or printing), which leaves the paused job out.

A job that ended at FAILED is *cancelled* while its end is pending (a real stop reports FAILED without an error
first and is cancelled unless an error follows, see hms.job_result), *failed* once an error says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

Phase = Literal["idle", "preparing", "printing", "paused", "finished", "failed", "cancelled", "offline"]
PHASES: Final[tuple[Phase, ...]] = (
    "idle", "preparing", "printing", "paused", "finished", "failed", "cancelled", "offline"
)
IN_JOB: Final[frozenset[Phase]] = frozenset({"preparing", "printing", "paused"})
WORKING: Final[frozenset[Phase]] = frozenset({"preparing", "printing"})
_BY_GCODE_STATE: Final[dict[str, Phase]] = {
    "PREPARE": "preparing",
    "SLICING": "preparing",
    "RUNNING": "printing",
    "PAUSE": "paused",
    "FINISH": "finished",
}


def job_phase(state: Mapping[str, Any]) -> Phase:
    """The phase the printer last reported, whether or not it can be reached now (never ``offline``)."""
    gcode_state = state.get("gcode_state")
    if gcode_state == "FAILED":
        result = state.get("job_result")
        return "failed" if isinstance(result, Mapping) and result.get("outcome") == "failed" else "cancelled"
    return _BY_GCODE_STATE.get(gcode_state, "idle") if isinstance(gcode_state, str) else "idle"


def phase(connection: str, state: Mapping[str, Any]) -> Phase:
    """The printer's phase now: ``offline`` while no report has come since start or the link gave up (a stale
    printer keeps its last phase: reports paused, the link is still there)."""
    if connection in ("connecting", "offline"):
        return "offline"
    return job_phase(state)
