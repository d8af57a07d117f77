"""Real reports (tests/captures/) through the real reducer: what each printer means, and what peers assert.

Each capture's sidecar names its source. Where ha-bambulab's own tests assert values for a file, the same values
are asserted here (its test_models.py); the rest is what the printer's report means, read from the capture and the
protocol notes. Assertions about a printer's trays are complete (every slot), so a slot read wrongly shows.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bambupi.panel.screens import Text, View, ams_items
from bambupi.printer.state import State, _tray_exist_bit, apply_message, initial_state
from bambupi.sim import printer as sim
from tests.capture_corpus import Capture, all_captures, capture

EMPTY = {"empty": True}


def spool(kind: str | None, color: str | None, remain: int | None) -> dict[str, Any]:
    return {"type": kind, "color": color, "remain": remain}


def replay(item: Capture, state: State | None = None) -> State:
    state = initial_state() if state is None else state
    for message in item.messages:
        applied = apply_message(state, message, model=item.model)
        assert applied.rejected is None, (item.name, applied.rejected)
        state = applied.state
    return state


def state_of(name: str) -> State:
    return replay(capture(name))


def filament(slot: dict[str, Any]) -> dict[str, Any]:
    """What these tests read of a slot or holder: empty, or its filament. What its RFID tag says (tray_uuid,
    tray_weight, tray_info_idx) is asserted slot by slot in test_filament_trays.py."""
    return slot if slot.get("empty") else {key: slot[key] for key in ("type", "color", "remain")}


def trays(state: State, unit: str) -> dict[str, Any]:
    return {slot: filament(tray) for slot, tray in state["ams"]["units"][unit]["trays"].items()}


def holders(state: State) -> dict[str, Any]:
    return {holder: filament(spool) for holder, spool in state["external_spools"].items()}


@pytest.mark.parametrize("item", all_captures(), ids=lambda item: item.name)
def test_no_capture_is_rejected(item: Capture) -> None:
    replay(item)  # every message accepted: real printers' data is what the reducer must take


# -- what ha-bambulab's tests assert on the same files ------------------------------------------------------


def test_x1c_four_ams_as_ha_bambulab_reads_it() -> None:
    # test_models.py TestAMSList.test_multi_ams_detection (2AMS1-1AMS2-1AMSHT.json)
    state = state_of("x1c-four-ams")
    units = state["ams"]["units"]
    assert set(units) == {"0", "1", "2", "128"}
    assert [(units[u]["humidity_pct"], units[u]["temp"]) for u in ("0", "1", "2", "128")] == [
        (8, 26.2), (4, 25.4), (9, 65.0), (8, 45.2)
    ]  # fmt: skip
    assert [len(units[u]["trays"]) for u in ("0", "1", "2", "128")] == [4, 4, 4, 1]
    assert trays(state, "0")["0"] == spool("PLA", "#000000", 93)
    assert trays(state, "128") == {"0": spool("PA-CF", "#000000", 100)}


def test_h2d_ams_and_ams_ht_as_ha_bambulab_reads_them() -> None:
    # test_models.py TestAMSList.test_h2d_ams_detection and TestH2D.test_h2d_nozzles (H2D.json)
    state = state_of("h2d-ams-ht")
    units = state["ams"]["units"]
    assert set(units) == {"0", "128"}
    assert (units["0"]["humidity_pct"], units["0"]["temp"]) == (24, 26.2)
    assert (units["128"]["humidity_pct"], units["128"]["temp"]) == (6, 27.9)
    assert len(units["0"]["trays"]) == 4 and len(units["128"]["trays"]) == 1
    assert trays(state, "0")["0"] == spool("PLA", "#FFFFFF", 47)
    temps = {nozzle: (n["temp"], n["target"]) for nozzle, n in state["nozzles"].items()}
    assert temps == {"0": (264.0, 225.0), "1": (40.0, 0.0)}
    assert state["active_nozzle"] == 0  # the right one


def test_p1p_job_as_ha_bambulab_reads_it() -> None:
    # test_models.py TestPrintJob.test_print_update_basic (P1P.json)
    state = state_of("p1p-ams")
    assert state["gcode_state"] == "FAILED"
    assert (state["percent"], state["remaining_min"], state["layer"], state["total_layers"]) == (0, 759, 1, 70)


# -- item 1: empty AMS slots ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,unit,expected",
    [
        # Current firmware: an empty slot is {"id", "state"} without filament fields; tray_exist_bits agrees.
        ("x1c-four-ams", "2", {"0": EMPTY, "1": spool("ABS", "#FF6A13", 100), "2": spool("ABS", "#789D4A", 62),
                               "3": spool("ABS", "#000000", 100)}),
        ("h2s-ams", "0", {"0": spool("ABS", "#FFFFFF", None), "1": EMPTY, "2": EMPTY, "3": EMPTY}),
        ("h2c-empty-ams", "0", {"0": EMPTY, "1": EMPTY, "2": EMPTY, "3": EMPTY}),
        ("h2dpro-ams-ht", "0", {"0": EMPTY, "1": EMPTY, "2": EMPTY, "3": EMPTY}),
        ("h2dpro-ams-ht", "128", {"0": spool("PLA", "#C12E1F", 87)}),
        ("h2d-ext-spool-active", "0", {"0": spool("PETG", "#FFFFFF", None), "1": EMPTY,
                                       "2": spool("PETG", "#2850E0", None), "3": spool("PETG", "#057748", None)}),
        ("h2d-ext-spool-active", "1", {"0": EMPTY, "1": spool("PLA", "#FF6A13", 93),
                                       "2": spool("PLA", "#7C4B00", None), "3": spool("PLA", "#D3B7A7", 98)}),
        ("h2d-ext-spool-active", "2", {"0": spool("PLA", "#898989", None), "1": spool("PLA", "#000000", 39),
                                       "2": EMPTY, "3": spool("PLA", "#A03CF7", None)}),
        ("h2d-ext-spool-active", "3", {"0": spool("PETG", "#000000", 32), "1": spool("PETG", "#898989", None),
                                       "2": EMPTY, "3": spool("ASA", "#000000", None)}),
        ("h2d-ext-spool-active", "129", {"0": spool("PETG", "#000000", None)}),
        # The AMS lite an A2L reports as unit 16; older firmware's empty slot is {"id"} alone.
        ("a2l-ams-lite", "16", {"0": EMPTY, "1": spool("PETG", "#0ACC38", None), "2": EMPTY, "3": EMPTY}),
        # Every slot loaded; state 27 (RFID read, settled, spool) is a loaded slot too.
        ("x2d-ams", "0", {"0": spool("PLA", "#161616", None), "1": spool("PETG", "#161616", None),
                          "2": spool("PLA", "#FFFFFF", None), "3": spool("ABS", "#161616", None)}),
        ("p2s-ams", "0", {"0": spool("PLA", "#FFFFFF", 41), "1": spool("PLA", "#000000", 39),
                          "2": spool("PLA", "#000000", None), "3": spool("PETG", "#FFFFFF", None)}),
        ("h2d-two-ams", "1", {"0": spool("PLA", "#000000", 55), "1": spool("PLA", "#000000", 100),
                              "2": spool("PETG-CF", "#000000", 100), "3": spool("PETG", "#ADB1B2", 51)}),
        ("a1-ams-lite", "0", {"0": spool("PLA", "#76D9F4", 100), "1": spool("PLA", "#FFF144", 100),
                              "2": spool("PLA", "#FF80FF", 100), "3": spool("PLA", "#0ACC38", 100)}),
    ],
)  # fmt: skip
def test_which_slots_hold_a_spool(name: str, unit: str, expected: dict[str, Any]) -> None:
    assert trays(state_of(name), unit) == expected


def test_tray_exist_bits_bit_order_matches_every_capture() -> None:
    """Bit 4*unit+slot for AMS 0-3, 16+n for AMS HT 128+n, 24+slot for the A2L's unit 16: checked slot by slot
    against every capture that sends both the mask and the slots' own shape."""
    checked = 0
    for item in all_captures():
        ams = item.messages[0]["print"].get("ams") or {}
        if "tray_exist_bits" not in ams:
            continue
        mask = int(ams["tray_exist_bits"], 16)
        for unit in ams.get("ams", []):
            for tray in unit["tray"]:
                bit = _tray_exist_bit(int(unit["id"]), int(tray["id"]))
                assert bit is not None, (item.name, unit["id"], tray["id"])
                loaded = "tray_type" in tray
                assert bool(mask >> bit & 1) == loaded, (item.name, unit["id"], tray["id"])
                checked += 1
    assert checked >= 50


