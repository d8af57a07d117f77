"""The printer's own ``print`` object as a full report would carry it now, merged from what arrived (pure).

P1/A1 printers send a full report (``msg: 0``) only when asked (``pushall``) and otherwise only the fields that
changed; X1 printers send full reports. Apps that talk to the box instead of the printer (the printer facade,
bambupi.facade) ask for a full report on connect: the box answers from this merge instead of asking the printer
again (P1 firmware lags when asked often).

The rules are the ones the box's own reducer (bambupi.printer.state) applies to the same messages, so an app that
asks the box for a full report sees what the box sees:

- an object is merged key by key (a delta's ``ams`` with only ``tray_now`` keeps the units listed before);
- a list of objects that name themselves (AMS units and trays and the external holders by ``id``, dual-nozzle
  extruders by ``id``, lights by ``node``) is merged element by element: an element keeps what the delta does not
  say, elements the delta does not list stay, new ones are added; an AMS slot said with nothing but its ``id`` (and
  ``state``) is an emptied slot and replaces the old one whole;
- anything else, other lists included, replaces what was there (a present ``hms`` list is the whole active list).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

# The keys of a message that are about the message, not the printer: a full report sets its own.
_ENVELOPE: Final = ("command", "msg", "sequence_id")
MAX_DEPTH: Final = 32  # deeper than any printer nests; a hostile payload's depth is not recursed into
# A full report holds a few hundred keys; a printer (or something posing as one) that keeps sending new keys must not
# grow the box's memory without end: past this many, the merge starts over from the report at hand.
MAX_KEYS: Final = 20_000


def merge_report(
    base: Mapping[str, Any], delta: Mapping[str, Any], *, depth: int = 0, added: list[int] | None = None
) -> dict[str, Any]:
    """``base`` with ``delta`` applied by the module's rules. Neither input is changed; subtrees the delta does not
    touch are shared with ``base`` (treat the result as read-only). ``added[0]`` grows by the keys the delta brought
    that ``base`` did not have (nested ones too, elements of lists counted as keys)."""
    merged = dict(base)
    for key, value in delta.items():
        old = merged.get(key, _ABSENT)
        if depth < MAX_DEPTH and isinstance(value, dict) and isinstance(old, dict):
            merged[key] = merge_report(old, value, depth=depth + 1, added=added)
            continue
        identity = _identity(old, value) if depth < MAX_DEPTH else None
        if identity is not None:
            merged[key] = _merge_elements(old, value, identity, emptied=key == "tray", depth=depth, added=added)
            continue
        if added is not None:  # what the tree grew (or shrank) by: a value replacing another counts the difference
            added[0] += 1 + _keys(value, depth) if old is _ABSENT else _keys(value, depth) - _keys(old, depth)
        merged[key] = value
    return merged


def _identity(old: Any, new: Any) -> str | None:
    """The key that names the elements of two lists of objects (``id`` or ``node``), if every element has it."""
    if not isinstance(old, list) or not isinstance(new, list) or not old or not new:
        return None
    for key in _IDENTITIES:
        if all(isinstance(e, dict) and isinstance(e.get(key), str | int) for e in (*old, *new)):
            return key
    return None


def _merge_elements(
    old: list[Any], new: list[Any], identity: str, *, emptied: bool, depth: int, added: list[int] | None
) -> list[Any]:
    by_name: dict[Any, dict[str, Any]] = {str(e[identity]): e for e in old}
    for element in new:
        name = str(element[identity])
        previous = by_name.get(name)
        if previous is None:
            if added is not None:
                added[0] += 1 + _keys(element, depth + 1)
            by_name[name] = element
        elif emptied and set(element) <= _EMPTY_SLOT_KEYS:
            if added is not None:
                added[0] += _keys(element, depth + 1) - _keys(previous, depth + 1)
            by_name[name] = element  # the slot was emptied: nothing of the old spool stays
        else:
            by_name[name] = merge_report(previous, element, depth=depth + 1, added=added)
    return list(by_name.values())


def _keys(value: Any, depth: int) -> int:
    if depth >= MAX_DEPTH:
        return 0
    if isinstance(value, dict):
        return len(value) + sum(_keys(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return len(value) + sum(_keys(v, depth + 1) for v in value)
    return 0


_IDENTITIES: Final = ("id", "node")
_EMPTY_SLOT_KEYS: Final = frozenset({"id", "state"})


_ABSENT: Final = object()


class MergedReport:
    """A printer's merged ``print`` object (:attr:`value`, shared: never modify it) and a bound on its size."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self.value: dict[str, Any] = {}
        self._keys = 0
        self._max_keys = max_keys

    def add(self, report: Mapping[str, Any]) -> bool:
        """Merge one ``push_status`` report; False when the merge had grown past its bound and started over."""
        added = [0]
        self.value = accumulate(self.value, report, added=added)
        self._keys += added[0]
        if self._keys <= self._max_keys:
            return True
        added = [0]
        self.value = accumulate({}, report, added=added)
        self._keys = added[0]
        return False


def accumulate(
    merged: Mapping[str, Any], report: Mapping[str, Any], *, added: list[int] | None = None
) -> dict[str, Any]:
    """The merged ``print`` object after one ``push_status`` report (its envelope keys left out)."""
    return merge_report(merged, {k: v for k, v in report.items() if k not in _ENVELOPE}, added=added)


def full_report(merged: Mapping[str, Any], sequence_id: str = "0") -> dict[str, Any]:
    """The message a printer sends for ``pushall``: the merged object as one full report (``msg: 0``)."""
    return {"print": {**merged, "command": "push_status", "msg": 0, "sequence_id": sequence_id}}
