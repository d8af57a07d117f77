"""The pure reducer: (state, one MQTT report) -> new state.

The printer's data is not always clean, so this module follows one policy to the letter (docs/api.md,
"How odd printer data is treated"):

- Merge field by field; a message updates only the fields it carries (P1/A1 send deltas, X1 full reports).
- A numeric string is a number, a boolean never is; a field that cannot be read, or is out of range, keeps its
  previous value while the rest of the message still applies.
- A whole message is rejected (state unchanged) when it is larger than :data:`MAX_PAYLOAD_BYTES`, not JSON,
  holds NaN/Infinity anywhere, nests absurdly deep, has a non-object root or a non-object ``print``.
- Only ``print`` objects with ``command == "push_status"`` change state; other commands are replies.
- Every string kept from a report is made safe here, once, for every reader (:func:`safe_text`): no lone surrogate,
  no control character, bounded length.
- Every list a report carries is bounded where it is kept (:data:`MAX_HMS_ENTRIES`, :data:`MAX_AMS_UNITS`,
  :data:`MAX_TRAYS_PER_UNIT`, :data:`MAX_LIGHTS`): a report of 20,000 HMS entries once meant 20,000 events, log
  lines and snapshots. What is left out is said in one line (:attr:`Applied.dropped`).

``state`` is plain JSON-ready data, keyed exactly as the ``state`` table in docs/api.md. The input state is
never mutated; sub-objects a message does not touch are shared between the old and the new state.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from bambupi.printer.hms import (
    COMMAND_VERIFICATION_FAILED,
    attr_and_code,
    decode_hms,
    describe_print_error,
    format_print_error,
    job_result,
)
from bambupi.printer.hms_texts import Catalog
from bambupi.printer_models import ModelInfo, model_info

State = dict[str, Any]
T = TypeVar("T")

MAX_PAYLOAD_BYTES: Final = 1024 * 1024
# Real reports nest five or six levels; anything far deeper is junk that would only cost time.
MAX_DEPTH: Final = 32
# Longer than any job name a slicer writes; bounds what one report can put on the page, in a message or in storage.
MAX_TEXT_CHARS: Final = 256
# Far above what a real printer reports (a handful of HMS codes, at most 4 AMS + 8 AMS HT units, 4 trays each).
MAX_HMS_ENTRIES: Final = 64
MAX_AMS_UNITS: Final = 16
MAX_TRAYS_PER_UNIT: Final = 16
MAX_LIGHTS: Final = 16
SIGNATURE_REQUIRED_BIT: Final = 0x2000_0000

GCODE_STATES: Final = frozenset({"IDLE", "PREPARE", "RUNNING", "PAUSE", "FINISH", "FAILED", "SLICING", "INIT"})
_IN_JOB: Final = frozenset({"PREPARE", "RUNNING", "PAUSE"})
TEMP_MIN: Final = -40.0
TEMP_MAX: Final = 600.0
REMAINING_MAX_MIN: Final = 144_000
U32_MAX: Final = 0xFFFF_FFFF
TRAY_NONE: Final = 255
TRAY_EXTERNAL: Final = 254
AMS_HT_FIRST: Final = 128
AMS_HT_LAST: Final = 135
AMS_LITE_A2L: Final = 16  # the A2L reports its AMS lite as unit 16
HOME_FLAG_ESTIMATES_REMAIN: Final = 0x80
TRAY_WEIGHT_MAX_G: Final = 10_000  # the largest spools sold hold 5 kg


class _Keep(enum.Enum):
    """A parser's answer for "unreadable or out of range": the previous value stays."""

    KEEP = 0


KEEP: Final = _Keep.KEEP


def initial_state() -> State:
    """Every documented key, nothing known yet."""
    return {
        "gcode_state": None,
        "percent": None,
        "remaining_min": None,
        "layer": None,
        "total_layers": None,
        "nozzle_temp": None,
        "nozzle_target": None,
        "bed_temp": None,
        "bed_target": None,
        "chamber_temp": None,
        "chamber_target": None,
        "nozzles": {},
        "active_nozzle": None,
        "stage": None,
        "print_error": None,
        "print_error_text": None,
        "print_error_action": None,
        "job_result": None,
        "hms": [],
        "ams": {"units": {}},
        "active_tray": None,
        "external_spool": None,
        "external_spools": {},
        "speed_level": None,
        "wifi_dbm": None,
        "subtask_name": None,
        "gcode_file": None,  # the job's file as the printer names it: where its 3MF is (bambupi/jobfile/fetch.py)
        "lights": {},
        "liveview": None,
        "door_open": None,
    }


