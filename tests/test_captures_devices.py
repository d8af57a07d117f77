"""Device-specific fields read from real printers' reports (issue 13, items 4, 12, 13, 14): which tray an H2D/X2D
extruder feeds from, the stage an idle A1/A2L/P1P reports, the A2L as a known model, the X2D's permanent HMS code,
and the door. Each capture in tests/captures/ is replayed through the real reducer; the asserts say what the
printer means (and, where the peer tests the same capture, what the peer asserts)."""

from __future__ import annotations

from typing import Any

import pytest

from bambupi.config import Warned, valid_model
from bambupi.notify.messages import message_for, wanted
from bambupi.panel import alarms
from bambupi.power.autooff import what_off_interrupts
from bambupi.printer.events import events
from bambupi.printer.state import State, apply_message, initial_state
from bambupi.printer_models import model_info
from bambupi.sim.printer import SimulatedPrinter
from tests.capture_corpus import Capture, capture


def replay(item: Capture, state: State | None = None, *, baseline: bool = True) -> State:
    """Every message of a capture, in order, as the link hands them to the reducer."""
    state = initial_state() if state is None else state
    for message in item.messages:
        applied = apply_message(state, message, model=item.model, baseline=baseline)
        assert applied.rejected is None, applied.rejected
        state = applied.state
    return state


def fragment(item: Capture, index: int) -> dict[str, Any]:
    """One of the peer's print-body fragments (no ``command``) marked as the push_status delta it stands for."""
    return {"print": {"command": "push_status", **item.messages[index]["print"]}}


def printer_object(state: State, *, last_report_at: float | None = 1.0) -> dict[str, Any]:
    return {"id": "p", "name": "P", "connection": "online", "last_report_at": last_report_at, "state": state}


# -- item 4: the active tray on dual-nozzle printers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "active_nozzle", "active_tray"),
    [
        # tray_now 0 would read AMS A slot 1; extruder 0 feeds from the AMS HT (snow 0x8000).
        ("h2d-ams-ht", 0, {"ams": 128, "tray": 0}),
        # tray_now 3 would read AMS A slot 4; snow 0x0103 is AMS B slot 4.
        ("h2d-two-ams", 0, {"ams": 1, "tray": 3}),
        # tray_now 0 would read AMS A slot 1; snow 0xFF00 is the external holder 255.
        ("h2d-ext-spool-active", 0, {"external": True, "id": 255}),
        # extruder 1 is active (state 0x112) and has nothing loaded (0xFEFF); tray_now 255 agrees.
        ("h2dpro-ams-ht", 1, None),
        ("h2c-empty-ams", 0, None),
        # extruder 1 of 2 (state 0x8112) feeds from AMS A slot 2 (snow 1), as tray_now 1 says too.
        ("x2d-ams", 1, {"ams": 0, "tray": 1}),
        # single-nozzle printers: snow and tray_now agree.
        ("h2s-ams", 0, {"ams": 0, "tray": 0}),
        ("p2s-ams", 0, {"ams": 0, "tray": 3}),
        ("x1c-four-ams", 0, None),
        ("a2l-ams-lite", 0, None),
        # no device.extruder: tray_now alone.
        ("p1p-ams", None, {"ams": 0, "tray": 0}),
        ("p1p-no-ams", None, {"external": True}),
    ],
)
def test_the_active_tray_is_the_active_extruders_loaded_tray(
    name: str, active_nozzle: int | None, active_tray: dict[str, Any] | None
) -> None:
    state = replay(capture(name))
    assert state["active_nozzle"] == active_nozzle
    assert state["active_tray"] == active_tray


def test_each_nozzle_names_its_loaded_tray() -> None:
    nozzles = replay(capture("h2d-ext-spool-active"))["nozzles"]
    assert nozzles["0"]["tray"] == {"external": True, "id": 255}
    assert nozzles["1"]["tray"] is None  # 0xFEFF: the left extruder has nothing loaded


