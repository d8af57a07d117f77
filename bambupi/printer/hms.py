"""HMS (Health Management System) codes and ``print_error`` values: decoding, short texts, support links.

An HMS entry in a report is ``{"attr": int, "code": int}``. The printed code is the four 16-bit halves,
``AAAA_BBBB_CCCC_DDDD``. Severity is ``code >> 16`` (1 fatal, 2 serious, 3 common, 4 info; BambuStudio's reading),
the module is ``attr >> 24`` and the AMS unit ``(attr >> 16) & 0xFF``.

Texts are Bambu's official ones (hms_texts.py): the table fetched in the user's language for the printer's device
type (hms_refresh.py), else the official English table shipped with bambupi, else our own short English text (a
broken install), else "<module>: <severity>". A code the official table lists without a text, or one a model reports
all the time, is *silent*: shown in the details, never an alarm. The support article is linked where Bambu
published one.
"""

from __future__ import annotations

import functools
import importlib.resources
from dataclasses import dataclass
from typing import Any, Final, Literal

from bambupi.printer.hms_texts import Catalog, Official, lookup, shipped_catalog
from bambupi.printer_models import model_info

Severity = Literal["fatal", "serious", "common", "info", "unknown"]
SEVERITIES: Final[tuple[Severity, ...]] = ("fatal", "serious", "common", "info", "unknown")
_SEVERITY_BY_LEVEL: Final[dict[int, Severity]] = {1: "fatal", 2: "serious", 3: "common", 4: "info"}

# Shown by the printer when it refused a control command (2025+ firmware outside LAN + Developer mode).
# It means "controls unavailable" and is reported as such, never as an alarm.
COMMAND_VERIFICATION_FAILED: Final = "0500_0500_0001_0007"

WIKI_BASE: Final = "https://wiki.bambulab.com/en"
WIKI_HMS_HOME: Final = f"{WIKI_BASE}/hms/home"
# Which support articles exist, derived from the published HMS index (the file names its source).
ARTICLE_TABLE: Final = "hms_articles.txt"

MODULES: Final[dict[int, str]] = {
    0x03: "Motion controller",
    0x05: "Mainboard",
    0x07: "AMS",
    0x08: "Toolhead",
    0x0C: "Camera/AI",
    0x12: "AMS lite",
    0x18: "AMS HT",
}
_AMS_MODULES: Final = frozenset({0x07, 0x12, 0x18})
_EXTERNAL_SPOOL_UNIT: Final = 0xFF

_GENERIC: Final[dict[Severity, str]] = {
    "fatal": "fatal error",
    "serious": "serious error",
    "common": "error",
    "info": "notice",
    "unknown": "problem",
}

# Our own short English texts: the fallback beneath the official tables (a broken install), in the official
# wording (tests/test_hms_texts.py checks each against the shipped table for every model it names). Codes whose
# official text differs by model in what it names (an SD card or a USB drive, the Micro Lidar or the toolhead
# camera) are left to the official tables.
_DESCRIPTIONS: Final[dict[str, str]] = {
    "0300_0100_0001_0007": "Heatbed temperature abnormal: the sensor may have an open circuit",
    "0300_0200_0001_0001": "Nozzle temperature abnormal: the heater may have a short circuit",
    "0300_0200_0001_0002": "Nozzle temperature abnormal: the heater may have an open circuit",
    "0300_0200_0001_0003": "Nozzle temperature abnormal: the heater is over temperature",
    "0300_0200_0001_0006": "Nozzle temperature abnormal: the sensor may have a short circuit",
    "0300_0200_0001_0007": "Nozzle temperature abnormal: the sensor may have an open circuit",
    "0300_0200_0001_0009": "Nozzle temperature control abnormal: the hot end may not be installed",
    "0300_0300_0001_0001": "Hotend fan too slow or stopped",
    "0300_0300_0002_0002": "Hotend fan is running slowly",
    "0300_0400_0002_0001": "Part cooling fan too slow or stopped",
    "0300_0D00_0001_0003": "Build plate not placed properly",
    "0300_0D00_0001_000B": "Z axis motor seems stuck when moving",
    "0300_0D00_0002_0001": "Heatbed homing abnormal",
    "0300_0F00_0001_0001": "Abnormal accelerometer data",
    "0300_1200_0002_0001": "Toolhead front cover fell off",
    "0300_1A00_0002_0001": "Nozzle covered with filament, or build plate crooked",
    "0300_1A00_0002_0002": "Nozzle clogged with filament",
    "0300_4100_0001_0001": "System voltage unstable: power failure protection triggered",
    "0500_0200_0002_0001": "Failed to connect to the internet",
    "0500_0400_0001_0001": "Failed to download the print job",
    "0500_0400_0001_0003": "Print file unreadable: resend the print job",
    "0500_0400_0002_0007": "Bed temperature exceeds the filament's vitrification temperature: may cause a nozzle clog",
    "0700_4000_0002_0001": "AMS filament buffer signal lost",
    "0700_4500_0002_0003": "Filament cutter handle not released",
    "0700_5100_0003_0001": "AMS disabled: load filament from the spool holder",
    "07FF_2000_0002_0001": "External filament has run out",
    "07FF_2000_0002_0002": "No external filament",
    "0C00_0100_0002_0008": "Failed to get image from the Live View Camera",
    "0C00_0300_0002_0005": "First layer inspection timed out",
    "0C00_0300_0002_000C": "Build plate localization marker not detected",
    "0C00_0300_0003_0006": "Purged filament may have piled up",
    "0C00_0300_0003_0007": "Possible first layer defects",
    "0C00_0300_0003_0008": "Possible spaghetti failure",
    "0C00_0300_0003_000B": "Inspecting the first layer",
}