@dataclass(frozen=True)
class Applied:
    """What one message did.

    ``state`` is the input object itself unless the message was a ``push_status`` report; a report always gives
    a new object (even when no value changed), so the owner can tell "a report arrived" by identity.
    """

    state: State
    rejected: str | None = None
    reply: dict[str, Any] | None = None
    fun: int | None = None
    commands_rejected: bool | None = None
    dropped: str | None = None  # what the report listed beyond the bounds and was left out, in one line
    root: dict[str, Any] | None = None  # the message as decoded (read-only): the hub keeps the printer's own copy


def signature_required(fun: int) -> bool:
    """True when the printer wants signed control commands (its controls are unavailable to us)."""
    return bool(fun & SIGNATURE_REQUIRED_BIT)


def apply_message(
    state: State,
    payload: bytes | bytearray | str | Mapping[str, Any],
    *,
    model: str,
    baseline: bool = False,
    catalogs: tuple[Catalog, ...] = (),
) -> Applied:
    """Apply one message from the printer's report topic.

    ``baseline`` is True for the first report after the service starts: HMS codes active in it are *standing*
    (shown, never sounded). Later, a code keeps the standing flag while it stays active; a new one is not standing.
    ``catalogs`` are the official texts to describe codes with before the shipped English table (hms.decode_hms).
    """
    root = _decode(payload)
    if isinstance(root, str):
        return Applied(state, rejected=root)
    if "print" in root and not isinstance(root["print"], dict):
        return Applied(state, rejected="'print' is not an object")
    reply = _reply(root)
    report = root.get("print")
    # Most firmware sends ``fun`` inside the report; some sends it at the top level, beside ``print``.
    top_fun = _fun(root.get("fun"))
    if not isinstance(report, dict) or report.get("command") != "push_status":
        return Applied(state, reply=reply, fun=top_fun, root=root)
    info = model_info(model)
    new = dict(state)
    dropped: list[str] = []
    _apply_scalars(new, report, info)
    _apply_stage(new, report)
    # Derived once here, so the page, the OLED and notifications share one wording (hms.job_result).
    error = new["print_error"]
    _describe_print_error(new, model, catalogs)
    new["job_result"] = job_result(
        new["gcode_state"], error, state.get("job_result"), job_just_ended=state.get("gcode_state") in _IN_JOB,
        error_text=new["print_error_text"],
    )
    _apply_device(new, report, info)
    _apply_ams(new, report, dropped)
    _apply_loaded_tray(new)
    _apply_lights(new, report, dropped)
    _apply_liveview(new, report)
    _apply_door(new, report, info)
    commands_rejected = _apply_hms(new, state, report, model, dropped, baseline=baseline, catalogs=catalogs)
    fun = _fun(report.get("fun"))
    return Applied(
        new, reply=reply, fun=top_fun if fun is None else fun, commands_rejected=commands_rejected,
        dropped="; ".join(dropped) if dropped else None, root=root,
    )


# -- whole-message checks ------------------------------------------------------------------------------------


def _decode(payload: bytes | bytearray | str | Mapping[str, Any]) -> dict[str, Any] | str:
    """The message's root object, or the reason it is rejected."""
    if isinstance(payload, Mapping):
        root: Any = payload
    elif isinstance(payload, str | bytes | bytearray):
        raw = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else bytes(payload)
        if len(raw) > MAX_PAYLOAD_BYTES:
            return f"larger than {MAX_PAYLOAD_BYTES} bytes"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            # A job name from an odd slicer is worth more than a clean decode: latin-1 never fails.
            text = raw.decode("latin-1")
        try:
            root = json.loads(text)
        except RecursionError:
            return "nested too deeply"
        except ValueError:
            return "not valid JSON"
    else:
        # Outside the signature, but a caller's bug must not become a crash in the one owner of state.
        root = payload
    if not isinstance(root, Mapping):
        return "the root is not an object"
    problem = _check_tree(root)
    if problem is not None:
        return problem
    return dict(root)


