"""Bambu's official HMS and print-error texts: parsing the tables, looking a code up, splitting off the action.

Pure: no I/O except reading the shipped table from the package (once). Two shapes come in:

- the answer of Bambu's HMS service (``GET {hms_service}/query.php?lang=<lang>&d=<first 3 chars of the serial>``,
  what BambuStudio's ``HMSQuery::download_hms_related`` reads): ``{"result": 0, "ver": <int>, "data":
  {"device_hms": {"<lang>": [{"ecode": "<16 hex>", "intro": "..."}]}, "device_error": {"<lang>": [{"ecode":
  "<8 hex>", "intro": "..."}]}}}``; ``result`` 201 means "your version is current". One table per device type, so
  every text in it is meant for that printer.
- the shipped fallback, ``data/hms_en.json.gz`` (ha-bambulab's aggregate over all device types, see its
  ``.source.toml``): ``{"device_hms": {code: {text: [models the text is for; [] = all]}}, "device_error": {...}}``.

An empty text is a placeholder: Bambu lists the code but says nothing about it (BambuStudio calls such a
print error "internal"). Such a code is shown in the details and never raised as an alarm (``silent``).
"""

from __future__ import annotations

import functools
import gzip
import importlib.resources
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

SHIPPED_TABLE: Final = "hms_en.json.gz"
SHIPPED_LANGUAGE: Final = "en"
# The service's answer for one device type and language is about 1 MB; anything far larger is not a table.
MAX_ANSWER_BYTES: Final = 8 * 1024 * 1024
MAX_CODES: Final = 50_000
MAX_TEXT_CHARS: Final = 2000
RESULT_OK: Final = 0
RESULT_UP_TO_DATE: Final = 201
_HMS_CODE: Final = re.compile(r"[0-9A-Fa-f]{16}")
_ERROR_CODE: Final = re.compile(r"[0-9A-Fa-f]{8}")


class TableError(ValueError):
    """A table (the service's answer, a stored copy, the shipped file) that cannot be used; says why."""


@dataclass(frozen=True)
class Variant:
    text: str  # "" = a placeholder
    models: frozenset[str] = frozenset()  # the models it is for (normalised, "A1MINI"); empty = every model


@dataclass(frozen=True)
class Catalog:
    """One table of official texts in one language. Keys are upper-case hex without separators."""

    language: str
    hms: Mapping[str, tuple[Variant, ...]] = field(default_factory=dict)
    errors: Mapping[str, tuple[Variant, ...]] = field(default_factory=dict)
    version: int = 0


@dataclass(frozen=True)
class Official:
    """A code's official text, split for showing: what happened, and what to do (None: the text says nothing)."""

    description: str
    action: str | None
    placeholder: bool  # the table lists the code with no text


@dataclass(frozen=True)
class UpToDate:
    """The service's answer when the version we sent is its newest."""


# -- parsing -------------------------------------------------------------------------------------------------------


def parse_service_answer(body: bytes, language: str) -> Catalog | UpToDate:
    """Read the HMS service's answer for ``language``; raises :class:`TableError` saying what is wrong with it."""
    return read_service_answer(body, language)[0]


def read_service_answer(body: bytes, language: str) -> tuple[Catalog | UpToDate, dict[str, Any]]:
    """:func:`parse_service_answer`, with the answer's ``data`` object as a stored copy keeps it ({} if up to date)."""
    if len(body) > MAX_ANSWER_BYTES:
        raise TableError(f"the answer is larger than {MAX_ANSWER_BYTES} bytes")
    root = _json_object(body)
    result = root.get("result")
    if result == RESULT_UP_TO_DATE:
        return UpToDate(), {}
    if result != RESULT_OK:
        raise TableError(f"the service answered result {str(result)[:20]!r}")
    version = _version(root.get("ver"))
    data = root.get("data")
    if not isinstance(data, dict):
        raise TableError("'data' is not an object")
    return parse_service_data(data, language, version), data