# AMS codes repeat per unit and slot: bits 8-15 of attr are a group plus the slot (0-3) in the low two bits. Each
# text names the AMS modules whose table has the code (an AMS lite has no "overloaded" code, only it "tangled").
_AMS: Final = frozenset({0x07, 0x18})
_AMS_SLOT_TEXTS: Final[dict[tuple[int, int], tuple[str, frozenset[int]]]] = {
    (0x20, 0x0002_0001): ("filament has run out", _AMS_MODULES),
    (0x20, 0x0002_0002): ("slot is empty", _AMS_MODULES),
    (0x20, 0x0002_0003): ("filament may be broken", _AMS_MODULES),
    (0x20, 0x0002_0004): ("filament may be broken in the tool head", _AMS_MODULES),
    (0x20, 0x0002_0005): ("filament has run out, and purging the old filament went abnormally", _AMS_MODULES),
    (0x20, 0x0003_0001): ("filament has run out; please wait", _AMS_MODULES),
    (0x20, 0x0003_0002): ("filament has run out and switched to the slot with the same filament", _AMS_MODULES),
    (0x60, 0x0002_0001): ("slot overloaded: filament tangled or buffer stuck", _AMS),
    (0x80, 0x0002_0001): ("filament may be tangled or stuck", frozenset({0x12})),
}

# print_error values ("MMMM_EEEE").
PRINT_ERROR_CANCELLED: Final = "0300_400C"
CANCELLED_PRINT_ERRORS: Final = frozenset({PRINT_ERROR_CANCELLED, "0500_400E"})
_PRINT_ERRORS: Final[dict[str, str]] = {
    "0300_4000": "Z axis homing failed; the task was stopped",
    "0300_4002": "Auto bed levelling failed; the task was stopped",
    "0300_4006": "Nozzle clogged",
    "0300_4008": "The AMS failed to change filament",
    PRINT_ERROR_CANCELLED: "The task was canceled",
    "0300_8000": "Paused for an unknown reason",
    "0300_8001": "Paused by the user",
    "0300_8004": "Filament ran out",
    "0300_8005": "Toolhead front cover fell off",
    "0300_8008": "Nozzle temperature malfunction",
    "0300_8009": "Heatbed temperature malfunction",
    "0300_800C": "Motion steps lost; check for layer shifting",
    "0300_800D": "The extruder is not extruding normally",
    "0300_800F": "Door open: printing paused",
    "0300_8013": "Paused by a pause command in the print file",
    "0300_8014": "Nozzle covered with filament, or build plate installed incorrectly",
    "0300_8016": "Nozzle clogged",
    "0300_8017": "Foreign object on the heatbed",
    "0300_8018": "Chamber temperature malfunction",
    "0300_8019": "No build plate",
    "0500_400E": "Printing was cancelled",
    "0500_803C": "The nozzle setting does not match the slicing file: re-slice",
}


@dataclass(frozen=True)
class HmsEntry:
    code: str  # "AAAA_BBBB_CCCC_DDDD"
    severity: Severity
    module: str
    description: str
    url: str
    action: str | None = None  # what to do, where the official text says
    silent: bool = False  # no official text, or reported all the time: shown, never an alarm

    def to_json(self, *, standing: bool) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "module": self.module,
            "description": self.description,
            "action": self.action,
            "url": self.url,
            "standing": standing,
            "silent": self.silent,
        }


