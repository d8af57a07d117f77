"""events(prev, new) over printer objects: every rule of the event rules in bambupi/printer/events.py."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from bambupi.printer.events import EVENT_KINDS, events
from bambupi.printer.hms import decode_hms, describe_print_error, job_result
from bambupi.printer.state import State, apply_message, initial_state
from tests.capture_corpus import capture


def printer(
    *,
    connection: str = "online",
    reason: str | None = None,
    last_report_at: float | None = 1000.0,
    hms: list[dict[str, Any]] | None = None,
    **state_fields: Any,
) -> dict[str, Any]:
    state = initial_state()
    state.update(state_fields)
    if hms is not None:
        state["hms"] = hms
    return {
        "id": "workshop",
        "name": "Workshop P1S",
        "model": "P1S",
        "connection": connection,
        "connection_reason": reason,
        "last_report_at": last_report_at,
        "controls_available": True,
        "camera": {},
        "state": state,
    }


def kinds(found: list[dict[str, Any]]) -> list[str]:
    return [event["kind"] for event in found]


def hms_entry(attr: int, code: int, *, standing: bool = False) -> dict[str, Any]:
    return decode_hms(attr, code, "P1S").to_json(standing=standing)


COVER = (0x0300_1200, 0x0002_0001)
SPAGHETTI = (0x0C00_0300, 0x0003_0008)


# -- jobs ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "before,after,expected",
    [
        # starts
        ("IDLE", "PREPARE", ["job_started"]),
        ("IDLE", "RUNNING", ["job_started"]),
        ("FINISH", "PREPARE", ["job_started"]),
        ("FINISH", "RUNNING", ["job_started"]),
        ("FAILED", "PREPARE", ["job_started"]),
        ("FAILED", "RUNNING", ["job_started"]),
        (None, "RUNNING", ["job_started"]),
        (None, "PREPARE", ["job_started"]),
        ("IDLE", "SLICING", ["job_started"]),  # an X1 slicing a job it was sent: the job exists (printer/phase.py)
        ("INIT", "RUNNING", ["job_started"]),
        # the same job going on
        ("PREPARE", "RUNNING", []),
        ("SLICING", "PREPARE", []),
        ("RUNNING", "RUNNING", []),
        ("PREPARE", "PREPARE", []),
        ("IDLE", "IDLE", []),
        # ends
        ("RUNNING", "FINISH", ["job_finished"]),
        ("PAUSE", "FINISH", ["job_finished"]),
        # FAILED without an error: the end is not known yet (a real stop's first report; see the pending tests)
        ("RUNNING", "FAILED", []),
        ("PREPARE", "FAILED", []),
        ("PAUSE", "FAILED", []),
        # pause / resume
        ("RUNNING", "PAUSE", ["job_paused"]),
        ("PREPARE", "PAUSE", ["job_paused"]),
        ("PAUSE", "RUNNING", ["job_resumed"]),
        ("PAUSE", "PAUSE", []),
        # nothing happens outside a job
        ("IDLE", "FINISH", []),
        ("IDLE", "FAILED", []),
        ("FINISH", "IDLE", []),
        ("FAILED", "IDLE", []),
        ("IDLE", "PAUSE", []),
        ("UNKNOWN", "UNKNOWN", []),
        ("RUNNING", "UNKNOWN", []),
    ],
)
def test_job_transitions(before: str | None, after: str, expected: list[str]) -> None:
    prev = printer(gcode_state=before, subtask_name="benchy")
    result = job_result(after, None, job_just_ended=before in ("PREPARE", "RUNNING", "PAUSE"))
    new = printer(gcode_state=after, subtask_name="benchy", job_result=result)
    assert kinds(events(prev, new)) == expected


@pytest.mark.parametrize(
    "print_error,kind,description,action,result",
    [
        ("0300_400C", "job_cancelled", "The task was canceled.", None, "Cancelled"),
        ("0500_400E", "job_cancelled", "Printing was cancelled.", None, "Cancelled"),
        ("0300_8004", "job_failed", "Filament ran out.", "Please load new filament.", "Failed: Filament ran out."),
        ("0300_9999", "job_failed", "Motion controller error 0300_9999", None,
         "Failed: Motion controller error 0300_9999"),
    ],
)
def test_failed_or_cancelled(
    print_error: str, kind: str, description: str | None, action: str | None, result: str
) -> None:
    # The event carries the state's words for the error (the official text and what to do).
    error = describe_print_error(print_error, "P1S")
    prev = printer(gcode_state="RUNNING", subtask_name="benchy")
    new = printer(gcode_state="FAILED", subtask_name="benchy", print_error=print_error, print_error_text=error.text,
                  print_error_action=error.action,
                  job_result=job_result("FAILED", print_error, job_just_ended=True, error_text=error.text))
    assert events(prev, new) == [
        {
            "kind": kind,
            "printer": "workshop",
            "job": "benchy",
            "gcode_state": "FAILED",
            "print_error": print_error,
            "description": description,
            "action": action,
            "result": result,
        }
    ]


def test_a_job_event_names_the_printer_and_the_job() -> None:
    found = events(printer(gcode_state="IDLE"), printer(gcode_state="PREPARE", subtask_name="lid"))
    assert found == [{"kind": "job_started", "printer": "workshop", "job": "lid", "gcode_state": "PREPARE"}]


@pytest.mark.parametrize(
    "before,after,old_name,new_name,expected",
    [
        ("RUNNING", "RUNNING", "first", "second", ["job_started"]),
        ("RUNNING", "PREPARE", "first", "second", ["job_started"]),
        ("RUNNING", "RUNNING", None, "first", []),  # the name arrives late: same job
        ("RUNNING", "RUNNING", "first", None, []),
        ("RUNNING", "RUNNING", "", "first", []),
        ("PREPARE", "PREPARE", "old", "new", []),  # the name of the job being prepared arrives
        ("PAUSE", "PAUSE", "first", "second", []),
        ("IDLE", "IDLE", "first", "second", []),
    ],
)
def test_a_new_job_name_while_running_is_a_new_job(
    before: str, after: str, old_name: str | None, new_name: str | None, expected: list[str]
) -> None:
    prev = printer(gcode_state=before, subtask_name=old_name)
    found = events(prev, printer(gcode_state=after, subtask_name=new_name))
    assert kinds(found) == expected
    if expected:
        assert found[0]["job"] == new_name


# -- an end known only later: a real stop reports FAILED without an error first ----------------------------------

PENDING = {"outcome": "pending", "text": "Stopping…"}
CANCELLED = {"outcome": "cancelled", "text": "Cancelled"}


def failed(print_error: str | None, result: dict[str, str], **fields: Any) -> dict[str, Any]:
    return printer(gcode_state="FAILED", subtask_name="benchy", print_error=print_error, job_result=result, **fields)


@pytest.mark.parametrize(
    "new,expected",
    [
        # the printer's verdict arrives: 0300_400C (4.6 s later on a P2S), or a real error
        (failed("0300_400C", CANCELLED), [("job_cancelled", "Cancelled")]),
        (failed("0300_4006", {"outcome": "failed", "text": "Failed: Nozzle clogged"}),
         [("job_failed", "Failed: Nozzle clogged")]),
        # the hub settles it: the box sent the stop, or no error came in time
        (failed(None, CANCELLED), [("job_cancelled", "Cancelled")]),
        # still waiting
        (failed(None, PENDING), []),
        # the printer moved on without ever giving an error: the end was a cancel; a new job starts after it
        (printer(gcode_state="IDLE", subtask_name="benchy"), [("job_cancelled", "Cancelled")]),
        (printer(gcode_state="PREPARE", subtask_name="next"), [("job_cancelled", "Cancelled"), ("job_started", None)]),
    ],
)
def test_a_pending_end_is_announced_once_it_is_known(new: dict[str, Any], expected: list[tuple[str, Any]]) -> None:
    found = events(failed(None, PENDING), new)
    assert [(e["kind"], e.get("result")) for e in found] == expected
    for event in found:
        if event["kind"] == "job_cancelled":
            assert event["job"] == "benchy" and event["printer"] == "workshop"


def test_a_known_end_is_announced_once() -> None:
    assert events(failed("0300_400C", CANCELLED), failed("0300_400C", CANCELLED, wifi_dbm=-40)) == []
    assert events(failed(None, CANCELLED), printer(gcode_state="IDLE")) == []


def test_a_real_p2s_stop_is_one_cancel_and_never_a_failure() -> None:
    """tests/captures/p2s-user-stop.json through the reducer and events(): no event while the end is unknown, then
    one job_cancelled when 0300_400C arrives; the card says "Stopping…", then "Cancelled", never "Failed"."""
    messages = capture("p2s-user-stop").messages
    state = initial_state()
    prev = _as_printer(state, None)
    found: list[dict[str, Any]] = []
    results = []
    for index, message in enumerate(messages):
        state = apply_message(state, message, model="P2S", baseline=index == 0).state
        new = _as_printer(state, 1000.0)
        found.extend(events(prev, new))
        results.append(state["job_result"])
        prev = new
    assert [state for state in results] == [None, PENDING, CANCELLED]
    assert kinds(found) == ["job_joined", "job_cancelled"]  # the capture starts mid-print
    assert found[1]["job"] == "Rear Dry Pod AMS 2 PRO " and found[1]["result"] == "Cancelled"


# -- the baseline ---------------------------------------------------------------------------------------------


def test_the_first_report_only_sets_the_baseline_and_says_a_job_is_under_way() -> None:
    prev = printer(last_report_at=None)
    new = printer(gcode_state="RUNNING", subtask_name="benchy", hms=[hms_entry(*COVER, standing=True)])
    # Not a start, and no HMS raised: the box joined a job it did not see start (the recorder follows it).
    assert events(prev, new) == [
        {"kind": "job_joined", "printer": "workshop", "job": "benchy", "gcode_state": "RUNNING"}
    ]
    assert events(prev, printer(gcode_state="IDLE", hms=[hms_entry(*COVER, standing=True)])) == []


def test_the_baseline_even_hides_non_standing_codes_and_job_ends() -> None:
    prev = printer(last_report_at=None, gcode_state="RUNNING", hms=[hms_entry(*SPAGHETTI)])
    new = printer(gcode_state="FAILED", print_error="0300_400C", hms=[hms_entry(*COVER)])
    assert events(prev, new) == []


# -- HMS ------------------------------------------------------------------------------------------------------


def test_a_new_code_is_raised_with_its_entry() -> None:
    entry = hms_entry(*SPAGHETTI)
    found = events(printer(hms=[]), printer(hms=[entry]))
    assert found == [
        {"kind": "hms_raised", "printer": "workshop", "code": "0C00_0300_0003_0008", "severity": "common", "hms": entry}
    ]


def test_a_standing_code_is_never_raised() -> None:
    assert events(printer(hms=[]), printer(hms=[hms_entry(*COVER, standing=True)])) == []


def test_a_code_that_stays_is_not_raised_again() -> None:
    entry = hms_entry(*SPAGHETTI)
    assert events(printer(hms=[entry]), printer(hms=[entry], percent=50)) == []


@pytest.mark.parametrize("was_standing", [True, False])
def test_a_code_that_goes_is_cleared_and_says_whether_it_was_standing(was_standing: bool) -> None:
    entry = hms_entry(*COVER, standing=was_standing)
    found = events(printer(hms=[entry]), printer(hms=[]))
    assert kinds(found) == ["hms_cleared"]
    assert found[0]["code"] == "0300_1200_0002_0001"
    assert found[0]["hms"]["standing"] is was_standing


def test_raised_and_cleared_in_one_step() -> None:
    found = events(printer(hms=[hms_entry(*COVER)]), printer(hms=[hms_entry(*SPAGHETTI)]))
    assert [(e["kind"], e["code"]) for e in found] == [
        ("hms_raised", "0C00_0300_0003_0008"),
        ("hms_cleared", "0300_1200_0002_0001"),
    ]


# -- connection -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "before,after,last_report_at,expected",
    [
        ("online", "offline", 1000.0, ["connection_lost"]),
        ("online", "stale", 1000.0, ["connection_lost"]),
        ("online", "offline", None, ["connection_lost"]),
        ("offline", "online", 1000.0, ["connection_restored"]),
        ("stale", "online", 1000.0, ["connection_restored"]),
        ("connecting", "online", 1000.0, ["connection_restored"]),  # offline -> connecting -> online
        ("connecting", "online", None, []),  # the first connect after start
        ("offline", "online", None, []),  # never had a report: nothing to restore
        ("connecting", "offline", None, []),
        ("offline", "connecting", 1000.0, []),
        ("stale", "offline", 1000.0, []),
        ("online", "connecting", 1000.0, []),
        ("online", "online", 1000.0, []),
    ],
)
def test_connection(before: str, after: str, last_report_at: float | None, expected: list[str]) -> None:
    prev = printer(connection=before, last_report_at=last_report_at)
    new = printer(connection=after, reason="timeout" if after != "online" else None, last_report_at=last_report_at)
    found = events(prev, new)
    assert kinds(found) == expected
    for event in found:
        assert event["printer"] == "workshop"
        assert event["connection"] == after
        assert event["reason"] == new["connection_reason"]


def test_a_whole_outage_and_recovery() -> None:
    steps = [
        printer(connection="connecting", last_report_at=None),
        printer(connection="online", last_report_at=None),
        printer(connection="online", gcode_state="IDLE"),
        printer(connection="online", gcode_state="RUNNING"),
        printer(connection="stale", gcode_state="RUNNING", reason="no message for 60 s"),
        printer(connection="offline", gcode_state="RUNNING", reason="connection refused"),
        printer(connection="connecting", gcode_state="RUNNING"),
        printer(connection="online", gcode_state="RUNNING"),
        printer(connection="online", gcode_state="FINISH"),
    ]
    found = [kind for prev, new in itertools.pairwise(steps) for kind in kinds(events(prev, new))]
    assert found == ["job_started", "connection_lost", "connection_restored", "job_finished"]


def test_a_silent_printer_reconnecting_again_and_again_is_lost_once_and_restored_once() -> None:
    # What the link reports for a printer that stops talking: every reconnect changes only the reason.
    steps = [
        printer(connection="online", gcode_state="RUNNING", last_report_at=1000.0),
        printer(connection="stale", gcode_state="RUNNING", last_report_at=1000.0,
                reason="no report from the printer for 60 s; reconnecting"),
        printer(connection="stale", gcode_state="RUNNING", last_report_at=1000.0, reason="connection lost"),
        printer(connection="stale", gcode_state="RUNNING", last_report_at=1000.0,
                reason="no report from the printer for 60 s; reconnecting"),
        printer(connection="offline", gcode_state="RUNNING", last_report_at=1000.0,
                reason="no report from the printer for 120 s"),
        printer(connection="offline", gcode_state="RUNNING", last_report_at=1000.0, reason="connection refused"),
        printer(connection="online", gcode_state="RUNNING", last_report_at=1300.0),
    ]
    found = [event for prev, new in itertools.pairwise(steps) for event in events(prev, new)]
    assert [(e["kind"], e["connection"]) for e in found] == [
        ("connection_lost", "stale"), ("connection_restored", "online")
    ]


# -- through the reducer ------------------------------------------------------------------------------------


def _as_printer(state: State, last_report_at: float | None) -> dict[str, Any]:
    obj = printer(last_report_at=last_report_at)
    obj["state"] = state
    return obj


def test_events_from_real_reports_with_standing_codes() -> None:
    cover = {"attr": COVER[0], "code": COVER[1]}
    spaghetti = {"attr": SPAGHETTI[0], "code": SPAGHETTI[1]}
    messages: list[tuple[dict[str, Any], bool]] = [
        # The service starts while a print runs with the front cover error standing.
        ({"gcode_state": "RUNNING", "subtask_name": "benchy", "hms": [cover]}, True),
        ({"hms": [cover, spaghetti]}, False),
        ({"hms": [spaghetti]}, False),
        ({"hms": [spaghetti, cover]}, False),
        ({"gcode_state": "PAUSE"}, False),
        ({"gcode_state": "RUNNING", "hms": []}, False),
        ({"gcode_state": "FINISH"}, False),
        ({"gcode_state": "IDLE"}, False),
        ({"gcode_state": "PREPARE", "subtask_name": "lid"}, False),
    ]
    state = initial_state()
    prev = _as_printer(state, None)
    log: list[tuple[str, Any]] = []
    for fields, baseline in messages:
        payload = {"print": {"command": "push_status", **fields}}
        state = apply_message(state, payload, model="P1S", baseline=baseline).state
        new = _as_printer(state, 1000.0)
        log.extend((e["kind"], e.get("code") or e.get("job")) for e in events(prev, new))
        prev = new
    assert log == [
        ("job_joined", "benchy"),  # the first report is mid-print
        ("hms_raised", "0C00_0300_0003_0008"),
        ("hms_cleared", "0300_1200_0002_0001"),  # the standing one clears quietly ...
        ("hms_raised", "0300_1200_0002_0001"),  # ... and when it returns it is new
        ("job_paused", "benchy"),
        ("job_resumed", "benchy"),
        ("hms_cleared", "0C00_0300_0003_0008"),
        ("hms_cleared", "0300_1200_0002_0001"),
        ("job_finished", "benchy"),
        ("job_started", "lid"),
    ]


def test_every_emitted_kind_is_documented() -> None:
    prev = printer(gcode_state="RUNNING", hms=[hms_entry(*COVER)])
    new = printer(connection="offline", gcode_state="FAILED", print_error="0300_400C", hms=[hms_entry(*SPAGHETTI)],
                  job_result=job_result("FAILED", "0300_400C"))
    found = events(prev, new)
    assert kinds(found) == ["job_cancelled", "hms_raised", "hms_cleared", "connection_lost"]
    assert set(kinds(found)) <= set(EVENT_KINDS)