def parse_service_data(data: Mapping[str, Any], language: str, version: int) -> Catalog:
    """The ``data`` object of a service answer (also what a stored copy keeps)."""
    hms = _service_part(data, "device_hms", language, _HMS_CODE)
    errors = _service_part(data, "device_error", language, _ERROR_CODE)
    if not hms:
        raise TableError(f"no HMS texts in {language!r}")
    return Catalog(language, hms, errors, version)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        root = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:  # RecursionError is a RuntimeError: see below
        raise TableError(f"not JSON ({str(exc)[:80]})") from None
    except RecursionError:
        raise TableError("not JSON (nested too deep)") from None
    if not isinstance(root, dict):
        raise TableError("not a JSON object")
    return root


def _version(value: Any) -> int:
    if isinstance(value, bool):
        raise TableError("'ver' is not a number")
    try:
        return int(value)  # BambuStudio reads it as a long long, sent as a number or a numeric string
    except (TypeError, ValueError):
        raise TableError("'ver' is not a number") from None


def _same_language(a: str, b: str) -> bool:
    return a.lower().replace("_", "-") == b.lower().replace("_", "-")


def _service_part(
    data: Mapping[str, Any], part: str, language: str, pattern: re.Pattern[str]
) -> dict[str, tuple[Variant, ...]]:
    by_language = data.get(part)
    if by_language is None:
        return {}
    if not isinstance(by_language, dict):
        raise TableError(f"'{part}' is not an object")
    entries = next((v for k, v in by_language.items() if _same_language(k, language)), None)
    if entries is None:
        raise TableError(f"'{part}' has no texts in {language!r} (it has {sorted(by_language)[:5]})")
    if not isinstance(entries, list):
        raise TableError(f"'{part}.{language}' is not a list")
    if len(entries) > MAX_CODES:
        raise TableError(f"'{part}' lists more than {MAX_CODES} codes")
    table: dict[str, tuple[Variant, ...]] = {}
    for entry in entries:
        # One odd entry is skipped, not the whole table: the rest is still the best text there is.
        if not isinstance(entry, dict):
            continue
        code, intro = entry.get("ecode"), entry.get("intro")
        if isinstance(code, str) and pattern.fullmatch(code) and isinstance(intro, str):
            table.setdefault(code.upper(), (Variant(_clean(intro)),))
    return table


def parse_shipped(body: bytes) -> Catalog:
    """Read the shipped table (ha-bambulab's shape, gzip-compressed)."""
    try:
        root = _json_object(gzip.decompress(body))
    except (OSError, EOFError) as exc:
        raise TableError(f"not gzip ({exc})") from None
    return Catalog(
        SHIPPED_LANGUAGE, _shipped_part(root, "device_hms", _HMS_CODE), _shipped_part(root, "device_error", _ERROR_CODE)
    )


def _shipped_part(root: Mapping[str, Any], part: str, pattern: re.Pattern[str]) -> dict[str, tuple[Variant, ...]]:
    codes = root.get(part)
    if not isinstance(codes, dict):
        raise TableError(f"'{part}' is not an object")
    table: dict[str, tuple[Variant, ...]] = {}
    for code, texts in codes.items():
        if not (pattern.fullmatch(code) and isinstance(texts, dict)):
            continue
        table[code.upper()] = tuple(
            Variant(_clean(text), frozenset(str(m).upper() for m in models))
            for text, models in texts.items()
            if isinstance(models, list)
        )
    return table


def _clean(text: str) -> str:
    # Texts come from outside: no control characters, bounded (the page, the OLED and messages all show them).
    return "".join(c if c.isprintable() else " " for c in text).strip()[:MAX_TEXT_CHARS]


@functools.cache
def shipped_catalog() -> Catalog:
    """The official English table shipped with bambupi; an empty one if the file cannot be read (a broken
    install still names the common codes with hms.py's own texts)."""
    try:
        body = (importlib.resources.files("bambupi") / "data" / SHIPPED_TABLE).read_bytes()
        return parse_shipped(body)
    except (OSError, TableError):
        return Catalog(SHIPPED_LANGUAGE)


# -- looking up ----------------------------------------------------------------------------------------------------


