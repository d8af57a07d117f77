"""What a tray's RFID tag says, as the reducer keeps it: real reports (tests/captures/) and the simulator's.

The spool inventory knows a Bambu spool by ``tray_uuid`` (the same on both of the spool's tags; ``tag_uid`` differs
per tag), its net weight by ``tray_weight`` and its filament by ``tray_info_idx``. Spools without a tag report zeros:
those are null, never a spool called "000…0" or one of 0 g.
"""

from __future__ import annotations

from typing import Any

import pytest

from bambupi.printer.state import State, apply_message, initial_state
from bambupi.sim import printer as sim
from tests.capture_corpus import capture


def state_of(name: str) -> State:
    item = capture(name)
    state = initial_state()
    for message in item.messages:
        state = apply_message(state, message, model=item.model).state
    return state


def identity(slot: dict[str, Any]) -> tuple[Any, ...] | None:
    return None if slot.get("empty") else (slot["tray_uuid"], slot["tray_weight"], slot["tray_info_idx"])


def unit(state: State, unit_id: str) -> dict[str, Any]:
    return {slot: identity(tray) for slot, tray in state["ams"]["units"][unit_id]["trays"].items()}


@pytest.mark.parametrize(
    "name,unit_id,expected",
    [
        # Two Bambu spools (RFID) and two without a tag, whose presets are Bambu's generic PLA and PETG.
        ("p2s-ams", "0", {"0": ("C234B32CD1C14E0587B0CF6BF8753D0F", 1000, "GFA01"),
                          "1": ("15A8808C6AC140F2B84FBAE990AD9E43", 1000, "GFA01"),
                          "2": (None, None, "GFL99"), "3": (None, None, "GFG99")}),
        # A 250 g spool (PLA Silk sample) at 1 %.
        ("h2d-two-ams", "0", {"0": ("95558FE23FB14F3A9E4985B8B37839B1", 250, "GFS02"),
                              "1": ("5998E373899342BE9FC6BFA51103AB78", 1000, "GFA00"),
                              "2": ("809D8CAB76D94C2C9AAAACBEB5620F3D", 1000, "GFG02"),
                              "3": ("8CCF700805CD483086E38C8AC5BB6ED9", 1000, "GFA00")}),
        ("h2d-ams-ht", "128", {"0": ("EED2E539AAC54C6BAD2559AA9C822F09", 1000, "GFN08")}),
        # An AMS lite with a user's own presets and no tag.
        ("a1-ams-lite", "0", {"0": (None, None, "P8d19ba6"), "1": (None, None, "P3a4d8cf"),
                              "2": (None, None, "P8d19ba6"), "3": (None, None, "P3a4d8cf")}),
        # An empty slot has no identity at all.
        ("h2s-ams", "0", {"0": (None, None, "P8874e68"), "1": None, "2": None, "3": None}),
    ],
)  # fmt: skip
def test_every_slot_of_a_real_report(name: str, unit_id: str, expected: dict[str, Any]) -> None:
    assert unit(state_of(name), unit_id) == expected


def test_external_holders_carry_no_tag_but_their_preset() -> None:
    state = state_of("h2d-ext-spool-active")
    assert {h: identity(s) for h, s in state["external_spools"].items()} == {
        "254": (None, None, "GFA01"), "255": (None, None, "GFU00"),
    }
    assert identity(state_of("p1p-no-ams")["external_spool"]) == (None, None, "GFSNL08")


def report(tray: dict[str, Any]) -> dict[str, Any]:
    return {"print": {"command": "push_status", "ams": {"ams": [{"id": "0", "tray": [{"id": "0", **tray}]}]}}}


def test_a_spool_swapped_for_one_without_a_tag_loses_the_old_tag() -> None:
    tagged = state_of("p2s-ams")
    assert identity(tagged["ams"]["units"]["0"]["trays"]["0"]) == ("C234B32CD1C14E0587B0CF6BF8753D0F", 1000, "GFA01")
    swapped = apply_message(tagged, report({
        "tray_type": "PLA", "tray_color": "FF0000FF", "tray_uuid": "0" * 32, "tray_weight": "0", "tray_info_idx": "",
    }), model="P2S").state  # fmt: skip
    assert identity(swapped["ams"]["units"]["0"]["trays"]["0"]) == (None, None, None)


@pytest.mark.parametrize(
    "field,value",
    [
        ("tray_uuid", "not-hex!"), ("tray_uuid", "F" * 33), ("tray_uuid", 12), ("tray_uuid", None),
        ("tray_weight", "-5"), ("tray_weight", "99999"), ("tray_weight", "heavy"), ("tray_weight", True),
        ("tray_info_idx", 7), ("tray_info_idx", None),
    ],
)
def test_an_unreadable_value_keeps_what_was_known(field: str, value: Any) -> None:
    before = state_of("p2s-ams")
    after = apply_message(before, report({field: value}), model="P2S").state
    assert after["ams"]["units"]["0"]["trays"]["0"] == before["ams"]["units"]["0"]["trays"]["0"]


def test_lower_case_tags_and_numeric_weights_read_as_the_printer_means_them() -> None:
    state = apply_message(initial_state(), report({
        "tray_type": "PLA", "tray_uuid": "c234b32cd1c14e0587b0cf6bf8753d0f", "tray_weight": 500,
        "tray_info_idx": "GFA00\x00",
    }), model="P1S").state  # fmt: skip
    assert identity(state["ams"]["units"]["0"]["trays"]["0"]) == ("C234B32CD1C14E0587B0CF6BF8753D0F", 500, "GFA00 ")


def test_the_simulator_has_distinct_rfid_spools_and_untagged_ones() -> None:
    """The journey's RFID spools come from here: at least two trays with a tag and weight, every tag its own
    (an AMS HT's slot 0 is not AMS A's slot 0), and trays without a tag reporting zeros as real ones do."""
    for model in ("P1S", "H2D", "A1"):
        rendered = sim.render_report(sim.initial_state(sim.profile_for(model), "SIM"))
        state = apply_message(initial_state(), {"print": {"command": "push_status", **rendered}}, model=model).state
        tags = [tray["tray_uuid"] for u in state["ams"]["units"].values() for tray in u["trays"].values()
                if not tray.get("empty") and tray["tray_uuid"] is not None]  # fmt: skip
        weights = {tray["tray_weight"] for u in state["ams"]["units"].values() for tray in u["trays"].values()
                   if not tray.get("empty") and tray["tray_uuid"] is not None}  # fmt: skip
        if model == "A1":
            assert tags == []  # the AMS lite's spools are not Bambu's RFID ones in the simulator
            continue
        assert len(tags) >= 2 and len(set(tags)) == len(tags), model
        assert weights == {1000}