def test_switching_to_the_left_extruder_switches_the_active_tray() -> None:
    """ha-bambulab's push_left_extruder (TestH2D.test_h2d_nozzle_info): only ``device.extruder.state`` changes."""
    item = capture("h2d-door-extruder")
    state = replay(item)  # push_all; the fragments after it carry no command
    assert state["active_tray"] == {"ams": 128, "tray": 0}
    state = apply_message(state, fragment(item, 5), model="H2D").state
    assert state["active_nozzle"] == 1
    # The left extruder has nothing loaded (snow 0xFEFF); the AMS HT still feeds the right one.
    assert state["active_tray"] is None
    assert state["nozzles"]["0"]["tray"] == {"ams": 128, "tray": 0}


def test_a_later_tray_now_does_not_undo_the_extruders_tray() -> None:
    """A delta carrying only ``tray_now`` (its ambiguous slot number) leaves the tray the extruder named."""
    state = replay(capture("h2d-two-ams"))
    delta = {"print": {"command": "push_status", "msg": 1, "ams": {"tray_now": "3"}}}
    assert apply_message(state, delta, model="H2D").state["active_tray"] == {"ams": 1, "tray": 3}


# -- item 12: stage 0 on an idle A1, A2L, P1P ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "stage"),
    [
        ("a1-ams-lite", None),  # IDLE, stg_cur 0, print_type "idle"
        ("a2l-ams-lite", None),  # IDLE, stg_cur 0, print_type "idle"
        ("p1p-ams", None),  # FAILED, stg_cur 0, print_type "idle"
        ("p1p-no-ams", None),  # FINISH, stg_cur 255
        ("x1c-four-ams", None),  # FINISH, stg_cur -1
        ("h2c-empty-ams", None),  # FAILED, stg_cur -1
        ("h2d-ams-ht", 14),  # RUNNING, stage 14: nozzle cleaning (busy, not printing)
        ("h2d-two-ams", 0),  # RUNNING, stage 0: printing
    ],
)
def test_stage_is_none_when_the_printer_is_idle(name: str, stage: int | None) -> None:
    assert replay(capture(name))["stage"] == stage


@pytest.mark.parametrize("name", ["a1-ams-lite", "a2l-ams-lite", "p1p-ams"])
def test_an_idle_printer_reporting_stage_0_is_not_busy_for_auto_off(name: str) -> None:
    assert what_off_interrupts(printer_object(replay(capture(name)))) is None


# -- item 13: the A2L is a known model; the X2D's permanent code does not alarm --------------------------------------


def test_the_a2l_is_a_known_model() -> None:
    assert not isinstance(valid_model("A2L"), Warned)
    info = model_info("A2L")
    assert (info.has_chamber_sensor, info.camera_kind, info.packed_temps, info.door) == (False, "tls6000", True, None)


def test_an_a2l_report_reads_as_an_a2l() -> None:
    state = replay(capture("a2l-ams-lite"))
    # It reports chamber_temper 5 from a sensor it does not have.
    assert state["chamber_temp"] is None and state["chamber_target"] is None
    assert state["bed_temp"] == 22.0 and state["nozzle_temp"] == 22.0  # device.* (packed, target 0)
    unit = state["ams"]["units"]["16"]  # the AMS lite
    assert unit["trays"]["1"]["type"] == "PETG" and unit["trays"]["1"]["color"] == "#0ACC38"
    assert unit["temp"] is None  # "0.0": no sensor