def test_the_mask_empties_a_slot_that_still_reports_filament() -> None:
    """A delta that only changes the mask (the spool in AMS A slot 1 pulled out) empties that slot alone."""
    x1c = state_of("x1c-four-ams")
    pulled = apply_message(x1c, {"print": {"command": "push_status", "ams": {"tray_exist_bits": "10efe"}}}, model="X1C")
    assert trays(pulled.state, "0")["0"] == EMPTY
    assert pulled.state["ams"]["units"] == {
        **x1c["ams"]["units"],
        "0": {**x1c["ams"]["units"]["0"], "trays": {**x1c["ams"]["units"]["0"]["trays"], "0": EMPTY}},
    }
    back = apply_message(pulled.state, {"print": {"command": "push_status", "ams": {"tray_exist_bits": "10eff"}}},
                         model="X1C").state  # fmt: skip
    assert trays(back, "0")["0"] == spool(None, None, None)  # a spool, not yet read


def test_a_slot_state_alone_keeps_a_loaded_slot() -> None:
    """{"id", "state": 11} carries no filament fields but says a spool is there: what was known stays."""
    p2s = state_of("p2s-ams")
    message = {"print": {"command": "push_status", "ams": {"ams": [{"id": "0", "tray": [{"id": "0", "state": 11}]}]}}}
    assert trays(apply_message(p2s, message, model="P2S").state, "0")["0"] == spool("PLA", "#FFFFFF", 41)


