"""The OLED's pictures: a pure function from what to show (a :class:`View`) to a 128×64 1-bit Pillow image.

Two steps, both pure: :func:`layout` turns a view into positioned items (texts fitted to their width, rectangles),
:func:`draw` paints them. Tests check the layout never leaves the frame and compare drawn images with golden PNGs.
Fonts are bitmap fonts shipped in the package (see fonts/README.md), so pictures are stable across Pillow versions.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, Final, Literal

from PIL import Image, ImageDraw, ImageFont

from bambupi.filament.inventory import LowSpool
from bambupi.printer.hms import describe_print_error, english_hms, job_result
from bambupi.printer.phase import IN_JOB, job_phase

WIDTH: Final = 128
HEIGHT: Final = 64
# Burn-in care moves the picture by up to this much; layouts fit in the frame minus this margin.
MAX_SHIFT: Final = (2, 1)
SHIFTS: Final[tuple[tuple[int, int], ...]] = ((0, 0), (1, 0), (2, 0), (2, 1), (1, 1), (0, 1))
_W = WIDTH - MAX_SHIFT[0]

ScreenName = Literal["status", "temps", "hms", "ams", "network", "auto_off", "filament"]
FontName = Literal["small", "body", "big"]

_FONT_DIR: Final = Path(__file__).resolve().parent / "fonts"
_FONT_FILES: Final[Mapping[FontName, str]] = {"small": "5x8.pil", "body": "6x10.pil", "big": "9x18B.pil"}
FONTS: Final[Mapping[FontName, ImageFont.ImageFont]] = {
    name: ImageFont.load(str(_FONT_DIR / file)) for name, file in _FONT_FILES.items()
}
# The fonts are fixed-width: (advance, line height) of each.
CELL: Final[Mapping[FontName, tuple[int, int]]] = {"small": (5, 8), "body": (6, 10), "big": (9, 18)}
ELLIPSIS: Final = ".."  # the fonts are Latin-1: no "…"

_SOURCE_PREFIX: Final = re.compile(r"^[^:]*\.toml(:\d+)?: ")  # "bambupi.toml:4: " before a problem


@dataclass(frozen=True)
class NetworkInfo:
    hostname: str = ""
    ip: str | None = None
    url: str | None = None
    wifi_ssid: str | None = None
    wifi_dbm: int | None = None
    setup_error: str | None = None  # the first boot rejected bambupi.toml: its first problem


@dataclass(frozen=True)
class View:
    screen: ScreenName
    printer: Mapping[str, Any] | None = None
    network: NetworkInfo = NetworkInfo()
    now: float = 0.0  # wall clock, epoch seconds
    tz: tzinfo | None = None  # None: the system's zone
    clock_synced: bool = True  # False: clock times show --:-- (a Pi has no real-time clock)
    shift: tuple[int, int] = (0, 0)
    page: tuple[int, int] = (1, 1)  # this printer of how many (several printers)
    off_at: float | None = None  # auto-off screen: when the plug switches off (wall clock)
    shown_s: float = 0.0  # how long this screen has been showing (monotonic): the HMS screen turns its pages on it
    low: tuple[LowSpool, ...] = ()  # filament screen: the printer's spools below the threshold, emptiest first


@dataclass(frozen=True)
class Text:
    x: int
    y: int
    text: str
    font: FontName = "body"
    fill: int = 1

    @property
    def box(self) -> tuple[int, int, int, int]:
        w, h = CELL[self.font]
        return self.x, self.y, self.x + w * len(self.text), self.y + h


@dataclass(frozen=True)
class Rect:
    x0: int
    y0: int
    x1: int  # inclusive, like Pillow
    y1: int
    fill: int | None = None
    outline: int | None = 1

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.x0, self.y0, self.x1 + 1, self.y1 + 1


Item = Text | Rect


# --- text helpers ---------------------------------------------------------------------------------------------------


def printable(text: object) -> str:
    """``text`` as the fonts can draw it: Latin-1, no control characters (others become ``?``)."""
    chars = []
    for ch in str(text):
        code = ord(ch)
        if code < 32 or 127 <= code < 160:
            chars.append(" " if ch in "\t\n\r" else "?")
        elif ch == "\u2026":
            chars.append("...")  # an ellipsis in shared wording ("Stopping…") reads as one, not as "?"
        elif code > 255:
            chars.append("?")
        else:
            chars.append(ch)
    return "".join(chars)


def drawable(text: str) -> bool:
    """Whether the fonts draw ``text`` as written (:func:`printable` keeps every character)."""
    return all(32 <= ord(ch) < 127 or 160 <= ord(ch) <= 255 or ch in "\u2026\t\n\r" for ch in text)


# The official texts come in the owner's language, and the fonts are Latin-1: Japanese, Chinese, Korean, Thai,
# Russian, Ukrainian or Greek would print as "????". Such a text is shown in the official English one instead, from
# the table shipped with bambupi (hms.english_hms), looked up here from the code and model the state holds: the state
# keeps one text per code, the page's, and the screen picks what it can draw.


def hms_words(entry: Mapping[str, Any], model: str) -> tuple[str, str | None]:
    """An HMS entry's description and action as the OLED shows them: the owner's language when the fonts have its
    letters, else both in the official English text."""
    description = str(entry.get("description") or "")
    action = entry.get("action") if isinstance(entry.get("action"), str) else None
    if drawable(description) and drawable(action or ""):
        return description, action
    try:
        english = english_hms(str(entry.get("code")), model)
    except ValueError:  # not a code the state would hold: its words as they came
        return description, action
    return english.description, english.action


def print_error_words(printer: Mapping[str, Any]) -> str | None:
    """What went wrong with the job (``print_error_text``) as the OLED shows it: in English when not drawable."""
    state = _state(printer)
    text, code = state.get("print_error_text"), state.get("print_error")
    if isinstance(text, str) and not drawable(text) and isinstance(code, str):
        return describe_print_error(code, str(printer.get("model") or "")).text
    return text if isinstance(text, str) else None


def fit(text: object, font: FontName, width: int) -> str:
    """``text`` cut to ``width`` pixels, ending in ".." when cut."""
    clean = printable(text)
    room = max(width // CELL[font][0], 0)
    if len(clean) <= room:
        return clean
    return clean[: max(room - len(ELLIPSIS), 0)] + ELLIPSIS[: room]


# A name longer than its line scrolls on that line only (the rest of the picture holds still): its start, ending in
# "..", for MARQUEE_HOLD_S; then one character every MARQUEE_STEP_S to its end; its end for MARQUEE_HOLD_S; again.
# Whole characters keep the text on the fonts' grid, and a line that moves is no burn-in risk. Cutting a name ("Demo
# P1S (simula..") hid what tells two printers apart, and no abbreviation rule suits every name an owner types.
MARQUEE_HOLD_S: Final = 2.0
MARQUEE_STEP_S: Final = 0.5


def marquee(text: object, font: FontName, width: int, shown_s: float) -> str:
    """``text`` as it shows ``shown_s`` seconds after its screen came up: whole when it fits, else scrolling."""
    clean = printable(text)
    room = max(width // CELL[font][0], 0)
    if len(clean) <= room or room <= len(ELLIPSIS):
        return fit(clean, font, width)
    steps = len(clean) - room
    at = max(shown_s, 0.0) % (2 * MARQUEE_HOLD_S + steps * MARQUEE_STEP_S)
    if at < MARQUEE_HOLD_S:
        return fit(clean, font, width)
    offset = min(steps, 1 + int((at - MARQUEE_HOLD_S) // MARQUEE_STEP_S))
    return clean[offset:offset + room]


def wrap(text: object, font: FontName, width: int, lines: int) -> list[str]:
    """Word-wrap into at most ``lines`` lines of ``width`` pixels; the last one ends in ".." if text is left."""
    room = max(width // CELL[font][0], 1)
    words = printable(text).split()
    out: list[str] = []
    current = ""
    for word in words:
        while len(word) > room:  # a word longer than a line (a URL, a code) is split
            if current:
                out.append(current)
                current = ""
            out.append(word[:room])
            word = word[room:]
        candidate = f"{current} {word}" if current else word
        if len(candidate) <= room:
            current = candidate
        else:
            out.append(current)
            current = word
    if current:
        out.append(current)
    if len(out) > lines:
        out = out[:lines]
        out[-1] = out[-1][: room - len(ELLIPSIS)] + ELLIPSIS
    return [fit(line, font, width) for line in out]


def right(y: int, text: str, font: FontName, x_end: int = _W) -> Text:
    return Text(x_end - CELL[font][0] * len(text), y, text, font)


def clock(epoch: float | None, view: View) -> str:
    """HH:MM in the view's zone, or --:-- until the system clock is synchronised."""
    if epoch is None or not view.clock_synced:
        return "--:--"
    try:
        return datetime.fromtimestamp(epoch, view.tz).strftime("%H:%M")
    except (OverflowError, OSError, ValueError):  # a remaining time far beyond any real print
        return "--:--"


