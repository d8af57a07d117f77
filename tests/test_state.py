"""The pure reducer: every rule of the "odd or wrong reports" policy (docs/api.md) and every model difference."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from bambupi.printer.state import (
    MAX_PAYLOAD_BYTES,
    Applied,
    State,
    apply_message,
    initial_state,
    signature_required,
)
from bambupi.printer_models import model_info

FIXTURES = Path(__file__).parent / "fixtures"

DOCUMENTED_KEYS = {
    "gcode_state", "percent", "remaining_min", "layer", "total_layers",
    "nozzle_temp", "nozzle_target", "bed_temp", "bed_target", "chamber_temp", "chamber_target",
    "nozzles", "active_nozzle", "stage", "print_error", "print_error_text", "print_error_action", "job_result",
    "hms", "ams", "active_tray", "external_spool", "external_spools",
    "speed_level", "wifi_dbm", "subtask_name", "gcode_file", "lights", "liveview", "door_open",
}  # fmt: skip


def fixture(name: str) -> bytes:
    return (FIXTURES / f"report_{name}.json").read_bytes()


def report(**fields: Any) -> dict[str, Any]:
    return {"print": {"command": "push_status", "msg": 1, **fields}}


def spool(
    kind: str | None, color: str | None, remain: int | None, *, uuid: str | None = None,
    weight: float | None = None, idx: str | None = None,
) -> dict[str, Any]:
    """A loaded slot or holder as the state keeps it: its filament, and what its RFID tag says (none here)."""
    return {
        "type": kind, "color": color, "remain": remain, "tray_uuid": uuid, "tray_weight": weight, "tray_info_idx": idx,
    }


def apply(state: State, payload: Any, model: str = "P1S", *, baseline: bool = False) -> Applied:
    applied = apply_message(state, payload, model=model, baseline=baseline)
    assert applied.rejected is None, applied.rejected
    return applied


@pytest.fixture
def p1s() -> State:
    """A P1S mid-print, after its first full report."""
    return apply(initial_state(), fixture("p1s"), "P1S", baseline=True).state


# -- the state shape ---------------------------------------------------------------------------------------


def test_initial_state_has_every_documented_key_and_knows_nothing() -> None:
    state = initial_state()
    assert set(state) == DOCUMENTED_KEYS
    assert state["hms"] == []
    assert state["ams"] == {"units": {}}
    assert state["nozzles"] == {} and state["lights"] == {} and state["external_spools"] == {}
    others = DOCUMENTED_KEYS - {"hms", "ams", "nozzles", "lights", "external_spools"}
    assert all(state[key] is None for key in others)


def test_initial_state_is_a_fresh_object_each_time() -> None:
    first = initial_state()
    first["ams"]["units"]["0"] = {}
    assert initial_state()["ams"] == {"units": {}}


@pytest.mark.parametrize("name,model", [("p1s", "P1S"), ("x1c", "X1C"), ("h2d", "H2D")])
def test_fixture_reports_keep_the_documented_keys_and_are_json_ready(name: str, model: str) -> None:
    state = apply(initial_state(), fixture(name), model, baseline=True).state
    assert set(state) == DOCUMENTED_KEYS
    assert json.loads(json.dumps(state)) == state


def test_full_p1s_report(p1s: State) -> None:
    assert p1s["gcode_state"] == "RUNNING"
    assert (p1s["percent"], p1s["remaining_min"], p1s["layer"], p1s["total_layers"]) == (42, 87, 57, 142)
    assert (p1s["nozzle_temp"], p1s["nozzle_target"]) == (219.8, 220.0)
    assert (p1s["bed_temp"], p1s["bed_target"]) == (55.0, 55.0)
    assert p1s["chamber_temp"] is None  # P1S reports a constant 5 from a sensor it does not have
    assert p1s["speed_level"] == 2 and p1s["wifi_dbm"] == -52 and p1s["stage"] == 0
    assert p1s["subtask_name"] == "benchy_PLA_0.2mm"
    assert p1s["print_error"] is None
    assert p1s["lights"] == {"chamber_light": "on"}
    assert p1s["active_tray"] == {"ams": 0, "tray": 0}
    assert p1s["external_spool"] == spool("PLA", "#00AE42", None, idx="GFL99")  # reported as 0: unknown
    assert p1s["external_spools"] == {"254": p1s["external_spool"]}
    unit = p1s["ams"]["units"]["0"]
    assert (unit["humidity_index"], unit["humidity_pct"], unit["temp"]) == (4, None, 25.5)
    assert unit["trays"] == {
        "0": spool("PLA", "#000000", 87, weight=1000, idx="GFA00"),  # a tray_uuid of zeros is no tag
        "1": spool("PETG", "#FF6A13", None, idx="GFG99"),
        "2": {"empty": True},
        "3": spool("PLA", "#FFFFFF", 12),
    }
    assert [entry["code"] for entry in p1s["hms"]] == ["0300_1200_0002_0001"]


def test_full_x1c_report() -> None:
    applied = apply(initial_state(), fixture("x1c"), "X1C", baseline=True)
    state = applied.state
    assert state["gcode_state"] == "RUNNING"  # reported as "running"
    assert state["percent"] == 17 and state["remaining_min"] == 213  # numeric strings
    assert state["chamber_temp"] == 38.5
    assert state["ams"]["units"]["0"]["humidity_pct"] == 28
    assert set(state["ams"]["units"]) == {"0", "1"}
    assert state["ams"]["units"]["1"]["trays"]["3"] == {"empty": True}
    assert state["active_tray"] == {"ams": 0, "tray": 1}
    assert [e["code"] for e in state["hms"]] == ["0C00_0300_0003_0008", "0701_2000_0002_0001"]
    assert applied.fun is not None and signature_required(applied.fun)


def test_full_h2d_report_unpacks_device_temperatures() -> None:
    state = apply(initial_state(), fixture("h2d"), "H2D", baseline=True).state
    assert (state["bed_temp"], state["bed_target"]) == (55.0, 60.0)
    assert state["chamber_temp"] == 35.0
    assert state["nozzles"] == {
        "0": {"temp": 218.0, "target": 220.0, "tray": {"ams": 0, "tray": 1}},
        "1": {"temp": 188.0, "target": 207.0, "tray": {"ams": 2, "tray": 0}},
    }
    assert state["active_nozzle"] == 1
    assert state["active_tray"] == {"ams": 2, "tray": 0}  # the active extruder's snow 0x0200, not tray_now
    # The top-level nozzle fields are stale on H2D; the active nozzle wins.
    assert (state["nozzle_temp"], state["nozzle_target"]) == (188.0, 207.0)
    assert state["ams"]["units"]["128"]["trays"] == {"0": spool("PETG", "#000000", 90)}


# -- merge rules -------------------------------------------------------------------------------------------


def test_a_delta_updates_only_the_fields_it_carries(p1s: State) -> None:
    new = apply(p1s, report(mc_percent=43, layer_num=58)).state
    assert (new["percent"], new["layer"]) == (43, 58)
    assert {k: v for k, v in new.items() if k not in ("percent", "layer")} == {
        k: v for k, v in p1s.items() if k not in ("percent", "layer")
    }


def test_the_input_state_is_never_mutated(p1s: State) -> None:
    before = copy.deepcopy(p1s)
    apply(p1s, fixture("x1c"), "P1S")
    apply(p1s, report(ams={"ams": [{"id": "0", "humidity": "1", "tray": [{"id": "0", "remain": 3}]}]}))
    apply(p1s, report(lights_report=[{"node": "chamber_light", "mode": "off"}], hms=[]))
    assert p1s == before


def test_a_report_gives_a_new_state_object_and_a_non_report_the_same(p1s: State) -> None:
    assert apply(p1s, report()).state is not p1s
    assert apply(p1s, {"info": {"command": "get_version", "sequence_id": "3", "module": []}}).state is p1s


@pytest.mark.parametrize(
    "field,value,key,expected",
    [
        ("mc_percent", "52", "percent", 52),
        ("mc_percent", 52.0, "percent", 52),
        ("mc_remaining_time", " 90 ", "remaining_min", 90),
        ("layer_num", "7", "layer", 7),
        ("total_layer_num", "300", "total_layers", 300),
        ("nozzle_temper", "221.5", "nozzle_temp", 221.5),
        ("nozzle_temper", 220, "nozzle_temp", 220.0),
        ("nozzle_temper", 219.96875, "nozzle_temp", 220.0),
        ("bed_target_temper", "60", "bed_target", 60.0),
        ("spd_lvl", "4", "speed_level", 4),
        ("stg_cur", "22", "stage", 22),
        ("stg_cur", "255", "stage", None),  # P1's idle
        ("stg_cur", -1, "stage", None),  # X1's idle
        ("print_error", "50348044", "print_error", "0300_400C"),
        ("print_error", 0x0300_400C, "print_error", "0300_400C"),
        ("print_error", 0xFFFF_FFFF, "print_error", "FFFF_FFFF"),
        ("print_error", 0, "print_error", None),
        ("wifi_signal", "-52dBm", "wifi_dbm", -52),
        ("wifi_signal", "-70", "wifi_dbm", -70),
        ("gcode_state", "running", "gcode_state", "RUNNING"),
        ("gcode_state", " Pause ", "gcode_state", "PAUSE"),
        ("gcode_state", "SLICING", "gcode_state", "SLICING"),
        ("gcode_state", "CALIBRATING_SOMETHING_NEW", "gcode_state", "UNKNOWN"),
        ("subtask_name", "lid v2", "subtask_name", "lid v2"),
        ("gcode_file", "/data/Metadata/plate_2.gcode", "gcode_file", "/data/Metadata/plate_2.gcode"),
    ],
)
def test_field_values_are_read(p1s: State, field: str, value: Any, key: str, expected: Any) -> None:
    assert apply(p1s, report(**{field: value})).state[key] == expected


@pytest.mark.parametrize(
    "field,value,key",
    [
        # booleans are never numbers
        ("mc_percent", True, "percent"),
        ("layer_num", False, "layer"),
        ("nozzle_temper", True, "nozzle_temp"),
        # unreadable
        ("mc_percent", "abc", "percent"),
        ("mc_percent", None, "percent"),
        ("mc_percent", [42], "percent"),
        ("mc_percent", {"v": 42}, "percent"),
        ("mc_percent", "42.5", "percent"),
        ("layer_num", 7.5, "layer"),
        ("nozzle_temper", "hot", "nozzle_temp"),
        ("nozzle_temper", "nan", "nozzle_temp"),
        ("nozzle_temper", "inf", "nozzle_temp"),
        ("wifi_signal", "strong", "wifi_dbm"),
        ("subtask_name", 12, "subtask_name"),
        ("gcode_state", "", "gcode_state"),
        ("gcode_state", "   ", "gcode_state"),
        ("gcode_state", 4, "gcode_state"),
        ("print_error", "E42", "print_error"),
        # out of range
        ("mc_percent", 101, "percent"),
        ("mc_percent", -1, "percent"),
        ("mc_remaining_time", 144_001, "remaining_min"),
        ("mc_remaining_time", -5, "remaining_min"),
        ("layer_num", -1, "layer"),
        ("total_layer_num", -3, "total_layers"),
        ("nozzle_temper", 600.5, "nozzle_temp"),
        ("nozzle_temper", -41, "nozzle_temp"),
        ("bed_temper", 1e6, "bed_temp"),
        ("bed_target_temper", -273, "bed_target"),
        ("print_error", 0x1_0000_0000, "print_error"),
        ("print_error", -1, "print_error"),
        ("spd_lvl", 0, "speed_level"),
        ("spd_lvl", 5, "speed_level"),
        ("stg_cur", 256, "stage"),
        ("wifi_signal", "+20dBm", "wifi_dbm"),
    ],
)
def test_unreadable_or_out_of_range_keeps_the_previous_value(p1s: State, field: str, value: Any, key: str) -> None:
    witness = [{"node": "work_light", "mode": "on"}]
    new = apply(p1s, report(**{field: value}, lights_report=witness)).state
    assert new[key] == p1s[key]
    assert new["lights"]["work_light"] == "on", "the other fields of the message still apply"


def test_one_bad_field_does_not_spoil_the_rest(p1s: State) -> None:
    new = apply(p1s, report(mc_percent="abc", layer_num=60, nozzle_temper=True, bed_temper="58")).state
    assert new["percent"] == 42 and new["nozzle_temp"] == 219.8
    assert new["layer"] == 60 and new["bed_temp"] == 58.0


@pytest.mark.parametrize(
    "field,value,key,expected",
    [
        ("mc_percent", 0, "percent", 0),
        ("mc_percent", 100, "percent", 100),
        ("mc_remaining_time", 0, "remaining_min", 0),
        ("mc_remaining_time", 144_000, "remaining_min", 144_000),
        ("layer_num", 0, "layer", 0),
        ("nozzle_temper", -40, "nozzle_temp", -40.0),
        ("nozzle_temper", 600, "nozzle_temp", 600.0),
        ("spd_lvl", 1, "speed_level", 1),
    ],
)
def test_range_boundaries_are_accepted(p1s: State, field: str, value: Any, key: str, expected: Any) -> None:
    assert apply(p1s, report(**{field: value})).state[key] == expected


# -- whole-message rejection -------------------------------------------------------------------------------


def _deep(depth: int) -> bytes:
    return b'{"print": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not json", id="not-json"),
        pytest.param(b'{"print": {"command": "push_status", "mc_percent": 5', id="truncated"),
        pytest.param(b'{"print": {"command": "push_status", "nozzle_temper": NaN}}', id="nan"),
        pytest.param(b'{"print": {"command": "push_status"}, "x": [Infinity]}', id="infinity-elsewhere"),
        pytest.param(b'{"print": {"command": "push_status", "bed_temper": -Infinity}}', id="minus-infinity"),
        pytest.param(b'{"print": {"command": "push_status", "bed_temper": 1e999}}', id="overflowing-float"),
        pytest.param(b"[1, 2]", id="list-root"),
        pytest.param(b'"push_status"', id="string-root"),
        pytest.param(b"null", id="null-root"),
        pytest.param(b'{"print": []}', id="print-list"),
        pytest.param(b'{"print": "push_status"}', id="print-string"),
        pytest.param(b'{"print": null}', id="print-null"),
        pytest.param(_deep(40), id="deep"),
        pytest.param(b"[" * 200_000 + b"]" * 200_000, id="absurdly-deep"),
        pytest.param(b'{"print": {"command": "push_status", "pad": "' + b"x" * MAX_PAYLOAD_BYTES + b'"}}', id="huge"),
        pytest.param({"print": {"command": "push_status", "bed_temper": float("nan")}}, id="dict-with-nan"),
        pytest.param({"print": 5}, id="dict-print-int"),
        pytest.param(b'{"print": {"command": "push_status", "n": 1' + b"0" * 5000 + b"}}", id="huge-int"),
    ],
)
def test_bad_messages_are_rejected_whole(p1s: State, payload: Any) -> None:
    applied = apply_message(p1s, payload, model="P1S")
    assert applied.rejected
    assert applied.state is p1s
    assert applied.reply is None and applied.fun is None and applied.commands_rejected is None


def test_a_realistically_nested_message_is_not_rejected(p1s: State) -> None:
    assert apply_message(p1s, _deep(20), model="P1S").rejected is None


def test_a_str_payload_is_accepted(p1s: State) -> None:
    assert apply(p1s, json.dumps(report(mc_percent=50))).state["percent"] == 50


def test_invalid_utf8_is_read_as_latin1(p1s: State) -> None:
    payload = b'{"print": {"command": "push_status", "subtask_name": "caf\xe9 sign", "mc_percent": 44}}'
    new = apply(p1s, payload).state
    assert new["subtask_name"] == "café sign"
    assert new["percent"] == 44


def test_utf8_text_is_read_as_utf8(p1s: State) -> None:
    new = apply(p1s, json.dumps(report(subtask_name="Würfel ✓"), ensure_ascii=False).encode()).state
    assert new["subtask_name"] == "Würfel ✓"


# -- replies and other objects -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload,reply",
    [
        (
            {"print": {"command": "pause", "sequence_id": "12", "result": "SUCCESS", "reason": "", "param": ""}},
            {"sequence_id": "12", "command": "pause", "result": "success", "reason": ""},
        ),
        (
            {"print": {"command": "stop", "sequence_id": 13, "result": "Failed", "reason": "verify failed"}},
            {"sequence_id": "13", "command": "stop", "result": "failed", "reason": "verify failed"},
        ),
        (
            {"system": {"command": "ledctrl", "sequence_id": "14", "led_node": "chamber_light", "result": "success"}},
            {"sequence_id": "14", "command": "ledctrl", "result": "success", "reason": None},
        ),
        (
            {"info": {"command": "get_version", "sequence_id": "15", "module": [{"name": "ota", "sw_ver": "1"}]}},
            {"sequence_id": "15", "command": "get_version", "result": "", "reason": None},
        ),
        ({"print": {"command": "gcode_line", "param": "M104 S0"}}, None),
        ({"mc_print": {"param": "something"}}, None),
        ({}, None),
    ],
)
def test_replies_and_other_messages_never_change_state(
    p1s: State, payload: dict[str, Any], reply: dict[str, Any] | None
) -> None:
    # A reply even carries state-looking fields now and then; they must not be applied.
    for body in payload.values():
        body["mc_percent"] = 99
    applied = apply(p1s, payload)
    assert applied.state is p1s
    assert applied.reply == reply
    assert applied.commands_rejected is None


def test_a_push_status_is_not_a_reply(p1s: State) -> None:
    assert apply(p1s, report(sequence_id="77", mc_percent=1)).reply is None


# -- gcode_state, chamber, AMS nulls -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "model,chamber_value,expected",
    [
        ("P1S", 5, None),
        ("P1P", 5, None),
        ("A1", 5, None),
        ("A1MINI", 5, None),
        ("a1 mini", 5, None),
        ("X1C", 5, 5.0),
        ("X1E", 41.25, 41.2),
        ("x1c", "36", 36.0),
    ],
)
def test_chamber_temperature_only_on_models_with_a_sensor(model: str, chamber_value: Any, expected: Any) -> None:
    state = apply(initial_state(), report(chamber_temper=chamber_value), model).state
    assert state["chamber_temp"] == expected


def test_packed_chamber_temperature_is_ignored_without_a_sensor() -> None:
    payload = report(device={"ctc": {"info": {"temp": (45 << 16) | 30}}})
    assert apply(initial_state(), payload, "P1S").state["chamber_temp"] is None
    h2s = apply(initial_state(), payload, "H2S").state
    assert (h2s["chamber_temp"], h2s["chamber_target"]) == (30.0, 45.0)


@pytest.mark.parametrize(
    "unit_temp,expected",
    [("0.0", None), ("0", None), (0, None), ("24.3", 24.3), ("-3.5", -3.5), ("hot", "keep"), ("700", "keep")],
)
def test_ams_temp(p1s: State, unit_temp: Any, expected: Any) -> None:
    new = apply(p1s, report(ams={"ams": [{"id": "0", "temp": unit_temp}]})).state
    want = p1s["ams"]["units"]["0"]["temp"] if expected == "keep" else expected
    assert new["ams"]["units"]["0"]["temp"] == want


@pytest.mark.parametrize(
    "remain,expected",
    # 0 in a delta that shows no RFID tag and no remaining estimate (home_flag) is "not measured" (test_captures)
    [(-1, None), ("-1", None), (0, None), (55, 55), ("100", 100), (101, "keep"), (-2, "keep")],
)
def test_tray_remain(p1s: State, remain: Any, expected: Any) -> None:
    new = apply(p1s, report(ams={"ams": [{"id": "0", "tray": [{"id": "0", "remain": remain}]}]})).state
    want = p1s["ams"]["units"]["0"]["trays"]["0"]["remain"] if expected == "keep" else expected
    assert new["ams"]["units"]["0"]["trays"]["0"]["remain"] == want


# -- AMS merge ---------------------------------------------------------------------------------------------


def test_an_ams_delta_updates_only_what_it_carries(p1s: State) -> None:
    delta = report(ams={"ams": [{"id": "0", "humidity": "2", "tray": [{"id": "3", "remain": 11}]}]})
    new = apply(p1s, delta).state
    unit, old_unit = new["ams"]["units"]["0"], p1s["ams"]["units"]["0"]
    assert unit["humidity_index"] == 2
    assert unit["temp"] == old_unit["temp"]
    assert unit["trays"]["3"] == spool("PLA", "#FFFFFF", 11)
    assert {k: v for k, v in unit["trays"].items() if k != "3"} == {
        k: v for k, v in old_unit["trays"].items() if k != "3"
    }


def test_a_slot_that_empties_and_is_refilled(p1s: State) -> None:
    emptied = apply(p1s, report(ams={"ams": [{"id": "0", "tray": [{"id": "0"}]}]})).state
    assert emptied["ams"]["units"]["0"]["trays"]["0"] == {"empty": True}
    refill = report(ams={"ams": [{"id": "0", "tray": [{"id": "0", "tray_type": "ABS", "tray_color": "FF0000FF"}]}]})
    refilled = apply(emptied, refill).state
    assert refilled["ams"]["units"]["0"]["trays"]["0"] == spool("ABS", "#FF0000", None)  # the old tag is gone


def test_a_new_ams_unit_is_added_and_the_old_kept(p1s: State) -> None:
    new = apply(p1s, report(ams={"ams": [{"id": "1", "humidity": "5", "humidity_raw": 61}]})).state
    assert set(new["ams"]["units"]) == {"0", "1"}
    assert new["ams"]["units"]["1"] == {"humidity_index": 5, "humidity_pct": 61, "temp": None, "trays": {}}


@pytest.mark.parametrize(
    "junk",
    [
        {"ams": "broken"},
        {"ams": [None, 3, "x", {"id": "x"}, {"humidity": "2"}, {"id": True}]},
        {"ams": [{"id": "0", "tray": "x"}]},
        {"ams": [{"id": "0", "tray": [None, {"id": None, "remain": 5}, {"remain": 5}]}]},
        {"ams": [{"id": "0", "humidity": "9", "humidity_raw": 140}]},
        {"ams": [{"id": "0", "tray": [{"id": "0", "tray_color": "red", "tray_type": 5}]}]},
        {"tray_now": "banana"},
        {"tray_now": "200"},
    ],
)
def test_ams_junk_keeps_what_we_knew(p1s: State, junk: Any) -> None:
    new = apply(p1s, report(ams=junk)).state
    assert new["ams"] == p1s["ams"]
    assert new["active_tray"] == p1s["active_tray"]


@pytest.mark.parametrize(
    "tray_now,expected",
    [
        ("255", None),
        (255, None),
        ("254", {"external": True}),
        ("0", {"ams": 0, "tray": 0}),
        ("3", {"ams": 0, "tray": 3}),
        ("6", {"ams": 1, "tray": 2}),
        ("15", {"ams": 3, "tray": 3}),
        ("128", {"ams": 128, "tray": 0}),
        ("135", {"ams": 135, "tray": 0}),
    ],
)
def test_tray_now(p1s: State, tray_now: Any, expected: Any) -> None:
    assert apply(p1s, report(ams={"tray_now": tray_now})).state["active_tray"] == expected


@pytest.mark.parametrize("color,expected", [("FF6A13FF", "#FF6A13"), ("ff6a13", "#FF6A13"), ("00000000", "#000000")])
def test_tray_colour_is_css(color: str, expected: str) -> None:
    payload = report(ams={"ams": [{"id": "0", "tray": [{"id": "1", "tray_color": color, "tray_type": "PLA"}]}]})
    assert apply(initial_state(), payload).state["ams"]["units"]["0"]["trays"]["1"]["color"] == expected


def test_external_spool(p1s: State) -> None:
    new = apply(p1s, report(vt_tray={"id": "254", "tray_type": "PETG", "tray_color": "112233FF", "remain": -1}))
    assert new.state["external_spool"] == spool("PETG", "#112233", None, idx="GFL99")
    unloaded = apply(new.state, report(vt_tray={"id": "254", "tray_type": ""})).state
    assert unloaded["external_spool"] == {"empty": True}  # not a spool of unknown type


# -- lights -------------------------------------------------------------------------------------------------


def test_lights_are_merged_by_node(p1s: State) -> None:
    new = apply(p1s, report(lights_report=[{"node": "work_light", "mode": "flashing"}, {"node": 3}, "x"])).state
    assert new["lights"] == {"chamber_light": "on", "work_light": "flashing"}
    off = apply(new, report(lights_report=[{"node": "chamber_light", "mode": "off"}])).state
    assert off["lights"]["chamber_light"] == "off"
    assert apply(off, report(lights_report="on")).state["lights"] == off["lights"]


# -- HMS ----------------------------------------------------------------------------------------------------

FRONT_COVER = {"attr": 0x0300_1200, "code": 0x0002_0001}
SPAGHETTI = {"attr": 0x0C00_0300, "code": 0x0003_0008}
RUNOUT = {"attr": 0x0700_2000, "code": 0x0002_0001}
VERIFY_FAILED = {"attr": 0x0500_0500, "code": 0x0001_0007}


def codes(state: State) -> list[str]:
    return [entry["code"] for entry in state["hms"]]


@pytest.mark.parametrize(
    "entry",
    [
        {"attr": 0, "code": 0x0002_0001},
        {"attr": 0x0300_1200, "code": 0},
        {"attr": -5, "code": 0x0002_0001},
        {"attr": "50336256", "code": 131073},
        {"attr": 50336256.0, "code": 131073},
        {"attr": True, "code": 131073},
        {"attr": 50336256, "code": False},
        {"attr": 50336256},
        {"code": 131073},
        {"attr": 0x1_0000_0000, "code": 131073},
        None,
        "0300_1200_0002_0001",
        [50336256, 131073],
    ],
)
def test_invalid_hms_entries_are_ignored(entry: Any) -> None:
    state = apply(initial_state(), report(hms=[entry, SPAGHETTI])).state
    assert codes(state) == ["0C00_0300_0003_0008"]


@pytest.mark.parametrize("hms", ["none", 5, {"attr": 1, "code": 1}, None, True])
def test_an_hms_value_that_is_not_a_list_is_ignored(p1s: State, hms: Any) -> None:
    applied = apply(p1s, report(hms=hms))
    assert applied.state["hms"] == p1s["hms"]
    assert applied.commands_rejected is None


def test_a_present_hms_list_replaces_the_active_list_and_an_absent_one_keeps_it(p1s: State) -> None:
    kept = apply(p1s, report(mc_percent=50)).state
    assert codes(kept) == ["0300_1200_0002_0001"]
    replaced = apply(kept, report(hms=[SPAGHETTI])).state
    assert codes(replaced) == ["0C00_0300_0003_0008"]
    assert apply(replaced, report(hms=[])).state["hms"] == []


def test_duplicate_hms_entries_count_once() -> None:
    assert codes(apply(initial_state(), report(hms=[RUNOUT, RUNOUT])).state) == ["0700_2000_0002_0001"]


def test_hms_entries_carry_the_documented_fields() -> None:
    entry = apply(initial_state(), report(hms=[FRONT_COVER]), "X1C").state["hms"][0]
    assert entry == {
        "code": "0300_1200_0002_0001",
        "severity": "serious",
        "module": "Motion controller",
        "description": "The front cover of the toolhead fell off.",
        "action": None,
        "url": "https://wiki.bambulab.com/en/x1/troubleshooting/hmscode/0300_1200_0002_0001",
        "standing": False,
        "silent": False,
    }


def standing(state: State) -> dict[str, bool]:
    return {entry["code"]: entry["standing"] for entry in state["hms"]}


def test_hms_standing_lifecycle() -> None:
    # The first report after start: everything active is standing.
    s1 = apply(initial_state(), report(hms=[FRONT_COVER]), baseline=True).state
    assert standing(s1) == {"0300_1200_0002_0001": True}
    # It stays active and keeps its flag; a new code is not standing.
    s2 = apply(s1, report(hms=[FRONT_COVER, SPAGHETTI])).state
    assert standing(s2) == {"0300_1200_0002_0001": True, "0C00_0300_0003_0008": False}
    # A delta without an hms list changes nothing.
    s3 = apply(s2, report(mc_percent=3)).state
    assert standing(s3) == standing(s2)
    # The standing code clears ...
    s4 = apply(s3, report(hms=[SPAGHETTI])).state
    assert standing(s4) == {"0C00_0300_0003_0008": False}
    # ... and when it returns it is new.
    s5 = apply(s4, report(hms=[SPAGHETTI, FRONT_COVER])).state
    assert standing(s5) == {"0C00_0300_0003_0008": False, "0300_1200_0002_0001": False}


def test_after_a_reconnect_only_codes_not_active_before_are_new() -> None:
    before_drop = apply(initial_state(), report(hms=[FRONT_COVER]), baseline=True).state
    before_drop = apply(before_drop, report(hms=[FRONT_COVER, RUNOUT])).state
    # The pushall after the reconnect (not a baseline: the service did not restart).
    after = apply(before_drop, report(hms=[FRONT_COVER, RUNOUT, SPAGHETTI])).state
    assert standing(after) == {
        "0300_1200_0002_0001": True,
        "0700_2000_0002_0001": False,
        "0C00_0300_0003_0008": False,
    }
    assert [e for e in after["hms"] if e["code"] == "0700_2000_0002_0001"] == [
        e for e in before_drop["hms"] if e["code"] == "0700_2000_0002_0001"
    ]


@pytest.mark.parametrize(
    "hms,commands_rejected,active",
    [
        ([VERIFY_FAILED], True, []),
        ([VERIFY_FAILED, SPAGHETTI], True, ["0C00_0300_0003_0008"]),
        ([SPAGHETTI], False, ["0C00_0300_0003_0008"]),
        ([], False, []),
    ],
)
def test_command_verification_failed_means_controls_unavailable_not_an_alarm(
    hms: list[Any], commands_rejected: bool, active: list[str]
) -> None:
    applied = apply(initial_state(), report(hms=hms))
    assert applied.commands_rejected is commands_rejected
    assert codes(applied.state) == active


def test_no_hms_list_says_nothing_about_commands() -> None:
    assert apply(initial_state(), report(mc_percent=1)).commands_rejected is None


# -- fun ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fun,parsed,required",
    [
        ("3EC1AFFF9CFF", 0x3EC1AFFF9CFF, True),
        ("3EC18FFF9CFF", 0x3EC18FFF9CFF, False),
        ("20000000", 0x2000_0000, True),
        ("0", 0, False),
        ("zz", None, None),
        ("", None, None),
        (True, None, None),
        (-1, None, None),
        (None, None, None),
    ],
)
def test_fun(fun: Any, parsed: int | None, required: bool | None) -> None:
    applied = apply(initial_state(), report(fun=fun))
    assert applied.fun == parsed
    if parsed is not None:
        assert signature_required(parsed) is required


def test_fun_is_absent_when_not_reported() -> None:
    assert apply(initial_state(), report()).fun is None


# -- newer models: packed device temperatures --------------------------------------------------------------


def packed(target: int, current: int) -> int:
    return (target << 16) | current


def test_switching_the_active_nozzle_switches_the_shown_temperature() -> None:
    state = apply(initial_state(), fixture("h2d"), "H2D", baseline=True).state
    switched = apply(state, report(device={"extruder": {"state": 0x02}}), "H2D").state
    assert switched["active_nozzle"] == 0
    assert (switched["nozzle_temp"], switched["nozzle_target"]) == (218.0, 220.0)


def test_a_nozzle_delta_updates_one_nozzle() -> None:
    state = apply(initial_state(), fixture("h2d"), "H2D", baseline=True).state
    delta = report(device={"extruder": {"info": [{"id": 1, "temp": packed(210, 205)}]}})
    new = apply(state, delta, "H2D").state
    temps = {k: (n["temp"], n["target"]) for k, n in new["nozzles"].items()}
    assert temps == {"0": (218.0, 220.0), "1": (205.0, 210.0)}
    assert new["nozzles"]["1"]["tray"] == state["nozzles"]["1"]["tray"]
    assert (new["nozzle_temp"], new["nozzle_target"]) == (205.0, 210.0)


@pytest.mark.parametrize(
    "value,expected",
    [
        (packed(60, 55), (55.0, 60.0)),
        (packed(0, 23), (23.0, 0.0)),
        (55.5, (55.5, "keep")),
        ("41", (41.0, "keep")),
        (packed(60, 0xFFFF), ("keep", 60.0)),
        (-1, ("keep", "keep")),
        (0x1_0000_0000, ("keep", "keep")),
        (True, ("keep", "keep")),
        (None, ("keep", "keep")),
    ],
)
def test_packed_bed_temperature(value: Any, expected: tuple[Any, Any]) -> None:
    before = apply(initial_state(), report(bed_temper=30, bed_target_temper=35), "H2D").state
    new = apply(before, report(device={"bed": {"info": {"temp": value}}}), "H2D").state
    want_current = 30.0 if expected[0] == "keep" else expected[0]
    want_target = 35.0 if expected[1] == "keep" else expected[1]
    assert (new["bed_temp"], new["bed_target"]) == (want_current, want_target)


@pytest.mark.parametrize(
    "device",
    [
        "x",
        {"bed": "x", "ctc": [], "extruder": 5},
        {"extruder": {"state": "zz", "info": "zz"}},
        {"extruder": {"info": [None, {"id": "a", "temp": 5}, {"id": 0}, {"id": 99, "temp": 5}]}},
        {"bed": {"info": {"state": 1}}},
    ],
)
def test_device_junk_keeps_what_we_knew(device: Any) -> None:
    state = apply(initial_state(), fixture("h2d"), "H2D", baseline=True).state
    new = apply(state, report(device=device), "H2D").state
    assert new == state


def test_an_extruder_state_naming_a_missing_extruder_is_ignored() -> None:
    state = apply(initial_state(), fixture("h2d"), "H2D", baseline=True).state
    # 2 extruders, active = 5: impossible.
    assert apply(state, report(device={"extruder": {"state": 0x52}}), "H2D").state["active_nozzle"] == 1


def test_single_nozzle_models_keep_the_top_level_nozzle() -> None:
    state = apply(initial_state(), report(nozzle_temper=200, nozzle_target_temper=210), "X1C").state
    assert (state["nozzle_temp"], state["nozzle_target"]) == (200.0, 210.0)
    assert state["nozzles"] == {} and state["active_nozzle"] is None


# -- models --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model,chamber,camera,port,full,door",
    [
        ("X1C", True, "rtsps", 322, True, "home_flag"),
        ("x1c", True, "rtsps", 322, True, "home_flag"),
        ("X1 Carbon", True, "rtsps", 322, True, "home_flag"),
        ("X1E", True, "rtsps", 322, True, "home_flag"),
        ("P1P", False, "tls6000", 6000, False, None),
        ("P1S", False, "tls6000", 6000, False, None),
        ("A1", False, "tls6000", 6000, False, None),
        ("A1MINI", False, "tls6000", 6000, False, None),
        ("A1 Mini", False, "tls6000", 6000, False, None),
        ("a1-mini", False, "tls6000", 6000, False, None),
        ("A2L", False, "tls6000", 6000, False, None),
        ("H2D", True, "rtsps", 322, False, "stat"),
        ("H2S", True, "rtsps", 322, False, "stat"),
        ("H2C", True, "rtsps", 322, False, "stat"),
        ("P2S", True, "rtsps", 322, False, "stat"),
        ("X2D", True, "rtsps", 322, False, "stat"),
        ("Z9 Future", True, "rtsps", 322, False, None),
        ("", True, "rtsps", 322, False, None),
    ],
)
def test_model_info(model: str, chamber: bool, camera: str, port: int, full: bool, door: str | None) -> None:
    info = model_info(model)
    assert (info.has_chamber_sensor, info.camera_kind, info.camera_port, info.full_reports, info.door) == (
        chamber,
        camera,
        port,
        full,
        door,
    )


# -- stage, door and the extruders' trays (real captures: tests/test_captures_devices.py) ----------------------------


def test_stage_0_is_printing_only_inside_a_job(p1s: State) -> None:
    assert p1s["gcode_state"] == "RUNNING" and p1s["stage"] == 0
    # The job ends in a delta that does not repeat stg_cur: the 0 left from printing is not "printing" any more.
    assert apply(p1s, report(gcode_state="FINISH")).state["stage"] is None
    # An A1 idle report says so in print_type.
    assert apply(p1s, report(stg_cur=0, print_type="idle")).state["stage"] is None


@pytest.mark.parametrize(
    ("model", "fields", "expected"),
    [
        # X1C: bit 23 of home_flag, a signed 32-bit number on newer firmware.
        ("X1C", {"home_flag": -1066934785 | 0x0080_0000}, True),
        ("X1C", {"home_flag": -1066934785}, False),
        ("X1C", {"stat": "46A58008"}, None),  # an X1C's door is not in stat
        ("P2S", {"stat": "46A58008"}, True),
        ("P2S", {"stat": 0x46A58008}, None),  # stat is a hex string; a number is not read
        ("P2S", {"stat": "not hex"}, None),
        ("P1S", {"stat": "46A58008", "home_flag": 0x0080_0000}, None),  # no door sensor
        ("Z9 Future", {"stat": "46A58008"}, None),  # unknown model: no claim
    ],
)
def test_door_open(model: str, fields: dict[str, Any], expected: bool | None) -> None:
    assert apply(initial_state(), report(**fields), model).state["door_open"] is expected


def test_an_unreadable_door_field_keeps_what_we_knew() -> None:
    opened = apply(initial_state(), report(stat="46A58008"), "H2D").state
    assert apply(opened, report(stat="junk"), "H2D").state["door_open"] is True


@pytest.mark.parametrize(
    ("snow", "tray"),
    [
        (0x0002, {"ams": 0, "tray": 2}),
        (0x0103, {"ams": 1, "tray": 3}),
        (0x1001, {"ams": 16, "tray": 1}),  # the A2L's AMS lite
        (0x8000, {"ams": 128, "tray": 0}),  # an AMS HT
        (0xFF00, {"external": True, "id": 255}),
        (0xFE00, {"external": True, "id": 254}),
        (0xFFFF, None),
        (0xFEFF, None),
    ],
)
def test_an_extruders_snow_names_its_loaded_tray(snow: int, tray: dict[str, Any] | None) -> None:
    message = report(device={"extruder": {"state": 0x01, "info": [{"id": 0, "snow": snow}]}}, ams={"tray_now": "3"})
    state = apply(initial_state(), message, "H2S").state
    assert state["nozzles"]["0"]["tray"] == tray
    assert state["active_tray"] == tray


@pytest.mark.parametrize("snow", [0x0007, 0x10000, -1, "x", None, True])
def test_an_unreadable_snow_keeps_the_loaded_tray(snow: Any) -> None:
    loaded = report(device={"extruder": {"state": 0x01, "info": [{"id": 0, "snow": 0x0103}]}})
    state = apply(initial_state(), loaded, "H2S").state
    junk = report(device={"extruder": {"info": [{"id": 0, "snow": snow}]}})
    assert apply(state, junk, "H2S").state["active_tray"] == {"ams": 1, "tray": 3}