# -- item 2 and 5: external spool holders ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,spools",
    [
        ("x1c-four-ams", {"255": EMPTY}),  # vt_tray and vir_slot both id 255, tray_type ""
        ("h2d-ams-ht", {"254": EMPTY, "255": EMPTY}),
        ("h2d-two-ams", {"254": EMPTY, "255": EMPTY}),
        ("h2c-empty-ams", {"254": EMPTY, "255": EMPTY}),
        ("h2s-ams", {"255": EMPTY}),
        ("p2s-ams", {"255": EMPTY}),
        ("x2d-ams", {"254": EMPTY, "255": EMPTY}),
        ("a2l-ams-lite", {"255": EMPTY}),
        # Both holders loaded on a dual-nozzle printer; vt_tray repeats the 255 one.
        ("h2d-ext-spool-active", {"254": spool("PLA", "#76D9F4", None), "255": spool("TPU", "#9B9EA0", None)}),
        # H2D Pro: no vt_tray at all, only vir_slot.
        ("h2dpro-ams-ht", {"254": EMPTY, "255": spool("TPU", "#FFFFFF", None)}),
        # vt_tray only, id 254; remain 0 is what every external holder reports: unknown.
        ("p1p-ams", {"254": spool("PLA", "#161616", None)}),
        ("p1p-no-ams", {"254": spool("PETG", "#BCBCBC", None)}),
        ("a1-ams-lite", {"254": spool("PLA", "#FFFFFF", None)}),
    ],
)
def test_external_spool_holders(name: str, spools: dict[str, Any]) -> None:
    state = state_of(name)
    assert holders(state) == spools
    assert state["external_spool"] == state["external_spools"].get("255", state["external_spools"].get("254"))


def test_an_empty_external_holder_fills_and_empties_again() -> None:
    x1c = state_of("x1c-four-ams")
    loaded = {"id": "255", "tray_type": "PETG", "tray_color": "2850E0FF", "remain": 0}
    filled = apply_message(x1c, {"print": {"command": "push_status", "vt_tray": loaded}}, model="X1C").state
    assert filament(filled["external_spool"]) == spool("PETG", "#2850E0", None)
    emptied = apply_message(filled, state_message("x1c-four-ams"), model="X1C").state
    assert emptied["external_spool"] == EMPTY and emptied["external_spools"] == {"255": EMPTY}


def state_message(name: str) -> dict[str, Any]:
    return copy.deepcopy(capture(name).messages[0])


# -- item 3: remaining filament that is unknown ------------------------------------------------------------


def test_a_tray_without_rfid_reporting_0_is_unknown_unless_the_printer_estimates() -> None:
    """P1P (home_flag without bit 0x80): a non-RFID tray's 0 is "not measured"; A1 (bit set): 0 is 0 %."""
    for name, expected in (("p1p-ams", None), ("a1-ams-lite", 0)):
        message = state_message(name)
        message["print"]["ams"]["ams"][0]["tray"][0]["remain"] = 0
        state = apply_message(initial_state(), message, model=capture(name).model).state
        assert trays(state, "0")["0"]["remain"] == expected, name
        # The rest of the unit is read as before.
        assert {k: v for k, v in trays(state, "0").items() if k != "0"} == {
            k: v for k, v in trays(state_of(name), "0").items() if k != "0"
        }


