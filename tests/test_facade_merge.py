"""The printer's own report merged from what arrived (bambupi.printer.raw_report), which the printer facade answers
``pushall`` with: P1 deltas merged must be the full report the printer would send; real captures replay to it."""

from __future__ import annotations

import copy
import json
from typing import Any

from bambupi.printer.raw_report import (
    MAX_DEPTH,
    MergedReport,
    accumulate,
    full_report,
    merge_report,
)
from bambupi.state_hub import StateHub
from tests.capture_corpus import all_captures, capture
from tests.support import printer_config, report


def test_objects_merge_key_by_key_and_other_values_replace() -> None:
    base = {"ams": {"tray_now": "1", "ams": [{"id": "0", "tray": [{"id": "0", "tray_type": "PLA"}]}]},
            "hms": [{"attr": 1, "code": 2}], "mc_percent": 10}
    delta = {"ams": {"tray_now": "255"}, "hms": [], "mc_percent": 11, "layer_num": 3}
    frozen = copy.deepcopy(base)
    merged = merge_report(base, delta)
    assert merged == {"ams": {"tray_now": "255", "ams": base["ams"]["ams"]}, "hms": [], "mc_percent": 11,
                      "layer_num": 3}
    assert base == frozen  # the input is not changed
    # A list (an AMS unit's trays, the HMS list) comes whole: an emptied slot loses its old filament.
    emptied = merge_report(base, {"ams": {"ams": [{"id": "0", "tray": [{"id": "0"}]}]}})
    assert emptied["ams"]["ams"] == [{"id": "0", "tray": [{"id": "0"}]}]
    # An object replaced by a value (or the reverse) is replaced.
    assert merge_report({"a": {"b": 1}}, {"a": 5}) == {"a": 5}
    assert merge_report({"a": 5}, {"a": {"b": 1}}) == {"a": {"b": 1}}


def test_named_elements_merge_as_the_boxs_reducer_merges_them() -> None:
    """AMS units and trays by id, lights by node, as bambupi.printer.state does: a delta naming one tray's remain
    keeps its filament; an emptied slot loses it; a unit or light the delta does not list stays."""
    pla = {"id": "0", "tray_type": "PLA", "tray_color": "FF0000FF", "remain": 80}
    petg = {"id": "1", "tray_type": "PETG", "tray_color": "00FF00FF", "remain": 50}
    base = {
        "ams": {"ams": [{"id": "0", "humidity": "4", "tray": [pla, petg]}, {"id": "1", "tray": [{"id": "0"}]}]},
        "lights_report": [{"node": "chamber_light", "mode": "on"}, {"node": "chamber_light2", "mode": "on"}],
        "hms": [{"attr": 1, "code": 2}],
    }
    delta = {
        "ams": {"ams": [{"id": "0", "tray": [{"id": "0", "remain": 79}, {"id": "1", "state": 0}]}]},
        "lights_report": [{"node": "chamber_light", "mode": "off"}],
        "hms": [],
    }
    merged = merge_report(base, delta)
    units = merged["ams"]["ams"]
    assert [u["id"] for u in units] == ["0", "1"] and units[1] == base["ams"]["ams"][1]
    assert units[0]["humidity"] == "4"
    assert units[0]["tray"] == [{**pla, "remain": 79}, {"id": "1", "state": 0}]
    assert merged["lights_report"] == [
        {"node": "chamber_light", "mode": "off"}, {"node": "chamber_light2", "mode": "on"}
    ]
    assert merged["hms"] == []
    # A new unit is added; a list whose elements do not all name themselves is replaced whole.
    more = merge_report(merged, {"ams": {"ams": [{"id": "128", "tray": [{"id": "0", "tray_type": "ABS"}]}]},
                                 "net": {"info": [{"ip": 1}]}})
    assert [u["id"] for u in more["ams"]["ams"]] == ["0", "1", "128"] and more["net"] == {"info": [{"ip": 1}]}


def test_the_envelope_is_the_full_reports_own() -> None:
    merged = accumulate({}, {"command": "push_status", "msg": 1, "sequence_id": "77", "mc_percent": 5})
    assert merged == {"mc_percent": 5}
    assert full_report(merged, "9") == {"print": {"mc_percent": 5, "command": "push_status", "msg": 0,
                                                  "sequence_id": "9"}}


def test_a_hostile_depth_is_replaced_not_recursed() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(MAX_DEPTH + 10):
        node["x"] = {}
        node = node["x"]
    merged = merge_report(deep, deep)
    assert merged == deep


