"""Property tests: random and mutated reports never raise and never produce values outside the documented ranges."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bambupi.printer.events import EVENT_KINDS, events
from bambupi.printer.hms import SEVERITIES
from bambupi.printer.state import GCODE_STATES, State, apply_message, initial_state
from bambupi.printer_models import model_info

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_REPORTS = [json.loads((FIXTURES / f"report_{name}.json").read_text()) for name in ("p1s", "x1c", "h2d")]
MODELS = ["P1S", "P1P", "A1", "A1MINI", "A2L", "X1C", "X1E", "H2D", "H2S", "P2S", "X2D", "Unknown 7"]
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

REPORT_KEYS = [
    "gcode_state", "mc_percent", "mc_remaining_time", "layer_num", "total_layer_num", "nozzle_temper",
    "nozzle_target_temper", "bed_temper", "bed_target_temper", "chamber_temper", "chamber_target_temper",
    "stg_cur", "print_error", "spd_lvl", "wifi_signal", "subtask_name", "fun", "hms", "ams", "vt_tray",
    "vir_slot", "home_flag", "stat", "print_type", "lights_report", "device", "sequence_id", "msg",
]  # fmt: skip

numeric_text = st.one_of(
    st.integers(-300_000, 300_000).map(str),
    st.floats(-1e6, 1e6, allow_nan=False).map(str),
    st.sampled_from(["-52dBm", "0.0", "255", "254", "128", "-1", "nan", "inf", " 7 ", "1e999", "0x10", ""]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.integers(-2, 300),
    st.floats(allow_nan=True, allow_infinity=True),
    numeric_text,
    st.text(max_size=12),
    st.sampled_from(sorted(GCODE_STATES | {"running", "weird"})),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(["id", "temp", "attr", "code", "tray", "info", "state", "x"]), children),
    ),
    max_leaves=12,
)
hms_entries = st.lists(
    st.one_of(
        st.fixed_dictionaries({"attr": st.integers(-5, 2**33), "code": st.integers(-5, 2**33)}),
        st.fixed_dictionaries({"attr": st.sampled_from([0x0500_0500, 0x0300_1200]), "code": scalars}),
        json_values,
    ),
    max_size=5,
)
tray_keys = st.sampled_from(["id", "tray_type", "tray_color", "remain", "k", "state", "tag_uid"])
trays = st.lists(st.dictionaries(tray_keys, scalars), max_size=5)
units = st.lists(
    st.dictionaries(st.sampled_from(["id", "humidity", "humidity_raw", "temp", "tray"]), st.one_of(scalars, trays)),
    max_size=3,
)
exist_bits = st.one_of(scalars, st.integers(0, 2**28).map(lambda bits: f"{bits:x}"))
ams_values = st.one_of(
    json_values, st.fixed_dictionaries({"ams": units, "tray_now": scalars, "tray_exist_bits": exist_bits})
)
packed_values = st.one_of(scalars, st.integers(0, 2**32 + 5))
device_values = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "bed": st.fixed_dictionaries({"info": st.fixed_dictionaries({"temp": packed_values})}),
            "ctc": st.fixed_dictionaries({"info": st.fixed_dictionaries({"temp": packed_values})}),
            "extruder": st.fixed_dictionaries(
                {
                    "state": st.one_of(scalars, st.integers(0, 255)),
                    "info": st.lists(
                        st.fixed_dictionaries(
                            {"id": scalars, "temp": packed_values},
                            optional={"snow": st.one_of(scalars, st.integers(0, 0xFFFF))},
                        ),
                        max_size=3,
                    ),
                }
            ),
        }
    ),
)


def field_value(key: str) -> st.SearchStrategy[Any]:
    special = {"hms": hms_entries, "ams": ams_values, "device": device_values, "vir_slot": trays}
    return special.get(key, json_values)


random_fields = st.lists(st.sampled_from(REPORT_KEYS), unique=True, max_size=10).flatmap(
    lambda keys: st.fixed_dictionaries({key: field_value(key) for key in keys})
)
random_reports = random_fields.map(lambda fields: {"print": {"command": "push_status", **fields}})


@st.composite
def mutated_reports(draw: st.DrawFn) -> dict[str, Any]:
    """A realistic full report with a few values somewhere inside replaced or removed."""
    report = copy.deepcopy(draw(st.sampled_from(FIXTURE_REPORTS)))
    for _ in range(draw(st.integers(1, 6))):
        node: Any = report
        while True:
            children = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
            if not children:
                break
            key, child = draw(st.sampled_from(children))
            if isinstance(child, dict | list) and child and draw(st.booleans()):
                node = child
                continue
            if isinstance(node, dict) and draw(st.integers(0, 4)) == 0:
                del node[key]
            else:
                node[key] = draw(json_values)
            break
    return report


messages = st.one_of(
    random_reports,
    mutated_reports(),
    random_reports.map(lambda r: json.dumps(r, allow_nan=True).encode()),
    st.binary(max_size=200),
    json_values,
)

TEMP_KEYS = ("nozzle_temp", "nozzle_target", "bed_temp", "bed_target", "chamber_temp", "chamber_target")
HMS_CODE = re.compile(r"[0-9A-F]{4}_[0-9A-F]{4}_[0-9A-F]{4}_[0-9A-F]{4}")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def int_in(value: Any, low: int, high: int) -> bool:
    return value is None or (is_int(value) and low <= value <= high)


def temp_ok(value: Any) -> bool:
    return value is None or (isinstance(value, float) and -40.0 <= value <= 600.0)


def check_tray(tray: Any) -> None:
    if tray == {"empty": True}:
        return
    assert set(tray) == {"type", "color", "remain", "tray_uuid", "tray_weight", "tray_info_idx"}
    assert tray["type"] is None or isinstance(tray["type"], str)
    assert tray["color"] is None or re.fullmatch(r"#[0-9A-F]{6}", tray["color"])
    assert int_in(tray["remain"], 0, 100)
    assert tray["tray_uuid"] is None or re.fullmatch(r"[0-9A-F]{1,32}", tray["tray_uuid"].lstrip("0") or "-")
    weight = tray["tray_weight"]
    assert weight is None or (isinstance(weight, int | float) and not isinstance(weight, bool) and 0 < weight <= 10_000)
    assert tray["tray_info_idx"] is None or 0 < len(tray["tray_info_idx"]) <= 32


def tray_ref_ok(ref: Any) -> bool:
    """A loaded or active tray: an AMS slot, or an external holder by id."""
    if set(ref) == {"external", "id"}:
        return ref["external"] is True and ref["id"] in (254, 255)
    return set(ref) == {"ams", "tray"} and int_in(ref["ams"], 0, 255) and int_in(ref["tray"], 0, 3)


def check_state(state: State, model: str) -> None:
    assert set(state) == set(initial_state())
    json.dumps(state, allow_nan=False)
    assert state["gcode_state"] is None or state["gcode_state"] in GCODE_STATES | {"UNKNOWN"}
    assert int_in(state["percent"], 0, 100)
    assert int_in(state["remaining_min"], 0, 144_000)
    assert int_in(state["layer"], 0, 10**9) and int_in(state["total_layers"], 0, 10**9)
    for key in TEMP_KEYS:
        assert temp_ok(state[key]), (key, state[key])
    if not model_info(model).has_chamber_sensor:
        assert state["chamber_temp"] is None and state["chamber_target"] is None
    for nozzle_id, nozzle in state["nozzles"].items():
        assert nozzle_id.isdigit() and set(nozzle) in ({"temp", "target"}, {"temp", "target", "tray"})
        assert temp_ok(nozzle["temp"]) and temp_ok(nozzle["target"])
        assert nozzle.get("tray") is None or tray_ref_ok(nozzle["tray"])
    assert int_in(state["active_nozzle"], 0, 15)
    assert int_in(state["stage"], 0, 254)  # None when idle: never the idle codes -1 and 255
    assert state["door_open"] in (None, True, False)
    if model_info(model).door is None:
        assert state["door_open"] is None
    assert state["print_error"] is None or re.fullmatch(r"[0-9A-F]{4}_[0-9A-F]{4}", state["print_error"])
    assert int_in(state["speed_level"], 1, 4)
    assert int_in(state["wifi_dbm"], -150, 0)
    assert state["subtask_name"] is None or isinstance(state["subtask_name"], str)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in state["lights"].items())
    codes = [entry["code"] for entry in state["hms"]]
    assert len(codes) == len(set(codes))
    for entry in state["hms"]:
        assert set(entry) == {"code", "severity", "module", "description", "action", "url", "standing", "silent"}
        assert HMS_CODE.fullmatch(entry["code"]) and entry["code"] != "0500_0500_0001_0007"
        assert entry["severity"] in SEVERITIES
        assert isinstance(entry["standing"], bool)
        assert entry["url"].startswith("https://wiki.bambulab.com/")
    assert set(state["ams"]) == {"units"}
    for unit in state["ams"]["units"].values():
        assert set(unit) == {"humidity_index", "humidity_pct", "temp", "trays"}
        assert int_in(unit["humidity_index"], 1, 5) and int_in(unit["humidity_pct"], 0, 100)
        assert temp_ok(unit["temp"]) and unit["temp"] != 0.0
        for tray in unit["trays"].values():
            check_tray(tray)
    active = state["active_tray"]
    assert active is None or active == {"external": True} or tray_ref_ok(active)
    for holder_id, holder in state["external_spools"].items():
        assert holder_id in ("254", "255")
        check_tray(holder)
        assert holder.get("remain") is None  # nothing measures an external spool
    assert state["external_spool"] == (
        state["external_spools"].get("255", state["external_spools"].get("254")) if state["external_spools"] else None
    )


@SETTINGS
@given(model=st.sampled_from(MODELS), batch=st.lists(messages, min_size=1, max_size=5), baseline=st.booleans())
def test_any_sequence_of_messages_keeps_the_state_in_range(model: str, batch: list[Any], baseline: bool) -> None:
    state = initial_state()
    prev_printer = {"id": "p", "connection": "online", "last_report_at": None, "state": state}
    for message in batch:
        before = copy.deepcopy(state)
        applied = apply_message(state, message, model=model, baseline=baseline)
        assert state == before, "the input state was mutated"
        if applied.rejected is not None:
            assert applied.state is state
        assert applied.fun is None or applied.fun >= 0
        assert applied.commands_rejected in (None, True, False)
        check_state(applied.state, model)
        new_printer = {"id": "p", "connection": "online", "last_report_at": 1.0, "state": applied.state}
        assert {event["kind"] for event in events(prev_printer, new_printer)} <= set(EVENT_KINDS)
        state, prev_printer, baseline = applied.state, new_printer, False


@SETTINGS
@given(report=mutated_reports(), model=st.sampled_from(MODELS))
def test_a_mutated_report_never_disturbs_fields_it_does_not_touch(report: dict[str, Any], model: str) -> None:
    """Each field is read on its own: dropping the whole ``print`` body except one field changes only that field."""
    full = apply_message(initial_state(), report, model=model)
    if full.rejected is not None:
        return
    body = report.get("print")
    if not isinstance(body, dict) or body.get("command") != "push_status":
        return
    check_state(full.state, model)
    only_percent = {"print": {"command": "push_status", "mc_percent": body.get("mc_percent")}}
    partial = apply_message(full.state, only_percent, model=model).state
    assert {k: v for k, v in partial.items() if k != "percent"} == {
        k: v for k, v in full.state.items() if k != "percent"
    }
