"""The alarm rules row by row (README, "The lights, buzzer and screen"); standing codes, quiet hours, acknowledge,
several printers."""

from __future__ import annotations

from datetime import time
from typing import Any

import pytest

from bambupi.alerts import in_quiet_hours
from bambupi.panel import alarms
from bambupi.panel.alarms import AlarmState, acknowledge, due, leds, observe, on_event, pending
from bambupi.printer.hms import job_result

GRACE = 60.0


def printer(pid: str = "p1", connection: str = "online", gcode: str | None = "IDLE", hms: tuple[str, ...] = (),
            print_error: str | None = None, standing: bool = False) -> dict[str, Any]:
    entries = [{"code": f"0300_0100_0001_000{i}", "severity": s, "standing": standing} for i, s in enumerate(hms)]
    return {"id": pid, "connection": connection,
            "state": {"gcode_state": gcode, "hms": entries, "print_error": print_error,
                      "job_result": job_result(gcode, print_error, job_just_ended=True)}}


NO_ALARMS = AlarmState()


def modes(*printers: dict[str, Any], state: AlarmState = NO_ALARMS, now: float = 1000.0) -> dict[str, str]:
    found = leds({p["id"]: p for p in printers}, state, now, grace_s=GRACE)
    return {name: led.mode for name, led in found.items()}


@pytest.mark.parametrize(
    ("p", "state", "expected"),
    [
        # green = activity
        (printer(), AlarmState(), {"green": "on", "amber": "off", "red": "off"}),
        (printer(gcode="RUNNING"), AlarmState(), {"green": "pulse", "amber": "off", "red": "off"}),
        (printer(gcode="PREPARE"), AlarmState(), {"green": "pulse", "amber": "off", "red": "off"}),
        (printer(gcode="FINISH"), AlarmState(finished_at={"p1": 900.0}), {"green": "fast_blink", "amber": "off",
                                                                          "red": "off"}),
        (printer(gcode="FINISH"), AlarmState(finished_at={"p1": 1000.0 - 1801}), {"green": "on", "amber": "off",
                                                                                  "red": "off"}),
        (printer(connection="offline"), AlarmState(), {"green": "off", "amber": "slow_blink", "red": "off"}),
        # amber = attention
        (printer(hms=("serious",)), AlarmState(), {"green": "on", "amber": "blink", "red": "off"}),
        (printer(hms=("common",)), AlarmState(), {"green": "on", "amber": "on", "red": "off"}),
        (printer(gcode="PAUSE"), AlarmState(), {"green": "on", "amber": "on", "red": "off"}),
        (printer(connection="connecting", gcode=None), AlarmState(), {"green": "off", "amber": "slow_blink",
                                                                      "red": "off"}),
        (printer(connection="stale"), AlarmState(), {"green": "off", "amber": "slow_blink", "red": "off"}),
        # red = fault
        (printer(hms=("fatal",)), AlarmState(), {"green": "on", "amber": "off", "red": "blink"}),
        (printer(gcode="FAILED", print_error="0300_8003"), AlarmState(), {"green": "on", "amber": "off",
                                                                          "red": "on"}),
        (printer(gcode="FAILED", print_error="0300_400C"), AlarmState(), {"green": "on", "amber": "off",
                                                                          "red": "off"}),
        (printer(gcode="FAILED", print_error="0300_8003"), AlarmState(failed_acked=frozenset({"p1"})),
         {"green": "on", "amber": "off", "red": "off"}),
        (printer(connection="offline"), AlarmState(down_since={"p1": 1000.0 - 61}),
         {"green": "off", "amber": "slow_blink", "red": "slow_blink"}),
        (printer(connection="offline"), AlarmState(down_since={"p1": 1000.0 - 59}),
         {"green": "off", "amber": "slow_blink", "red": "off"}),
        # info changes no LED; the most urgent rule wins within an LED
        (printer(hms=("info",)), AlarmState(), {"green": "on", "amber": "off", "red": "off"}),
        (printer(gcode="PAUSE", hms=("serious", "common", "fatal")), AlarmState(),
         {"green": "on", "amber": "blink", "red": "blink"}),
        (printer(gcode="RUNNING"), AlarmState(finished_at={"p1": 999.0}), {"green": "fast_blink", "amber": "off",
                                                                           "red": "off"}),
        # standing codes light LEDs (real conditions), they only never sound
        (printer(hms=("fatal",), standing=True), AlarmState(), {"green": "on", "amber": "off", "red": "blink"}),
    ],
)
def test_led_rules(p: dict[str, Any], state: AlarmState, expected: dict[str, str]) -> None:
    assert modes(p, state=state) == expected