def test_new_keys_without_end_start_the_merge_over_and_known_ones_never_do() -> None:
    merged = MergedReport(max_keys=100)
    full = {"command": "push_status", "msg": 0, "ams": {"tray_now": "1", "ams": [{"id": "0"}]},
            "device": {"bed": {"info": {"temp": 1}}}, "mc_percent": 1}
    assert merged.add(full)
    for step in range(1000):  # a printer's life: the same fields over and over, whole objects and lists again
        hms = [{"attr": 1, "code": n} for n in range(step % 7)]  # errors come and go
        assert merged.add({**full, "mc_percent": step % 100, "ams": {"tray_now": str(step % 4)}, "hms": hms})
    assert merged.value["mc_percent"] == 99 and merged.value["device"] == full["device"]
    grown = [merged.add({"command": "push_status", f"new_{n}": {"a": 1, "b": 2}}) for n in range(40)]
    assert grown.count(False) == 1 and grown[-1]  # started over once, past 100 keys
    assert len(merged.value) < 40


def test_real_captures_replay_to_their_full_report() -> None:
    """Every real capture, cut into deltas the way a P1 sends them (a few fields at a time, an object's keys
    apart), merges back to the full report it came from."""
    for item in all_captures():
        for message in item.messages:
            full = message.get("print")
            if not isinstance(full, dict) or full.get("command") != "push_status":
                continue
            merged: dict[str, Any] = {}
            keys = list(full)
            for start in range(0, len(keys), 3):
                part: dict[str, Any] = {}
                for key in keys[start:start + 3]:
                    value = full[key]
                    if isinstance(value, dict) and len(value) > 1:
                        # An object's keys in two deltas: the second must not lose the first's.
                        inner = list(value)
                        half = len(inner) // 2
                        merged = accumulate(merged, {key: {k: value[k] for k in inner[:half]}})
                        part[key] = {k: value[k] for k in inner[half:]}
                    else:
                        part[key] = value
                merged = accumulate(merged, part)
            expected = {k: v for k, v in full.items() if k not in ("command", "msg", "sequence_id")}
            assert merged == expected, item.name


def test_a_real_h2d_sequence_keeps_the_full_report_and_each_deltas_news() -> None:
    item = capture("h2d-door-extruder")
    merged: dict[str, Any] = {}
    for message in item.messages:
        merged = accumulate(merged, message["print"])
    first = item.messages[0]["print"]
    later = [m["print"] for m in item.messages[1:]]
    for key, value in first.items():
        if key in ("command", "msg", "sequence_id") or any(key in m for m in later):
            continue
        assert merged[key] == value
    for key in {k for m in later for k in m} - {"command", "msg", "sequence_id"}:
        last = [m[key] for m in later if key in m][-1]
        assert _carries(merged[key], last), key


def _carries(merged: Any, delta: Any) -> bool:
    """Every value ``delta`` names is in ``merged`` (objects key by key)."""
    if isinstance(delta, dict) and isinstance(merged, dict):
        return all(k in merged and _carries(merged[k], v) for k, v in delta.items())
    return bool(merged == delta)


async def test_the_hub_keeps_the_merged_report_and_taps_every_accepted_message() -> None:
    hub = StateHub([printer_config("p")])
    heard: list[tuple[str, bytes]] = []
    stop = hub.on_report(lambda pid, payload: heard.append((pid, payload)))
    hub.apply_message("p", report(msg=0, mc_percent=5, ams={"tray_now": "1", "ams": []}, gcode_state="RUNNING"))
    hub.apply_message("p", report(msg=1, ams={"tray_now": "255"}))
    hub.apply_message("p", b"{not json")  # rejected: not tapped, nothing merged
    version = {"info": {"command": "get_version", "sequence_id": "3", "module": [{"name": "ota", "sw_ver": "1"}]}}
    hub.apply_message("p", json.dumps(version).encode())
    assert hub.raw_report("p") == {"mc_percent": 5, "ams": {"tray_now": "255", "ams": []}, "gcode_state": "RUNNING"}
    assert hub.version_reply("p") == version["info"]
    assert [pid for pid, _ in heard] == ["p", "p", "p"]
    assert json.loads(heard[1][1]) == {"print": {"command": "push_status", "msg": 1, "ams": {"tray_now": "255"}}}
    stop()
    hub.apply_message("p", report(mc_percent=6))
    assert len(heard) == 3 and hub.raw_report("p")["mc_percent"] == 6
