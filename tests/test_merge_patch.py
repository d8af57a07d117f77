"""The /ws delta format: RFC 7386 merge patches, computed by diff() and applied by apply_merge_patch()."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bambupi.web.merge_patch import apply_merge_patch, diff, same, without_nulls
from bambupi.web.ws import state_messages

scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(-5, 5, allow_nan=False) | st.sampled_from("abc")
keys = st.sampled_from(["a", "b", "c", "d"])
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(keys, json_values, max_size=4)


def as_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


@given(json_objects, json_objects)
def test_applying_the_diff_gives_the_new_object(old: dict[str, Any], new: dict[str, Any]) -> None:
    patch = diff(old, new)
    # Null and missing mean the same (a merge patch cannot carry "is null"): compare in that canonical form,
    # and exactly (1, 1.0 and true differ) via the JSON text.
    assert as_json(without_nulls(apply_merge_patch(old, patch))) == as_json(without_nulls(new))
    # A client that holds the canonical form gets exactly the canonical form back.
    assert as_json(apply_merge_patch(without_nulls(old), diff(without_nulls(old), new))) == as_json(without_nulls(new))
    # The patch survives the wire.
    assert json.loads(json.dumps(patch)) == patch


@given(json_objects, json_objects, json_objects)
def test_a_client_that_skipped_a_state_still_ends_right(
    a: dict[str, Any], b: dict[str, Any], c: dict[str, Any]
) -> None:
    held = apply_merge_patch(a, diff(a, b))
    held = apply_merge_patch(held, diff(b, c))
    assert as_json(without_nulls(held)) == as_json(without_nulls(c))


@given(json_objects)
def test_no_change_no_patch(value: dict[str, Any]) -> None:
    assert diff(value, value) == {}
    assert diff(value, without_nulls(value)) == {}  # null and missing are the same


@given(json_values, json_values)
def test_same_is_json_equality(a: Any, b: Any) -> None:
    assert same(a, b) == (as_json(a) == as_json(b))


def test_rfc_7386_examples() -> None:
    # From RFC 7386 section 3 / appendix A.
    assert apply_merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert apply_merge_patch({"a": "b"}, {"b": "c"}) == {"a": "b", "b": "c"}
    assert apply_merge_patch({"a": "b"}, {"a": None}) == {}
    assert apply_merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert apply_merge_patch(["a", "b"], ["c", "d"]) == ["c", "d"]
    assert apply_merge_patch({"a": "foo"}, None) is None
    assert apply_merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}
    assert apply_merge_patch([1, 2], {"a": "b", "c": None}) == {"a": "b"}
    assert apply_merge_patch({}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}


def test_printer_fields_that_become_null_and_lists_replaced_whole() -> None:
    old = {"state": {"chamber_temp": 30.0, "print_error": None, "hms": [{"code": "x", "standing": True}]}}
    new = {"state": {"chamber_temp": None, "print_error": "0300_400C", "hms": []}}
    patch = diff(old, new)
    assert patch == {"state": {"chamber_temp": None, "print_error": "0300_400C", "hms": []}}
    held = apply_merge_patch(old, patch)
    assert held == {"state": {"print_error": "0300_400C", "hms": []}}
    assert held["state"].get("chamber_temp") is None  # the page reads missing as null
    assert diff({"v": 1}, {"v": 1.0}) == {"v": 1.0} and diff({"v": 1}, {"v": True}) == {"v": True}


def test_state_messages_snapshot_when_printers_come_or_go() -> None:
    a = {"id": "a", "state": {"percent": 1}}
    b = {"id": "b", "state": {"percent": 2}}
    assert state_messages({"a": a}, {"a": a}) == []
    assert state_messages({"a": a}, {"a": {**a, "state": {"percent": 5}}}) == [
        {"type": "delta", "printer": "a", "changes": {"state": {"percent": 5}}}
    ]
    assert state_messages({"a": a}, {"a": a, "b": b}) == [{"type": "snapshot", "printers": {"a": a, "b": b}}]
    assert state_messages({"a": a, "b": b}, {"b": b}) == [{"type": "snapshot", "printers": {"b": b}}]
