"""JSON merge patches (RFC 7386): the ``delta`` messages of ``/ws``, computed and applied as pure functions.

A merge patch cannot say "this key is null": ``null`` in a patch means "remove the key". The printer object
has keys that are legitimately null (``chamber_temp`` on a printer without a chamber, ``print_error`` when all is
well), so the rule on both ends is: **a key whose value is null and a missing key mean the same thing**. A key
that becomes null is sent as ``null`` and the client drops it; a reader (the page's ``p.state.chamber_temp ==
null``) cannot tell the difference, and :func:`without_nulls` is the canonical form two copies are compared in.
Lists are values like any other: a changed list is sent whole, nulls inside it untouched.

>>> diff({"a": 1, "b": {"c": 2, "d": 3}}, {"a": 1, "b": {"c": 2, "d": None}, "e": [1]})
{'b': {'d': None}, 'e': [1]}
>>> apply_merge_patch({"a": 1, "b": {"d": 3}}, {"b": {"d": None}, "e": [1]})
{'a': 1, 'b': {}, 'e': [1]}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

JsonObject = Mapping[str, Any]


def diff(old: JsonObject, new: JsonObject) -> dict[str, Any]:
    """The merge patch that turns ``old`` into ``new`` (up to null-equals-missing); ``{}`` when nothing changed."""
    patch: dict[str, Any] = {}
    for key, old_value in old.items():
        if old_value is not None and new.get(key) is None:
            patch[key] = None
    for key, new_value in new.items():
        if new_value is None:
            continue
        old_value = old.get(key)
        if new_value is old_value:
            continue  # the reducer keeps what a report did not touch (the AMS, the HMS list): nothing to walk
        if isinstance(new_value, Mapping) and isinstance(old_value, Mapping):
            nested = diff(old_value, new_value)
            if nested:
                patch[key] = nested
        elif isinstance(new_value, Mapping):
            patch[key] = without_nulls(new_value)  # a new object: its null members would be dropped anyway
        elif not same(old_value, new_value):
            patch[key] = new_value
    return patch


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 MergePatch(target, patch): a new value; neither argument is modified."""
    if not isinstance(patch, Mapping):
        return patch
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def without_nulls(value: Any) -> Any:
    """``value`` with every null member of every object removed (lists are kept as they are)."""
    if isinstance(value, Mapping):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    return value


def same(a: Any, b: Any) -> bool:
    """Equal as JSON: unlike ``==``, ``1``, ``1.0`` and ``true`` differ (they are sent differently)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, Mapping):
        return a.keys() == b.keys() and all(same(a[key], b[key]) for key in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