def duration(minutes: object) -> str:
    if not isinstance(minutes, int | float) or minutes < 0:
        return ""
    total = int(minutes)
    hours, mins = divmod(total, 60)
    if hours >= 100:
        return f"{hours // 24}d{hours % 24}h"
    return f"{hours}h{mins:02d}m" if hours else f"{mins}m"


def _num(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return round(value)


# --- screens ---------------------------------------------------------------------------------------------------------

_STATE_WORDS: Final = {
    "IDLE": "Idle", "PREPARE": "Preparing", "RUNNING": "Printing", "PAUSE": "Paused", "FINISH": "Finished",
    "FAILED": "Failed", "SLICING": "Slicing", "INIT": "Starting", "UNKNOWN": "Unknown",
}
_SEVERITY_ORDER: Final = {"fatal": 0, "serious": 1, "common": 2, "unknown": 3, "info": 4}


def _state(printer: Mapping[str, Any] | None) -> Mapping[str, Any]:
    state = printer.get("state") if printer else None
    return state if isinstance(state, Mapping) else {}


def state_word(printer: Mapping[str, Any]) -> str:
    connection = printer.get("connection")
    if connection != "online":
        return {"connecting": "Connecting", "stale": "No data", "offline": "Offline"}.get(str(connection), "Offline")
    result = _job_result(printer)
    if result.get("outcome") in ("cancelled", "pending"):
        # The owner's stop is not a failure, nor is an end not known yet ("Stopping…"; hms.job_result).
        return str(result.get("text"))
    return _STATE_WORDS.get(str(_state(printer).get("gcode_state")), "Waiting")


def _job_result(printer: Mapping[str, Any]) -> Mapping[str, Any]:
    result = _state(printer).get("job_result")
    return result if isinstance(result, Mapping) else {}


def state_line(printer: Mapping[str, Any]) -> str:
    """The state in words, with what went wrong when a job failed ("Failed: Nozzle clogged", as on the page)."""
    result = _job_result(printer)
    text = result.get("text")
    if isinstance(text, str) and not drawable(text) and result.get("outcome") == "failed":
        english = job_result("FAILED", _state(printer).get("print_error"), error_text=print_error_words(printer))
        text = english["text"] if english is not None else text
    if printer.get("connection") == "online" and isinstance(text, str) and text:
        return text
    return state_word(printer)


def _title(printer: Mapping[str, Any], view: View, suffix: str = "") -> list[Item]:
    page = f" {view.page[0]}/{view.page[1]}" if view.page[1] > 1 else ""
    tail = suffix + page
    name = marquee(printer.get("name") or printer.get("id") or "printer", "body", _W - CELL["body"][0] * len(tail),
                   view.shown_s)
    items: list[Item] = [Text(0, 0, name)]
    if tail:
        items.append(right(0, tail, "body"))
    return items


DOOR_TAG: Final = "DOOR"


def _door_tag(view: View) -> list[Item]:
    """"DOOR" in inverse video at the title's right end (left of the page number) while the door is open; the
    title leaves it room. Only while reports arrive: an old report's door may long be shut."""
    printer = view.printer or {}
    if printer.get("connection") != "online" or _state(printer).get("door_open") is not True:
        return []
    page = len(f" {view.page[0]}/{view.page[1]}") if view.page[1] > 1 else 0
    w, h = CELL["body"]
    x_end = _W - w * page
    x0 = x_end - w * len(DOOR_TAG)
    return [Rect(x0 - 1, 0, x_end - 1, h - 1, fill=1, outline=None), Text(x0, 0, DOOR_TAG, "body", 0)]


def status_items(view: View) -> list[Item]:
    printer = view.printer or {}
    state = _state(printer)
    door = _door_tag(view)
    # The title's suffix keeps the name clear of the tag; the tag itself is drawn over it.
    items = _title(printer, view, " " * (len(DOOR_TAG) + 1) if door else "") + door
    word = state_word(printer)
    layer, total = _num(state.get("layer")), _num(state.get("total_layers"))
    layers = f"L{layer}/{total}" if layer is not None and total else ""
    # A failed job: the big word says "Failed", this line what went wrong (the page's "Failed: <text>" in two rows).
    error = print_error_words(printer) if _job_result(printer).get("outcome") == "failed" else None
    line = str(error) if error and printer.get("connection") == "online" else word
    items.append(Text(0, 11, fit(line, "body", _W - 6 * len(layers) - 6)))
    if layers:
        items.append(right(11, fit(layers, "body", 11 * 6), "body"))
    percent = _num(state.get("percent"))
    printing = job_phase(state) in IN_JOB and printer.get("connection") == "online"
    if percent is not None and (printing or job_phase(state) == "finished"):
        percent = min(max(percent, 0), 100)
        items.append(Text(0, 23, f"{percent}%", "big"))
        remaining = _num(state.get("remaining_min"))
        if printing and remaining is not None and remaining >= 0:
            items.append(right(23, fit("-" + duration(remaining), "body", 12 * 6), "body"))
            items.append(right(33, "@" + clock(view.now + remaining * 60, view), "body"))
        items.append(Rect(0, 43, _W - 1, 49))
        filled = round((_W - 5) * percent / 100)
        if filled > 0:
            items.append(Rect(2, 45, 2 + filled - 1, 47, fill=1, outline=None))
    else:
        items.append(Text(0, 27, fit(word, "big", _W), "big"))
    job = state.get("subtask_name")
    bottom = str(job) if job else (printer.get("connection_reason") or "")
    if bottom:
        items.append(Text(0, 53, fit(bottom, "small", _W - 6 * 5), "small"))
    items.append(right(53, clock(view.now, view), "small"))
    return items


def _temp(value: object) -> str:
    number = _num(value)
    return "--" if number is None else str(number)


def temp_rows(state: Mapping[str, Any]) -> list[tuple[str, object, object]]:
    rows: list[tuple[str, object, object]] = []
    nozzles = state.get("nozzles")
    if isinstance(nozzles, Mapping) and len(nozzles) > 1:
        active = state.get("active_nozzle")
        for nozzle_id, nozzle in list(nozzles.items())[:2]:
            nozzle = nozzle if isinstance(nozzle, Mapping) else {}
            label = {"0": "Right", "1": "Left"}.get(str(nozzle_id), f"N{nozzle_id}")
            marker = "*" if str(active) == str(nozzle_id) else ""
            rows.append((f"{label}{marker}", nozzle.get("temp"), nozzle.get("target")))
    else:
        rows.append(("Nozzle", state.get("nozzle_temp"), state.get("nozzle_target")))
    rows.append(("Bed", state.get("bed_temp"), state.get("bed_target")))
    if state.get("chamber_temp") is not None:
        rows.append(("Chamber", state.get("chamber_temp"), state.get("chamber_target")))
    return rows


def temps_items(view: View) -> list[Item]:
    printer = view.printer or {}
    items = _title(printer, view, " °C")
    for row, (label, temp, target) in enumerate(temp_rows(_state(printer))[:4]):
        y = 13 + row * 12
        items.append(Text(0, y, fit(label, "body", 8 * 6)))
        target_text = _temp(target)
        value = f"{_temp(temp)}/{target_text}" if _num(target) else _temp(temp)
        items.append(right(y, fit(value, "body", 10 * 6), "body"))
    return items


def hms_silent(entry: Mapping[str, Any]) -> bool:
    """A code with nothing to do (a placeholder with no official text, or one a model reports all the time): listed
    on the HMS screen, never shown as an alarm."""
    return entry.get("silent") is True


def hms_sorted(printer: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The printer's HMS entries, most urgent first and silent ones last."""
    entries = _state(printer).get("hms")
    if not isinstance(entries, list):
        return []
    valid = [e for e in entries if isinstance(e, Mapping)]
    return sorted(valid, key=lambda e: (hms_silent(e), _SEVERITY_ORDER.get(str(e.get("severity")), 9)))


# The HMS screen says what happened, then what to do: two pages of this long each while it shows (an 8 s rotation
# slot shows both; an alarm holding the screen keeps turning them).
HMS_PAGE_S: Final = 4.0
_SILENT_HEAD: Final = "NO ACTION NEEDED"


def hms_items(view: View) -> list[Item]:
    printer = view.printer or {}
    entries = hms_sorted(printer)
    if not entries:
        return [*_title(printer, view), Text(0, 27, "No errors", "big")]
    entry = entries[0]
    silent = hms_silent(entry)
    severity = str(entry.get("severity") or "unknown")
    fatal = severity == "fatal" and not silent
    fg = 0 if fatal else 1
    items: list[Item] = [Rect(0, 0, _W - 1, HEIGHT - MAX_SHIFT[1] - 1, fill=1, outline=None)] if fatal else []
    count = f"1/{len(entries)}" if len(entries) > 1 else ""
    word = _SILENT_HEAD if silent else severity.upper() + (" (standing)" if entry.get("standing") else "")
    head = fit(word, "body", _W - 6 * len(count) - 6)
    items.append(Text(1, 0, head, "body", fg))
    if count:
        items.append(Text(_W - 1 - 6 * len(count), 0, count, "body", fg))
    description, action = hms_words(entry, str(printer.get("model") or ""))
    if action is not None and action.strip() and int(max(view.shown_s, 0.0) // HMS_PAGE_S) % 2 == 1:
        for row, line in enumerate(wrap(f"What to do: {action}", "small", _W - 2, 6)):
            items.append(Text(1, 11 + row * 8, line, "small", fg))
        return items
    name = fit(printer.get("name") or printer.get("id") or "", "small", _W - 2)
    items.append(Text(1, 11, name, "small", fg))
    items.append(Text(1, 20, fit(entry.get("code") or "", "small", _W - 2), "small", fg))
    description = description or ("No description published" if silent else "")
    for row, line in enumerate(wrap(description, "small", _W - 2, 4)):
        items.append(Text(1, 30 + row * 8, line, "small", fg))
    return items


def ams_units(printer: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    ams = _state(printer).get("ams")
    units = ams.get("units") if isinstance(ams, Mapping) else None
    if not isinstance(units, Mapping):
        return []
    return [(str(uid), unit) for uid, unit in units.items() if isinstance(unit, Mapping)]


def _tray_text(tray: object) -> tuple[str, str]:
    if not isinstance(tray, Mapping) or tray.get("empty"):
        return "--", ""
    remain = _num(tray.get("remain"))
    # Unknown remaining (no RFID and no estimate) reads "?", as on the page: never 0 %, never blank.
    return str(tray.get("type") or "?"), "?" if remain is None or remain < 0 else f"{min(remain, 100)}%"


def ams_items(view: View) -> list[Item]:
    printer = view.printer or {}
    units = ams_units(printer)
    items = _title(printer, view, " AMS")
    if not units:
        items.append(Text(0, 27, "No AMS", "big"))
        return items
    shown = units[:3]
    column = (_W + 1) // 4
    for row, (_, unit) in enumerate(shown):
        trays = unit.get("trays")
        trays = trays if isinstance(trays, Mapping) else {}
        y = 12 + row * 17
        for col, tray_id in enumerate(sorted(trays, key=str)[:4]):
            kind, remain = _tray_text(trays[tray_id])
            items.append(Text(col * column, y, fit(kind, "small", column - 2), "small"))
            if remain:
                items.append(Text(col * column, y + 8, fit(remain, "small", column - 2), "small"))
    if len(units) > len(shown):
        items.append(right(54, f"+{len(units) - len(shown)}", "small"))
    return items


def network_items(view: View) -> list[Item]:
    net = view.network
    items: list[Item] = [Text(0, 0, fit(net.hostname or "bambupi", "body", _W))]
    items.append(Text(0, 12, fit(f"IP {net.ip}" if net.ip else "No network", "body", _W)))
    if net.url:
        items.append(Text(0, 24, fit(net.url, "small", _W), "small"))
    if net.wifi_ssid:
        signal = f" {net.wifi_dbm}dBm" if net.wifi_dbm is not None else ""
        items.append(Text(0, 34, fit(f"Wi-Fi {net.wifi_ssid}", "small", _W - 5 * len(signal)), "small"))
        if signal:
            items.append(right(34, signal, "small"))
    else:
        items.append(Text(0, 34, "Wi-Fi: not connected", "small"))
    printer = view.printer
    if net.setup_error:
        # In inverse video, over the Wi-Fi line (a rejected file applied no Wi-Fi): the box cannot do its job until
        # the user fixes the file on the card.
        items = [item for item in items if isinstance(item, Text) and item.y < 34]
        items += [Rect(0, 33, _W - 1, HEIGHT - 1, fill=1),
                  Text(1, 34, fit("bambupi.toml rejected:", "small", _W - 2), "small", fill=0)]
        problem = _SOURCE_PREFIX.sub("", net.setup_error, count=1)
        lines = wrap(problem, "small", _W - 2, 2)
        items += [Text(1, 44 + 9 * n, line, "small", fill=0) for n, line in enumerate(lines)]
        return items
    if printer is not None:
        line = f"{printer.get('name') or printer.get('id')}: {state_line(printer)}"
        items.append(Text(0, 44, marquee(line, "small", _W, view.shown_s), "small"))
    items.append(right(54, clock(view.now, view), "small"))
    return items


def auto_off_items(view: View) -> list[Item]:
    """The minute before the smart plug switches the printer off: the countdown and how to stop it."""
    items: list[Item] = [Rect(0, 0, _W - 1, 11, fill=1), Text(2, 1, "AUTO-OFF", "body", fill=0)]
    printer = view.printer
    if printer is not None:
        items.append(Text(0, 14, marquee(str(printer.get("name") or printer.get("id")), "body", _W, view.shown_s)))
    left = max(0, round((view.off_at or view.now) - view.now))
    items.append(Text(0, 26, fit(f"Off in {left} s", "big", _W), "big"))
    items.append(Text(0, 46, "Press the button", "small"))
    items.append(Text(0, 55, "to keep it on", "small"))
    return items


# The filament screen shows one low spool at a time, each this long (turning while the screen shows, as HMS pages).
FILAMENT_PAGE_S: Final = HMS_PAGE_S


def filament_items(view: View) -> list[Item]:
    """A spool in this printer running low (shown while it is idle): how many grams are left, which spool, where."""
    count = f"{1 + int(max(view.shown_s, 0.0) // FILAMENT_PAGE_S) % len(view.low)}/{len(view.low)}" \
        if len(view.low) > 1 else ""
    items: list[Item] = [Rect(0, 0, _W - 1, 11, fill=1), Text(2, 1, "FILAMENT LOW", "body", fill=0)]
    if count:
        items.append(Text(_W - 2 - 6 * len(count), 1, count, "body", 0))
    printer = view.printer or {}
    items.append(Text(0, 14, marquee(printer.get("name") or printer.get("id") or "", "body", _W, view.shown_s)))
    if not view.low:
        return items  # refilled between the choice and the drawing: the next refresh chooses another screen
    spool = view.low[int(max(view.shown_s, 0.0) // FILAMENT_PAGE_S) % len(view.low)]
    items.append(Text(0, 25, fit(f"{max(spool.remaining_g, 0.0):.0f} g left", "big", _W), "big"))
    what = " ".join(part for part in (spool.material, spool.colour) if part) or "spool"
    items.append(Text(0, 45, fit(what, "small", _W), "small"))
    items.append(Text(0, 55, fit(spool.where, "small", _W), "small"))
    return items


_SCREENS: Final = {
    "status": status_items, "temps": temps_items, "hms": hms_items, "ams": ams_items, "network": network_items,
    "auto_off": auto_off_items, "filament": filament_items,
}


def layout(view: View) -> list[Item]:
    """The positioned items of ``view``'s screen, shifted for burn-in care."""
    dx, dy = view.shift
    items = _SCREENS[view.screen](view)
    shifted: list[Item] = []
    for item in items:
        if isinstance(item, Text):
            shifted.append(Text(item.x + dx, item.y + dy, item.text, item.font, item.fill))
        else:
            shifted.append(Rect(item.x0 + dx, item.y0 + dy, item.x1 + dx, item.y1 + dy, item.fill, item.outline))
    return shifted


def changes_within(view: View, seconds: float) -> bool:
    """Whether ``view``'s picture changes by itself within ``seconds`` (a scrolling name, an HMS page turning): the
    panel redraws sooner then, and only then."""
    return layout(view) != layout(dataclasses.replace(view, shown_s=view.shown_s + seconds))


def draw(items: Sequence[Item]) -> Image.Image:
    image = Image.new("1", (WIDTH, HEIGHT), 0)
    canvas = ImageDraw.Draw(image)
    for item in items:
        if isinstance(item, Text):
            canvas.text((item.x, item.y), item.text, font=FONTS[item.font], fill=item.fill)
        else:
            canvas.rectangle((item.x0, item.y0, item.x1, item.y1), fill=item.fill, outline=item.outline)
    return image


def render(view: View) -> Image.Image:
    return draw(layout(view))
