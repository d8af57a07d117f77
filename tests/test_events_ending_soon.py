"""The "done in N minutes" rule (printer/events.ending_soon), pure: a job's memory and its next printer object in,
the memory and the event out."""

from __future__ import annotations

from typing import Any

import pytest

from bambupi.printer.events import EndingSoon, ending_soon


def printer(gcode: str, remaining: Any) -> dict[str, Any]:
    return {"id": "p1", "state": {"gcode_state": gcode, "remaining_min": remaining, "subtask_name": "Benchy"}}


@pytest.mark.parametrize(
    ("memory", "gcode", "remaining", "lead", "after", "told"),
    [
        ("waiting", "RUNNING", 30, 5, "armed", False),  # seen with time to spare: armed
        ("armed", "RUNNING", 6, 5, "armed", False),
        ("armed", "RUNNING", 5, 5, "told", True),  # down to the lead: told
        ("armed", "RUNNING", 2, 5, "told", True),  # a report skipped past it: still told
        ("waiting", "RUNNING", 4, 5, "waiting", False),  # a short print (or joined late): never armed
        ("told", "RUNNING", 30, 5, "told", False),  # a pause pushed the estimate up: told stays told
        ("told", "RUNNING", 3, 5, "told", False),
        ("armed", "PAUSE", 3, 5, "armed", False),  # paused: wait for the print to run again
        ("armed", "PREPARE", 0, 5, "armed", False),  # preparing reports 0 before the estimate
        ("armed", "FINISH", 0, 5, "armed", False),  # over: nothing
        ("armed", "RUNNING", None, 5, "armed", False),  # no estimate
        ("armed", "RUNNING", True, 5, "armed", False),  # not a number
        ("armed", "RUNNING", 3, 0, "armed", False),  # lead 0: off
        ("waiting", "PAUSE", 20, 10, "armed", False),
        ("armed", "RUNNING", 10, 10, "told", True),
    ],
)
def test_ending_soon(memory: EndingSoon, gcode: str, remaining: Any, lead: float, after: str, told: bool) -> None:
    new_memory, event = ending_soon(memory, printer(gcode, remaining), lead)
    assert new_memory == after
    assert (event is not None) is told
    if event is not None:
        assert event == {"kind": "job_ending_soon", "printer": "p1", "job": "Benchy", "gcode_state": gcode,
                         "remaining_min": remaining}