def test_idle_green_is_dimmed_and_every_led_has_a_reason() -> None:
    found = leds({"p1": printer()}, AlarmState(), 0.0, grace_s=GRACE)
    assert found["green"].level == alarms.IDLE_GREEN_LEVEL < 1
    assert found["green"].reason == "p1: online"


def test_the_most_urgent_printer_drives_each_led() -> None:
    a = printer("a", gcode="RUNNING", hms=("common",))
    b = printer("b", hms=("serious",))
    c = printer("c", connection="offline")
    assert modes(a, b, c) == {"green": "pulse", "amber": "blink", "red": "off"}
    assert modes(c) == {"green": "off", "amber": "slow_blink", "red": "off"}
    found = leds({p["id"]: p for p in (a, b, c)}, AlarmState(), 0, grace_s=GRACE)
    assert found["amber"].reason == "b: serious HMS"


def test_observe_tracks_offline_time_for_the_grace_period() -> None:
    state = observe(AlarmState(), {"p1": printer(connection="offline")}, 100.0)
    assert state.down_since == {"p1": 100.0}
    state = observe(state, {"p1": printer(connection="offline")}, 170.0)
    assert state.down_since == {"p1": 100.0}
    assert modes(printer(connection="offline"), state=state, now=170.0)["red"] == "slow_blink"
    assert observe(state, {"p1": printer()}, 180.0).down_since == {}


def test_a_silent_printer_turns_red_when_it_goes_offline_after_a_stale_spell() -> None:
    # Reports stop; the link is stale from t=60 to t=120 (reconnecting, no report), then offline. The grace
    # runs from the loss, so the red slow blink comes with offline; only a report (online) ends the spell.
    state = AlarmState()
    steps = [(0.0, "online", "off"), (60.0, "stale", "off"), (90.0, "stale", "off"), (120.0, "offline", "slow_blink"),
             (150.0, "offline", "slow_blink"), (151.0, "online", "off"), (152.0, "stale", "off")]
    for now, connection, red in steps:
        p = printer(connection=connection, gcode="RUNNING")
        state = observe(state, {"p1": p}, now)
        assert modes(p, state=state, now=now)["red"] == red, (now, connection)
    assert state.down_since == {"p1": 152.0}  # a new loss starts a new grace period


def raised(severity: str, code: str = "0300_0100_0001_0007", standing: bool = False) -> dict[str, Any]:
    return {"kind": "hms_raised", "printer": "p1", "code": code, "severity": severity,
            "hms": {"code": code, "severity": severity, "standing": standing}}