def _text_for(variants: tuple[Variant, ...], model: str) -> str | None:
    """The model's own variant, else the one for every model, else any (a code listed for other models only
    is still better named by their text than by none)."""
    for variant in variants:
        if model in variant.models:
            return variant.text
    for variant in variants:
        if not variant.models:
            return variant.text
    return variants[0].text if variants else None


def lookup(catalogs: tuple[Catalog, ...], code: str, model: str, *, kind: str = "hms") -> Official | None:
    """``code`` (``AAAA_BBBB_CCCC_DDDD`` or, with ``kind="error"``, ``MMMM_EEEE``) in the first catalog that has
    it, split in its language; None when none lists it."""
    key = code.replace("_", "").upper()
    for catalog in catalogs:
        table = catalog.hms if kind == "hms" else catalog.errors
        variants = table.get(key)
        text = _text_for(variants, model) if variants else None
        if text is None:
            continue
        if not text:
            return Official("", None, placeholder=True)
        description, action = split_action(text, catalog.language)
        return Official(description, action, placeholder=False)
    return None


# -- description and action ----------------------------------------------------------------------------------------

# Bambu's texts say what happened, then (often) what to do: "The AMS F is overloaded. Please check the spool."
# The action starts at the first clause after a sentence or clause break that is phrased as an instruction. The
# markers per language are the forms the real tables use for one (measured on ha-bambulab's copies: about a third
# of the texts in en, de, fr, ja and zh-cn carry one; the rest only describe):
# - en: an imperative or "please", "you can", "if ...,"   - de: "Bitte ..." or the formal imperative "<Verb> Sie"
# - fr: "Veuillez ..." or a verb in -ez                   - ja: a sentence asking with ください
# - zh: a clause starting with 请 (please), 建议 (we suggest), 如/若 (if), 检查 (check), 尝试 (try)
# A text that is an instruction from its first word stays whole as the description (nothing to split off).
_BREAK: Final = r"(?:(?<=[.;,!?:])\s+|(?<=[。，；]))"
_EN_VERBS: Final = (
    "please|check|try|make sure|ensure|wait|clean|remove|restart|reboot|contact|refer|go to|power off|turn off|"
    "replace|reinstall|re-?insert|insert|pull|cut|trim|tap|press|reconnect|unplug|install|load|unload|manually|"
    "you can|you may|do not|don't|if (?:the|this|it|you)[^.]*?,|click|select|resume|re-?slice|lower|adjust|update|"
    "upgrade|retry|stop using|confirm"
)
_SPLITS: Final[dict[str, re.Pattern[str]]] = {
    "en": re.compile(_BREAK + rf"(?=(?:{_EN_VERBS})\b)", re.IGNORECASE),
    "de": re.compile(
        _BREAK + r"(?=(?:[Bb]itte\b|\w+(?:-\w+)? Sie\b(?! (?:ist|sind|war|wird|wurde|hat|haben|kann|können|könnte)\b)))"
    ),
    "fr": re.compile(_BREAK + r"(?=(?:veuillez|merci de|\w+ez\b|\w+ez-vous\b|n'\w+ez\b|ne \w+ez\b))", re.IGNORECASE),
    "ja": re.compile(r"(?<=[。．!！?？])(?=[^。．]*?(?:ください|下さい))"),
    "zh-cn": re.compile(r"(?<=[。，,；;！!？?])\s*(?=(?:请|建议|如|若|可尝试|尝试|检查|确认|重新|清理|更换|联系))"),
}
_CLOSING: Final[dict[str, str]] = {"ja": "。", "zh-cn": "。"}


def split_action(text: str, language: str) -> tuple[str, str | None]:
    """``text`` as (description, action); action None when the text gives none or the language has no rule."""
    language = language.lower().replace("_", "-")
    rule = _SPLITS.get(language)
    found = rule.search(text) if rule is not None else None
    if found is None or found.start() == 0:
        return text, None
    description = text[: found.start()].rstrip(" ,;:，；")
    action = text[found.end():].strip()
    if not description or not action:
        return text, None
    if description[-1] not in ".!?。！？":
        description += _CLOSING.get(language, ".")
    return description, action[0].upper() + action[1:]