def _check_tree(root: Any) -> str | None:
    """Depth and NaN/Infinity, walked without recursion so junk cannot exhaust the stack."""
    pending: list[tuple[Any, int]] = [(root, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return "NaN or Infinity in the message"
        if isinstance(value, Mapping | list | tuple):
            if depth > MAX_DEPTH:
                return "nested too deeply"
            children = value.values() if isinstance(value, Mapping) else value
            pending.extend((child, depth + 1) for child in children)
    return None


def _reply(root: Mapping[str, Any]) -> dict[str, Any] | None:
    """A command reply (any top-level object echoing a ``sequence_id`` with a command other than push_status)."""
    for body in root.values():
        if not isinstance(body, dict):
            continue
        command = body.get("command")
        if not isinstance(command, str) or command == "push_status" or "sequence_id" not in body:
            continue
        result = body.get("result")
        reason = body.get("reason")
        return {
            "sequence_id": safe_text(str(body["sequence_id"]), max_chars=64),
            "command": safe_text(command, max_chars=64),
            "result": safe_text(result.lower(), max_chars=64) if isinstance(result, str) else "",
            "reason": safe_text(reason) if isinstance(reason, str) else None,
        }
    return None


def _fun(value: Any) -> int | None:
    if isinstance(value, str) and re.fullmatch(r"[0-9A-Fa-f]{1,16}", value):
        return int(value, 16)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


# -- one small parser per kind of field ----------------------------------------------------------------------


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str) and len(value) <= 32:
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _int(value: Any) -> int | None:
    number = _number(value)
    if isinstance(number, float):
        return int(number) if number.is_integer() else None
    return number


def _int_in(value: Any, low: int, high: int) -> int | _Keep:
    number = _int(value)
    return number if number is not None and low <= number <= high else KEEP


def _temp(value: Any) -> float | _Keep:
    number = _number(value)
    if number is None or not TEMP_MIN <= number <= TEMP_MAX:
        return KEEP
    # Printers report 1/32 degree steps flipping between int and float; one decimal is plenty and stable.
    return round(float(number), 1)


def _percent(value: Any) -> int | _Keep:
    return _int_in(value, 0, 100)


def _minutes(value: Any) -> int | _Keep:
    return _int_in(value, 0, REMAINING_MAX_MIN)


def _layer(value: Any) -> int | _Keep:
    return _int_in(value, 0, 1_000_000)


def _stage(value: Any) -> int | _Keep:
    # The printer's own idle codes (-1, 255, 0 on some) are turned into "no stage" by _apply_stage.
    return _int_in(value, -1, 255)


def _speed_level(value: Any) -> int | _Keep:
    return _int_in(value, 1, 4)


def _gcode_state(value: Any) -> str | _Keep:
    if not isinstance(value, str) or not value.strip():
        return KEEP
    upper = value.strip().upper()
    return upper if upper in GCODE_STATES else "UNKNOWN"


def _print_error(value: Any) -> str | _Keep | None:
    number = _int_in(value, 0, U32_MAX)
    return KEEP if number is KEEP else format_print_error(number)


def _wifi_dbm(value: Any) -> int | _Keep:
    if isinstance(value, str):
        value = value.strip().removesuffix("dBm").removesuffix("dbm")
    return _int_in(value, -150, 0)


def _text(value: Any) -> str | _Keep:
    return safe_text(value) if isinstance(value, str) else KEEP


# Lone UTF-16 surrogates: JSON may escape them ("\ud800"), but no UTF-8 encoder (SQLite, a log, a socket) takes them.
_SURROGATES: Final = re.compile("[\ud800-\udfff]")
# Characters that break a line or hide text: C0/C1 controls, DEL, line and paragraph separators.
_BREAKS: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Bidirectional overrides, embeddings and isolates: they reorder what a person reads on the page or in a message.
_BIDI: Final = re.compile("[\u202a-\u202e\u2066-\u2069]")


def safe_text(value: str, *, max_chars: int = MAX_TEXT_CHARS) -> str:
    """A string from a report made safe for everything downstream (storage, logs, page, notifications, OLED):
    lone surrogates become U+FFFD, control characters a space, bidi controls nothing; at most ``max_chars``.

    Every string field of a report goes through here, in the reducer, so no reader needs to defend itself.
    """
    text = _BIDI.sub("", _BREAKS.sub(" ", _SURROGATES.sub("\ufffd", value[: max_chars * 2])))
    return text[:max_chars]


def _set(target: dict[str, Any], key: str, value: T | _Keep) -> None:
    if value is not KEEP:
        target[key] = value


# Top-level report keys that map one-to-one onto a state key.
_SCALARS: Final[tuple[tuple[str, str, Callable[[Any], Any]], ...]] = (
    ("gcode_state", "gcode_state", _gcode_state),
    ("mc_percent", "percent", _percent),
    ("mc_remaining_time", "remaining_min", _minutes),
    ("layer_num", "layer", _layer),
    ("total_layer_num", "total_layers", _layer),
    ("nozzle_temper", "nozzle_temp", _temp),
    ("nozzle_target_temper", "nozzle_target", _temp),
    ("bed_temper", "bed_temp", _temp),
    ("bed_target_temper", "bed_target", _temp),
    ("chamber_temper", "chamber_temp", _temp),
    ("chamber_target_temper", "chamber_target", _temp),
    ("stg_cur", "stage", _stage),
    ("print_error", "print_error", _print_error),
    ("spd_lvl", "speed_level", _speed_level),
    ("wifi_signal", "wifi_dbm", _wifi_dbm),
    ("subtask_name", "subtask_name", _text),
    ("gcode_file", "gcode_file", _text),
)
_CHAMBER_KEYS: Final = frozenset({"chamber_temp", "chamber_target"})


def _apply_scalars(new: State, report: Mapping[str, Any], info: ModelInfo) -> None:
    for report_key, state_key, parse in _SCALARS:
        if report_key not in report:
            continue
        if state_key in _CHAMBER_KEYS and not info.has_chamber_sensor:
            # A1/P1 report a constant 5 °C from a sensor they do not have.
            continue
        _set(new, state_key, parse(report[report_key]))


# -- newer models: temperatures packed in device.* ----------------------------------------------------------


def _packed(value: Any) -> tuple[float | _Keep, float | _Keep]:
    """``(current, target)`` from ``(target << 16) | current``; a float or string is a plain current value."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= U32_MAX:
            return KEEP, KEEP
        return _temp(value & 0xFFFF), _temp(value >> 16)
    return _temp(value), KEEP


def _dict_at(value: Any, *path: str) -> dict[str, Any]:
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, dict) else {}


def _apply_device(new: State, report: Mapping[str, Any], info: ModelInfo) -> None:
    device = report.get("device")
    if not isinstance(device, dict):
        return
    bed = _dict_at(device, "bed", "info")
    if "temp" in bed:
        current, target = _packed(bed["temp"])
        _set(new, "bed_temp", current)
        _set(new, "bed_target", target)
    chamber = _dict_at(device, "ctc", "info")
    if "temp" in chamber and info.has_chamber_sensor:
        current, target = _packed(chamber["temp"])
        _set(new, "chamber_temp", current)
        _set(new, "chamber_target", target)
    extruder = _dict_at(device, "extruder")
    if extruder:
        _apply_extruders(new, extruder)


def _apply_extruders(new: State, extruder: Mapping[str, Any]) -> None:
    packed_state = _int_in(extruder.get("state"), 0, U32_MAX)
    if packed_state is not KEEP and packed_state & 0x0F:
        # Low 4 bits: how many extruders; bits 4-7: which one is printing.
        active = (packed_state >> 4) & 0x0F
        if active < packed_state & 0x0F:
            new["active_nozzle"] = active
    entries = extruder.get("info")
    if isinstance(entries, list):
        nozzles = dict(new["nozzles"])
        for entry in entries:
            if not isinstance(entry, dict) or not ("temp" in entry or "snow" in entry):
                continue
            nozzle_id = _int_in(entry.get("id"), 0, 15)
            if nozzle_id is KEEP:
                continue
            nozzle = dict(nozzles.get(str(nozzle_id), {"temp": None, "target": None}))
            if "temp" in entry:
                current, target = _packed(entry["temp"])
                _set(nozzle, "temp", current)
                _set(nozzle, "target", target)
            if "snow" in entry:
                _set(nozzle, "tray", _loaded_tray(entry["snow"]))
            nozzles[str(nozzle_id)] = nozzle
        new["nozzles"] = nozzles
    # On these models the top-level nozzle fields are stale or absent: show the active nozzle.
    active_nozzle = new["nozzles"].get(str(new["active_nozzle"] if new["active_nozzle"] is not None else 0))
    if active_nozzle is not None:
        new["nozzle_temp"] = active_nozzle["temp"]
        new["nozzle_target"] = active_nozzle["target"]


def _loaded_tray(value: Any) -> dict[str, Any] | _Keep | None:
    """The tray an extruder has loaded, from its ``snow``: the high byte is the AMS id (0-3, 16 for the A2L's AMS
    lite, 128+ an AMS HT) or the external holder's id (254, 255), the low byte the slot; a slot of 0xFF is none
    (0xFFFF: nothing loaded; 0xFEFF: the second extruder of a printer with one external holder)."""
    number = _int_in(value, 0, 0xFFFF)
    if number is KEEP:
        return KEEP
    unit, slot = number >> 8, number & 0xFF
    if slot == 0xFF:
        return None
    if unit in (TRAY_EXTERNAL, TRAY_NONE):
        return {"external": True, "id": unit}
    if slot > 3:
        return KEEP
    return {"ams": unit, "tray": slot}


def _apply_loaded_tray(new: State) -> None:
    """Dual-nozzle printers (H2D, H2D Pro, H2C, X2D) say per extruder which tray it has loaded; ``tray_now`` there
    names a slot without its AMS (an AMS HT reads as AMS A slot 1, AMS B slot 4 as AMS A slot 4, the external spool
    as a slot). Where the active extruder's tray is known it is the active tray, whatever ``tray_now`` said."""
    nozzle = new["nozzles"].get(str(new["active_nozzle"] if new["active_nozzle"] is not None else 0))
    if nozzle is not None and "tray" in nozzle:
        new["active_tray"] = nozzle["tray"]


# -- AMS --------------------------------------------------------------------------------------------------


def _humidity_index(value: Any) -> int | _Keep:
    return _int_in(value, 1, 5)


def _ams_temp(value: Any) -> float | _Keep | None:
    parsed = _temp(value)
    # AMS lite has no sensor and reports "0.0".
    if isinstance(parsed, float) and parsed == 0.0:
        return None
    return parsed


def _remain(value: Any) -> int | _Keep | None:
    number = _int(value)
    if number == -1:
        return None
    return number if number is not None and 0 <= number <= 100 else KEEP


def _has_rfid(tray: Mapping[str, Any]) -> bool:
    """A Bambu spool's RFID tag gives the tray a non-zero ``tag_uid``/``tray_uuid``; other spools report zeros."""
    return any(isinstance(tray.get(key), str) and tray[key].strip("0") != "" for key in ("tag_uid", "tray_uuid"))


def _estimates_remain(report: Mapping[str, Any]) -> bool:
    """Whether this report says the AMS estimates what is left on spools without RFID.

    That is the printer's "update remaining capacity" setting, bit 0x80 of ``home_flag`` (a signed 32-bit number
    on some firmware). A report without ``home_flag`` (a P1/A1 delta) does not say so: its 0 % then reads unknown.
    """
    flag = report.get("home_flag")
    return isinstance(flag, int) and not isinstance(flag, bool) and bool(flag & HOME_FLAG_ESTIMATES_REMAIN)


def _tray_type(value: Any) -> str | _Keep | None:
    if not isinstance(value, str):
        return KEEP
    return safe_text(value, max_chars=32) or None


def _color(value: Any) -> str | _Keep:
    """``RRGGBBAA`` (or ``RRGGBB``) as CSS ``#RRGGBB``; the alpha byte is dropped (a swatch needs no transparency)."""
    if not isinstance(value, str) or not re.fullmatch(r"[0-9A-Fa-f]{6}([0-9A-Fa-f]{2})?", value):
        return KEEP
    return "#" + value[:6].upper()


def _tray_uuid(value: Any) -> str | _Keep | None:
    """A Bambu spool's RFID identity (``tray_uuid``, 32 hex digits, the same on both of the spool's tags); spools
    without a tag report all zeros, which is none."""
    if not isinstance(value, str) or not re.fullmatch(r"[0-9A-Fa-f]{1,32}", value):
        return KEEP
    return value.upper() if value.strip("0") else None


def _tray_weight(value: Any) -> int | float | _Keep | None:
    """The spool's net filament weight in grams from its RFID tag (``"1000"``, ``"250"``); "0" without a tag."""
    number = _number(value)
    if number is None or not 0 <= number <= TRAY_WEIGHT_MAX_G:
        return KEEP
    return number or None


def _tray_info_idx(value: Any) -> str | _Keep | None:
    """The filament preset (``"GFA01"`` Bambu PLA Matte, ``"GFL99"`` generic PLA, ``"P8d19ba6"`` a user's own);
    "" when the slot names none."""
    if not isinstance(value, str):
        return KEEP
    return safe_text(value, max_chars=32) or None


# What the spool inventory (bambupi/filament/) knows a spool by: its RFID tag, net weight and filament preset.
_SPOOL_IDENTITY: Final[tuple[tuple[str, Callable[[Any], Any]], ...]] = (
    ("tray_uuid", _tray_uuid),
    ("tray_weight", _tray_weight),
    ("tray_info_idx", _tray_info_idx),
)

_EMPTY_TRAY: Final[dict[str, Any]] = {"empty": True}
_UNKNOWN_SPOOL: Final[dict[str, Any]] = {
    "type": None, "color": None, "remain": None, "tray_uuid": None, "tray_weight": None, "tray_info_idx": None,
}


def _state_holds_spool(value: Any) -> bool:
    """An AMS slot's ``state``: 0-3 on older firmware (3 = a spool sits there); newer firmware sets bit 0 for a
    spool (higher bits: settled, moving, RFID read). Real empty slots came as 0, 8 and 10."""
    number = _int(value)
    if number is None or number < 0:
        return False
    return number == 3 if number <= 3 else bool(number & 1)


def _merge_tray(
    previous: Mapping[str, Any] | None, tray: Mapping[str, Any], *, estimates_remain: bool
) -> dict[str, Any]:
    """One AMS slot. A slot with no filament fields is empty unless its ``state`` says a spool is there: older
    firmware sends an empty slot as ``{"id"}``, current firmware as ``{"id", "state"}``. Otherwise the fields it
    carries update the slot."""
    if set(tray) <= {"id", "state"}:
        if not _state_holds_spool(tray.get("state")):
            return dict(_EMPTY_TRAY)
        return dict(previous) if previous is not None and not previous.get("empty") else dict(_UNKNOWN_SPOOL)
    merged = _spool(previous, tray)
    if "remain" in tray:
        remain = _remain(tray["remain"])
        # Without RFID and without the printer's estimate, 0 is what the tray reports for "not measured".
        if remain == 0 and not estimates_remain and not _has_rfid(tray):
            remain = None
        _set(merged, "remain", remain)
    return merged


def _tray_exist_bit(unit_id: int, slot: int) -> int | None:
    """The bit of ``ams.tray_exist_bits`` for one slot, as the captures show it: four bits per AMS (ids 0-3) from
    bit 0, one per AMS HT (ids 128-135) from bit 16, four for the AMS lite an A2L reports as unit 16 from bit 24.
    None for a slot the mask does not cover."""
    if 0 <= unit_id <= 3 and 0 <= slot <= 3:
        return unit_id * 4 + slot
    if AMS_HT_FIRST <= unit_id <= AMS_HT_LAST and slot == 0:
        return 16 + unit_id - AMS_HT_FIRST
    if unit_id == AMS_LITE_A2L and 0 <= slot <= 3:
        return 24 + slot
    return None


def _apply_tray_exist_bits(units: Mapping[str, Any], value: Any) -> dict[str, Any] | None:
    """The units with every covered slot set from the mask (a clear bit empties a slot, a set bit fills an empty
    one with an unknown spool), or None when ``value`` is not a hex mask."""
    if not isinstance(value, str) or not re.fullmatch(r"[0-9A-Fa-f]{1,16}", value):
        return None
    mask = int(value, 16)
    result: dict[str, Any] = {}
    for unit_key, unit in units.items():
        trays = dict(unit["trays"])
        for tray_key, tray in unit["trays"].items():
            bit = _tray_exist_bit(int(unit_key), int(tray_key))
            if bit is None:
                continue
            if not mask >> bit & 1:
                trays[tray_key] = dict(_EMPTY_TRAY)
            elif tray.get("empty"):
                trays[tray_key] = dict(_UNKNOWN_SPOOL)
        result[unit_key] = {**unit, "trays": trays} if trays != unit["trays"] else unit
    return result


def _merge_holder(previous: Mapping[str, Any] | None, holder: Mapping[str, Any]) -> dict[str, Any]:
    """An external spool holder (``vt_tray`` or a ``vir_slot`` entry): empty when its ``tray_type`` is ""; its
    ``remain`` is always 0 (nothing measures an external spool), so remaining is unknown."""
    if set(holder) <= {"id"} or holder.get("tray_type") == "":
        return dict(_EMPTY_TRAY)
    return _spool(previous, holder)


def _spool(previous: Mapping[str, Any] | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    """A loaded slot or holder: what was known of its spool, updated by the type and colour ``fields`` carry."""
    merged = dict(_UNKNOWN_SPOOL)
    if previous is not None and not previous.get("empty"):
        merged.update(previous)
    if "tray_type" in fields:
        _set(merged, "type", _tray_type(fields["tray_type"]))
    if "tray_color" in fields:
        _set(merged, "color", _color(fields["tray_color"]))
    for key, parse in _SPOOL_IDENTITY:
        if key in fields:
            _set(merged, key, parse(fields[key]))
    return merged


def _merge_unit(
    previous: Mapping[str, Any] | None, unit: Mapping[str, Any], dropped: list[str], *, estimates_remain: bool
) -> dict[str, Any]:
    merged: dict[str, Any] = {"humidity_index": None, "humidity_pct": None, "temp": None, "trays": {}}
    if previous is not None:
        merged.update(previous)
    if "humidity" in unit:
        _set(merged, "humidity_index", _humidity_index(unit["humidity"]))
    if "humidity_raw" in unit:
        _set(merged, "humidity_pct", _percent(unit["humidity_raw"]))
    if "temp" in unit:
        _set(merged, "temp", _ams_temp(unit["temp"]))
    trays = unit.get("tray")
    if isinstance(trays, list):
        merged_trays = dict(merged["trays"])
        for tray in trays:
            if not isinstance(tray, dict):
                continue
            tray_id = _int_in(tray.get("id"), 0, 255)
            if tray_id is KEEP:
                continue
            if str(tray_id) not in merged_trays and len(merged_trays) >= MAX_TRAYS_PER_UNIT:
                dropped.append(f"trays beyond {MAX_TRAYS_PER_UNIT} in an AMS unit")
                break
            merged_trays[str(tray_id)] = _merge_tray(
                merged_trays.get(str(tray_id)), tray, estimates_remain=estimates_remain
            )
        merged["trays"] = merged_trays
    return merged


def _active_tray(value: Any) -> dict[str, Any] | _Keep | None:
    number = _int(value)
    if number == TRAY_NONE:
        return None
    if number == TRAY_EXTERNAL:
        return {"external": True}
    if number is not None and 0 <= number <= 15:
        return {"ams": number >> 2, "tray": number & 3}
    if number is not None and AMS_HT_FIRST <= number <= AMS_HT_LAST:
        # An AMS HT holds one spool; tray_now names the unit by its id.
        return {"ams": number, "tray": 0}
    return KEEP


def _apply_ams(new: State, report: Mapping[str, Any], dropped: list[str]) -> None:
    ams = report.get("ams")
    if isinstance(ams, dict):
        units_list = ams.get("ams")
        if isinstance(units_list, list):
            units = dict(new["ams"]["units"])
            for unit in units_list:
                if not isinstance(unit, dict):
                    continue
                unit_id = _int_in(unit.get("id"), 0, 255)
                if unit_id is KEEP:
                    continue
                if str(unit_id) not in units and len(units) >= MAX_AMS_UNITS:
                    dropped.append(f"AMS units beyond {MAX_AMS_UNITS}")
                    break
                units[str(unit_id)] = _merge_unit(
                    units.get(str(unit_id)), unit, dropped, estimates_remain=_estimates_remain(report)
                )
            new["ams"] = {**new["ams"], "units": units}
        # Which slots hold a spool: the printer's own answer, where it gives one, wins over the slots' shape.
        checked = _apply_tray_exist_bits(new["ams"]["units"], ams.get("tray_exist_bits"))
        if checked is not None:
            new["ams"] = {**new["ams"], "units": checked}
        if "tray_now" in ams:
            _set(new, "active_tray", _active_tray(ams["tray_now"]))
    _apply_external_spools(new, report)


def _apply_external_spools(new: State, report: Mapping[str, Any]) -> None:
    """External holders, keyed by id: newer firmware lists every holder in ``vir_slot`` (254 and 255; both on
    dual-nozzle printers, and H2D Pro sends nothing else) and repeats one as ``vt_tray``; older firmware sends only
    ``vt_tray`` (id 254 on P1/A1, 255 on X1). ``external_spool`` stays the first holder: 255 where there are two
    (the right, main extruder's), else the only one."""
    slots = report.get("vir_slot")
    holders = [slot for slot in slots if isinstance(slot, dict)] if isinstance(slots, list) else []
    if not holders and isinstance(report.get("vt_tray"), dict):
        holders = [report["vt_tray"]]
    if not holders:
        return
    spools = dict(new["external_spools"])
    for holder in holders:
        holder_id = _int_in(holder.get("id", TRAY_EXTERNAL), TRAY_EXTERNAL, TRAY_NONE)
        if holder_id is KEEP:
            continue
        spools[str(holder_id)] = _merge_holder(spools.get(str(holder_id)), holder)
    new["external_spools"] = spools
    new["external_spool"] = spools.get(str(TRAY_NONE), spools.get(str(TRAY_EXTERNAL)))


def _apply_lights(new: State, report: Mapping[str, Any], dropped: list[str]) -> None:
    lights_report = report.get("lights_report")
    if not isinstance(lights_report, list):
        return
    lights = dict(new["lights"])
    for light in lights_report:
        if isinstance(light, dict) and isinstance(light.get("node"), str) and isinstance(light.get("mode"), str):
            node = safe_text(light["node"], max_chars=32)
            if node not in lights and len(lights) >= MAX_LIGHTS:
                dropped.append(f"lights beyond {MAX_LIGHTS}")
                break
            lights[node] = safe_text(light["mode"], max_chars=32)
    new["lights"] = lights


def _apply_liveview(new: State, report: Mapping[str, Any]) -> None:
    # RTSPS models report ``ipcam.rtsp_url``: "disable" while "LAN Only Liveview" is off (port 322 then closes).
    # The URL itself is not kept: the camera relay builds its own, and a URL may carry credentials.
    ipcam = report.get("ipcam")
    url = ipcam.get("rtsp_url") if isinstance(ipcam, dict) else None
    if isinstance(url, str) and url:
        new["liveview"] = url.lower() != "disable"


# -- stage and door ---------------------------------------------------------------------------------------

STAGE_PRINTING: Final = 0
# stg_cur's "nothing happening": -1 on X1 and H2, 255 on P1.
_IDLE_STAGE_CODES: Final = frozenset({-1, 255})
_JOB_STATES: Final = frozenset({"PREPARE", "RUNNING", "PAUSE"})
DOOR_OPEN_BIT: Final = 0x0080_0000


def _apply_stage(new: State, report: Mapping[str, Any]) -> None:
    """``stage`` is what the printer is busy with (Bambu's stage table: 0 printing, 1 bed levelling...), None when
    idle. 0 is "printing", yet A1, A2L and P1P report 0 with ``print_type: "idle"`` while idle: outside a job (or
    when the report says idle) 0 means idle too, so no one reads an idle printer as busy printing."""
    stage = new["stage"]
    idle_printing = new["gcode_state"] not in _JOB_STATES or report.get("print_type") == "idle"
    if stage in _IDLE_STAGE_CODES or (stage == STAGE_PRINTING and idle_printing):
        new["stage"] = None


def _door_flags(value: Any, field: str) -> int | None:
    """``stat`` is a hex string (wider than 32 bits on the H2C); ``home_flag`` a 32-bit number, signed on newer
    firmware (Python's ``&`` reads a negative number as two's complement, which is what the printer meant)."""
    if field == "stat":
        if isinstance(value, str) and re.fullmatch(r"[0-9A-Fa-f]{1,16}", value):
            return int(value, 16)
        return None
    number = _int(value)
    return number if number is not None and -(2**31) <= number <= U32_MAX else None


def _apply_door(new: State, report: Mapping[str, Any], info: ModelInfo) -> None:
    """``door_open``: bit 0x00800000 of the field the model reports its door in; None on models without a sensor."""
    if info.door is None or info.door not in report:
        return
    flags = _door_flags(report[info.door], info.door)
    if flags is not None:
        new["door_open"] = bool(flags & DOOR_OPEN_BIT)


# -- HMS --------------------------------------------------------------------------------------------------


def _is_u32(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= U32_MAX


def reported_hms(report: Mapping[str, Any]) -> list[tuple[int, int]]:
    """The ``(attr, code)`` pairs of a report's ``print.hms`` list that the state would decode (the first
    :data:`MAX_HMS_ENTRIES` valid ones); [] when it has none. For readers of raw reports (the MQTT log)."""
    body = report.get("print")
    entries = body.get("hms") if isinstance(body, dict) else None
    if not isinstance(entries, list):
        return []
    pairs = [(e["attr"], e["code"]) for e in entries if isinstance(e, dict) and _is_u32(e.get("attr"))
             and _is_u32(e.get("code"))]
    return pairs[:MAX_HMS_ENTRIES]


def _apply_hms(
    new: State,
    old: State,
    report: Mapping[str, Any],
    model: str,
    dropped: list[str],
    *,
    baseline: bool,
    catalogs: tuple[Catalog, ...],
) -> bool | None:
    """Replace the active list when the report carries one; return whether it says commands are refused. The first
    :data:`MAX_HMS_ENTRIES` codes are kept (in the printer's order); the rest are counted, not decoded."""
    entries = report.get("hms")
    if not isinstance(entries, list):
        return None
    standing_before = {entry["code"]: entry["standing"] for entry in old["hms"]}
    active: dict[str, dict[str, Any]] = {}
    commands_rejected = False
    left_out = 0
    for entry in entries:
        if not isinstance(entry, dict) or not (_is_u32(entry.get("attr")) and _is_u32(entry.get("code"))):
            continue
        if len(active) >= MAX_HMS_ENTRIES:
            left_out += 1
            continue
        decoded = decode_hms(entry["attr"], entry["code"], model, catalogs)
        if decoded.code == COMMAND_VERIFICATION_FAILED:
            commands_rejected = True
            continue
        if decoded.code in active:
            continue
        standing = baseline or standing_before.get(decoded.code, False)
        active[decoded.code] = decoded.to_json(standing=standing)
    new["hms"] = list(active.values())
    if left_out:
        dropped.append(f"{left_out} HMS entries beyond the first {MAX_HMS_ENTRIES}")
    return commands_rejected


def _describe_print_error(new: State, model: str, catalogs: tuple[Catalog, ...]) -> None:
    error = new["print_error"]
    described = describe_print_error(error, model, catalogs) if error is not None else None
    new["print_error_text"] = described.text if described is not None else None
    new["print_error_action"] = described.action if described is not None else None


def redescribe(state: State, model: str, catalogs: tuple[Catalog, ...]) -> State:
    """``state`` with its HMS entries and print error in the words of ``catalogs`` (new official texts arrived).

    Only the words change: which codes are active, their severity and whether they are standing stay.
    """
    new = dict(state)
    new["hms"] = [
        {**entry, **_words(decode_hms(*attr_and_code(entry["code"]), model, catalogs).to_json(standing=False))}
        for entry in state["hms"]
    ]
    if new["print_error"] is not None:
        _describe_print_error(new, model, catalogs)
        result = new.get("job_result")
        if isinstance(result, dict) and result.get("outcome") == "failed":
            new["job_result"] = {**result, "text": f"Failed: {new['print_error_text']}"}
    return new


def _words(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {key: entry[key] for key in ("description", "action", "silent")}