@pytest.mark.parametrize(
    ("event", "quiet", "sound"),
    [
        (raised("fatal"), False, "fatal"),
        (raised("fatal"), True, "fatal"),
        (raised("serious"), False, "serious"),
        (raised("serious"), True, None),
        (raised("common"), False, None),
        (raised("info"), False, None),
        (raised("fatal", standing=True), False, None),
        (raised("serious", standing=True), False, None),
        ({"kind": "job_finished", "printer": "p1"}, False, "finished"),
        ({"kind": "job_finished", "printer": "p1"}, True, None),
        ({"kind": "job_failed", "printer": "p1"}, False, "failed"),
        ({"kind": "job_failed", "printer": "p1"}, True, None),
        ({"kind": "job_cancelled", "printer": "p1"}, False, None),
        ({"kind": "job_started", "printer": "p1"}, False, None),
        ({"kind": "job_paused", "printer": "p1"}, False, None),
        ({"kind": "connection_lost", "printer": "p1"}, False, None),
        ({"kind": "events_lost", "count": 3}, False, None),
    ],
)
def test_buzzer_rules(event: dict[str, Any], quiet: bool, sound: str | None) -> None:
    assert on_event(AlarmState(), event, 0.0, quiet=quiet)[1] == sound


def test_fatal_repeats_every_30_s_until_acknowledged() -> None:
    p = {"p1": printer(hms=("fatal",))}
    state, sound = on_event(AlarmState(), raised("fatal"), 0.0, quiet=False)
    assert sound == "fatal"
    assert due(state, 29.9)[1] is None
    state, sound = due(state, 30.0)
    assert sound == "fatal"
    assert due(state, 59.0)[1] is None and due(state, 60.0)[1] == "fatal"
    assert pending(state, p, 31.0) == ["p1 0300_0100_0001_0007: fatal"]
    state = acknowledge(state, p)
    assert due(state, 1000.0)[1] is None and pending(state, p, 1000.0) == []


def test_fatal_stops_repeating_when_cleared() -> None:
    state, _ = on_event(AlarmState(), raised("fatal"), 0.0, quiet=False)
    cleared = {"kind": "hms_cleared", "printer": "p1", "code": "0300_0100_0001_0007", "severity": "fatal"}
    state, sound = on_event(state, cleared, 5.0, quiet=False)
    assert sound is None and due(state, 100.0)[1] is None
    # Also when the code is simply gone from the state (events_lost resync): observe drops it.
    state, _ = on_event(AlarmState(), raised("fatal"), 0.0, quiet=False)
    assert observe(state, {"p1": printer()}, 1.0).fatal_due == {}


def test_finished_blinks_until_acknowledged_or_next_print() -> None:
    p = {"p1": printer(gcode="FINISH")}
    state, _ = on_event(AlarmState(), {"kind": "job_finished", "printer": "p1"}, 10.0, quiet=False)
    assert modes(p["p1"], state=state, now=20.0)["green"] == "fast_blink"
    assert modes(p["p1"], state=acknowledge(state, p), now=20.0)["green"] == "on"
    started, _ = on_event(state, {"kind": "job_started", "printer": "p1"}, 30.0, quiet=False)
    assert started.finished_at == {}


def test_failed_red_until_acknowledged_then_back_on_the_next_failure() -> None:
    failed = printer(gcode="FAILED", print_error="0300_8003")
    state = acknowledge(AlarmState(), {"p1": failed})
    assert modes(failed, state=state)["red"] == "off"
    state, _ = on_event(state, {"kind": "job_started", "printer": "p1"}, 0.0, quiet=False)
    assert modes(failed, state=state)["red"] == "on"


def test_nothing_pending_means_the_button_pages() -> None:
    assert pending(AlarmState(), {"p1": printer(hms=("serious",))}, 0.0) == []


@pytest.mark.parametrize(
    ("at", "quiet", "inside"),
    [
        (time(23, 0), ((22, 0), (7, 0)), True),
        (time(3, 0), ((22, 0), (7, 0)), True),
        (time(7, 0), ((22, 0), (7, 0)), False),
        (time(12, 0), ((22, 0), (7, 0)), False),
        (time(13, 30), ((13, 0), (14, 0)), True),
        (time(14, 0), ((13, 0), (14, 0)), False),
        (time(12, 0), None, False),
    ],
)
def test_quiet_hours(at: time, quiet: tuple[tuple[int, int], tuple[int, int]] | None, inside: bool) -> None:
    assert in_quiet_hours(at, quiet) is inside