def hms_code(attr: int, code: int) -> str:
    return f"{attr >> 16:04X}_{attr & 0xFFFF:04X}_{code >> 16:04X}_{code & 0xFFFF:04X}"


def severity_of(code: int) -> Severity:
    return _SEVERITY_BY_LEVEL.get(code >> 16, "unknown")


def module_of(attr: int) -> str:
    module = attr >> 24
    return MODULES.get(module, f"Module 0x{module:02X}")


def hms_url(code: str, model: str) -> str:
    """The support article for ``code`` on ``model``; Bambu's HMS index when no article lists the code.

    Only articles the published index lists: the one it names for ``model``, else the one most models share (an
    article about the same code, often a synonym's). Building ``/en/<series>/…/<code>`` from the model alone links
    mostly to pages that do not exist: there are no ``/en/p1/`` articles, H2D's are under ``/en/h2/``, and most
    codes have an article in one series only.
    """
    entry = _article_index().get(code.replace("_", "").upper())
    if entry is None:
        return WIKI_HMS_HOME
    shared, by_model = entry
    series, _, article = by_model.get(model_info(model).model, shared).partition("/")
    return f"{WIKI_BASE}/{series}/troubleshooting/hmscode/{article or code.upper()}"


# code (16 hex digits) -> (the article most models share, {model: its own article}); an article is "<series>" for
# the code's own page in that series, or "<series>/<CODE>" for another code's page (a synonym).
ArticleIndex = dict[str, tuple[str, dict[str, str]]]


def parse_article_table(text: str) -> ArticleIndex:
    """Read ``data/hms_articles.txt``: one line per code, ``<code> <shared article> [<article>=<MODEL>,… …]``."""
    index: ArticleIndex = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, shared, *own = line.split()
        by_model: dict[str, str] = {}
        for item in own:
            article, _, models = item.partition("=")
            by_model.update(dict.fromkeys(models.split(","), article))
        index[key] = (shared, by_model)
    return index


@functools.cache
def _article_index() -> ArticleIndex:
    return parse_article_table((importlib.resources.files("bambupi") / "data" / ARTICLE_TABLE).read_text("utf-8"))


# Codes real printers keep listed for good, with no text in Bambu's published table and nothing for the owner to do:
# X2D (and P2S) firmware reports 0500_0600_0002_0070 permanently, its severity bits saying "serious"
# (ha-bambulab's MOCK-X2D.json, Bambuddy's P2S captures). Silent like every placeholder, with words of our own.
_QUIET_CODES: Final[dict[str, str]] = {
    "0500_0600_0002_0070": "Undocumented status code the printer always reports; nothing to do",
}
_PLACEHOLDER: Final = "code without an official text"


def decode_hms(attr: int, code: int, model: str, catalogs: tuple[Catalog, ...] = ()) -> HmsEntry:
    """Decode one report entry; ``attr`` and ``code`` must be unsigned 32-bit values (the caller checks).

    ``catalogs`` are the official tables to ask first (the fetched one for this printer); the shipped English one
    is always asked after them.
    """
    text = hms_code(attr, code)
    module = module_of(attr)
    severity = severity_of(code)
    url = hms_url(text, model)
    official = _official(text, model, catalogs)
    quiet = _QUIET_CODES.get(text)
    if quiet is not None:  # read as info: what it is, whatever its severity bits say
        return HmsEntry(text, "info", module, quiet, url, None, silent=True)
    if official is not None and official.placeholder:
        return HmsEntry(text, severity, module, f"{module}: {_PLACEHOLDER}", url, None, silent=True)
    if official is not None:
        return HmsEntry(text, severity, module, official.description, url, official.action)
    description = _DESCRIPTIONS.get(text) or _ams_slot_text(attr, code) or f"{module}: {_GENERIC[severity]}"
    return HmsEntry(text, severity, module, description, url)


def attr_and_code(code: str) -> tuple[int, int]:
    """A printed code (``AAAA_BBBB_CCCC_DDDD``) back as the report's ``(attr, code)``; ValueError if it is not one."""
    parts = [int(part, 16) for part in code.split("_")]
    if len(parts) != 4 or not all(0 <= part <= 0xFFFF for part in parts):
        raise ValueError(f"not an HMS code: {code!r}")
    return parts[0] << 16 | parts[1], parts[2] << 16 | parts[3]


def english_hms(code: str, model: str) -> HmsEntry:
    """``code`` as :func:`decode_hms` describes it without the user's table: the official English text shipped with
    bambupi. For a screen whose font cannot draw the user's language (the OLED's is Latin-1)."""
    return decode_hms(*attr_and_code(code), model)