def test_an_rfid_tray_reporting_0_is_empty_of_filament() -> None:
    message = state_message("p1p-ams")
    tray = message["print"]["ams"]["ams"][0]["tray"][0]
    tray.update(remain=0, tag_uid="8A41A5A600000100", tray_uuid="C234B32CD1C14E0587B0CF6BF8753D0F")
    assert trays(apply_message(initial_state(), message, model="P1P").state, "0")["0"]["remain"] == 0


def test_a_delta_without_home_flag_reads_a_non_rfid_0_as_unknown() -> None:
    a1 = state_of("a1-ams-lite")
    delta = {"print": {"command": "push_status", "msg": 1,
                       "ams": {"ams": [{"id": "0", "tray": [{"id": "1", "remain": 0}]}]}}}  # fmt: skip
    assert trays(apply_message(a1, delta, model="A1").state, "0")["1"] == spool("PLA", "#FFF144", None)


# -- the simulator speaks the same shapes ------------------------------------------------------------------

# Each simulated model beside a real capture of the same model or family.
SIMULATED_AS = {
    "X1C": "x1c-four-ams", "X1E": "x1c-four-ams", "P1P": "p1p-ams", "P1S": "p1p-ams", "A1": "a1-ams-lite",
    "A1MINI": "a1-ams-lite", "A2L": "a2l-ams-lite", "H2D": "h2d-two-ams", "H2DPRO": "h2dpro-ams-ht",
    "H2S": "h2s-ams", "P2S": "p2s-ams", "X2D": "x2d-ams",  # the H2C capture has no spool in its AMS to compare
}  # fmt: skip


def _shapes(report: dict[str, Any]) -> dict[str, Any]:
    """What a reader depends on: slot shapes, which holders come where, remain of the holders."""
    ams = report.get("ams") or {}
    slots = [tray for unit in ams.get("ams", []) for tray in unit["tray"]]
    vt_tray = report.get("vt_tray")
    return {
        "slots carry state": sorted({"state" in tray for tray in slots if "tray_type" in tray}),
        "vt_tray": None if vt_tray is None else vt_tray["id"],
        "vir_slot": [slot["id"] for slot in report.get("vir_slot", [])],
        "holders never measure": all(h.get("remain") in (0, None) for h in [vt_tray, *report.get("vir_slot", [])] if h),
    }


@pytest.mark.parametrize("model", [m for m in SIMULATED_AS if m in sim.PROFILES])
def test_the_simulator_speaks_the_shapes_of_real_reports(model: str) -> None:
    real = capture(SIMULATED_AS[model]).messages[0]["print"]
    simulated = sim.render_report(sim.initial_state(sim.profile_for(model), "SIM"))
    assert _shapes(simulated) == _shapes(real)
    # Empty slots in the model's own shape, and the mask agreeing with every slot.
    mask = int(simulated["ams"]["tray_exist_bits"], 16)
    for unit in simulated["ams"]["ams"]:
        for tray in unit["tray"]:
            bit = _tray_exist_bit(int(unit["id"]), int(tray["id"]))
            assert bit is not None and bool(mask >> bit & 1) == ("tray_type" in tray), (unit["id"], tray)
            if "tray_type" not in tray:
                assert set(tray) == ({"id", "state"} if sim.profile_for(model).slot_states else {"id"})
    # Through the reducer: the external spool's remaining filament is unknown, as on a real printer.
    state = apply_message(initial_state(), {"print": {"command": "push_status", **simulated}}, model=model).state
    assert filament(state["external_spool"]) == spool("PETG", "#2850E0", None)


def test_the_oled_shows_empty_slots_and_unknown_remaining_from_real_reports() -> None:
    """The box's AMS screen: "--" for an empty slot, "?" for remaining filament nobody measured, never "0%"."""
    for name, expected in (
        ("h2s-ams", [("ABS", "?"), ("--", None), ("--", None), ("--", None)]),
        ("p2s-ams", [("PLA", "41%"), ("PLA", "39%"), ("PLA", "?"), ("PETG", "?")]),
    ):
        printer = {"id": "p", "name": "P", "connection": "online", "state": state_of(name)}
        texts = {(t.x, t.y): t.text for t in ams_items(View("ams", printer)) if isinstance(t, Text) and t.y >= 12}
        columns = sorted({x for x, _ in texts})
        assert [(texts[(x, 12)], texts.get((x, 20))) for x in columns] == expected, name