def test_the_x2ds_permanent_code_is_information_not_an_alarm() -> None:
    item = capture("x2d-ams")
    state = replay(item)
    (entry,) = state["hms"]
    assert entry["code"] == "0500_0600_0002_0070"
    assert entry["severity"] == "info"  # its severity bits say serious; Bambu's table has no text for it
    # Even when it is new (not standing: it was not active before), nothing lights, sounds or is sent.
    without = state | {"hms": []}
    after = printer_object(replay(item, without, baseline=False))
    before = printer_object(without)
    assert after["state"]["hms"][0]["standing"] is False
    (raised,) = [e for e in events(before, after) if e["kind"] == "hms_raised"]
    assert alarms.amber(after).mode == "off" and alarms.red(after, alarms.AlarmState(), 0.0, 60.0).mode == "off"
    assert alarms.on_event(alarms.AlarmState(), raised, 0.0, quiet=False)[1] is None
    message = message_for(raised, "X2D")
    assert message is None or not wanted(message, raised, ("hms",), "serious")


# -- item 14: the door -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "door_open"),
    [
        ("h2d-ams-ht", False),  # stat 17802181F0
        ("h2d-two-ams", False),
        ("h2c-empty-ams", False),  # stat 600248030: wider than 32 bits
        ("h2s-ams", False),
        ("p2s-ams", False),
        ("x2d-ams", False),  # stat 1001000208070
        ("x1c-four-ams", False),  # home_flag -1067070064, bit 23 clear
        ("a1-ams-lite", None),  # no door sensor
        ("a2l-ams-lite", None),  # reports a stat, but has no door
        ("p1p-ams", None),
    ],
)
def test_door_after_a_full_report(name: str, door_open: bool | None) -> None:
    assert replay(capture(name))["door_open"] is door_open


def test_the_h2d_door_opens_and_closes_in_stat_and_ignores_home_flag() -> None:
    """ha-bambulab's TestH2D.test_h2d_door_open and test_h2d_door_ignores_old_flag, on the same messages."""
    item = capture("h2d-door-extruder")
    state = replay(item)  # push_all; the fragments after it carry no command
    assert state["door_open"] is False
    opened = apply_message(state, fragment(item, 1), model="H2D").state
    assert opened["door_open"] is True
    closed = apply_message(opened, fragment(item, 2), model="H2D").state
    assert closed["door_open"] is False
    old_opened = apply_message(closed, fragment(item, 3), model="H2D").state
    assert old_opened["door_open"] is False
    assert apply_message(old_opened, fragment(item, 4), model="H2D").state["door_open"] is False


# -- the simulator reports these fields in the same shapes ----------------------------------------------------------


def sim_state(printer: SimulatedPrinter, model: str, state: State | None = None) -> State:
    return apply_message(state or initial_state(), printer.full_report(), model=model, baseline=True).state


@pytest.mark.parametrize(("model", "field"), [("H2D", "stat"), ("P2S", "stat"), ("X1C", "home_flag"), ("P1S", None)])
async def test_the_simulators_door_reads_as_the_printers(model: str, field: str | None) -> None:
    printer = SimulatedPrinter(model, "01P00A000000042")
    sent = {"stat", "home_flag"} & set(printer.full_report()["print"])
    assert sent == ({field} if field else set())
    assert sim_state(printer, model)["door_open"] is (False if field else None)
    printer.set_door(True)
    assert sim_state(printer, model)["door_open"] is (True if field else None)


@pytest.mark.parametrize(
    ("model", "loaded"),
    [("H2D", {"ams": 0, "tray": 1}), ("P2S", {"ams": 0, "tray": 1}), ("A2L", {"ams": 16, "tray": 1})],
)
async def test_the_simulators_extruder_names_its_loaded_tray(model: str, loaded: dict[str, Any]) -> None:
    printer = SimulatedPrinter(model, "01P00A000000042")
    assert sim_state(printer, model)["active_tray"] is None
    printer.start_print("bracket", layers=10, minutes=5)
    state = sim_state(printer, model)
    assert state["active_tray"] == loaded
    assert state["nozzles"][str(state["active_nozzle"])]["tray"] == loaded
    assert str(loaded["ams"]) in state["ams"]["units"]  # the A2L's AMS lite is unit 16, as a real A2L reports it