def _official(code: str, model: str, catalogs: tuple[Catalog, ...], *, kind: str = "hms") -> Official | None:
    return lookup((*catalogs, shipped_catalog()), code, model_info(model).model, kind=kind)


def _ams_slot_text(attr: int, code: int) -> str | None:
    module = attr >> 24
    unit = (attr >> 16) & 0xFF
    if module not in _AMS_MODULES or unit == _EXTERNAL_SPOOL_UNIT:
        return None
    slot_byte = (attr >> 8) & 0xFF
    text, modules = _AMS_SLOT_TEXTS.get((slot_byte & 0xFC, code), ("", frozenset()))
    if module not in modules:
        return None
    name = "AMS" if module == 0x07 else MODULES[module]
    letter = chr(ord("A") + unit) if unit < 26 else str(unit)
    return f"{name} {letter} slot {(slot_byte & 0x03) + 1}: {text}"


def format_print_error(value: int) -> str | None:
    """``print_error`` as ``MMMM_EEEE`` (high and low 16 bits); None for 0, which means no error."""
    if value == 0:
        return None
    return f"{value >> 16:04X}_{value & 0xFFFF:04X}"


def print_error_description(code: str) -> str | None:
    """Our own short text for a ``print_error`` (the fallback beneath the official tables)."""
    return _PRINT_ERRORS.get(code.upper())


@dataclass(frozen=True)
class PrintError:
    text: str  # what went wrong, in words (never a bare code: it tells a person nothing)
    action: str | None  # what to do, where the official text says


def describe_print_error(code: str, model: str, catalogs: tuple[Catalog, ...] = ()) -> PrintError:
    """A ``print_error`` (``MMMM_EEEE``) in words: the official text, else ours, else the module and the code (a
    placeholder in the official table too: the job still ended with that error)."""
    official = _official(code, model, catalogs, kind="error")
    if official is not None and not official.placeholder:
        return PrintError(official.description, official.action)
    known = print_error_description(code)
    if known is not None:
        return PrintError(known, None)
    try:
        module = int(code[:2], 16)
    except ValueError:
        return PrintError(f"Error {code}", None)
    return PrintError(f"{MODULES.get(module, 'Printer')} error {code.upper()}", None)


def print_error_text(code: str, model: str = "", catalogs: tuple[Catalog, ...] = ()) -> str:
    """A ``print_error`` in words (:func:`describe_print_error`'s text)."""
    return describe_print_error(code, model, catalogs).text


# How a job that did not finish ended (``state.job_result``). A real stop first reports FAILED with no error and
# only later ``0300_400C`` (4.6 s on a P2S), so FAILED without an error is *pending* until the hub settles it.
CANCELLED_RESULT: Final = {"outcome": "cancelled", "text": "Cancelled"}
PENDING_RESULT: Final = {"outcome": "pending", "text": "Stopping…"}
_KNOWN_OUTCOMES: Final = frozenset({"cancelled", "failed"})


def job_result(
    gcode_state: object,
    print_error: object,
    previous: object = None,
    *,
    job_just_ended: bool = False,
    error_text: str | None = None,
) -> dict[str, str] | None:
    """How a job that did not finish ended, in the words the page, the OLED and notifications all use.

    None unless ``gcode_state`` is FAILED. A stop (``0300_400C``, ``0500_400E``) reads "Cancelled", which is the
    owner's choice and no alarm; another error reads "Failed: <what went wrong>". ``previous`` is the result the
    state held: once an end is known (cancelled or failed) it stays known while the printer stays FAILED (the hub
    may have settled it: the box sent the stop, or no error came). FAILED without an error is *pending* when the
    job just ended (``job_just_ended``) or was already pending; an end the box did not see happen (the first
    report after a start) is long settled: cancelled. ``error_text`` is the error in words as the state shows it
    (the official text in the user's language); without it, :func:`print_error_text`.
    """
    if gcode_state != "FAILED":
        return None
    if isinstance(previous, dict) and previous.get("outcome") in _KNOWN_OUTCOMES:
        return dict(previous)
    if isinstance(print_error, str) and print_error.upper() in CANCELLED_PRINT_ERRORS:
        return dict(CANCELLED_RESULT)
    if isinstance(print_error, str):
        return {"outcome": "failed", "text": f"Failed: {error_text or print_error_text(print_error)}"}
    pending = isinstance(previous, dict) and previous.get("outcome") == "pending"
    return dict(PENDING_RESULT) if pending or job_just_ended else dict(CANCELLED_RESULT)
