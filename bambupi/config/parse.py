"""Reading a config file: TOML in, a :class:`Config` and every problem out, each with its key path and line."""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TextIO

import tomlkit
from tomlkit.exceptions import KeyAlreadyPresent, ParseError, TOMLKitError

from bambupi.config.model import Config
from bambupi.config.problems import ConfigError, Problem, errors
from bambupi.config.schema import SCHEMA, SECRET_KEYS, Section
from bambupi.config.validators import Warned, facade_printer_problems
from bambupi.secret import redact

# --- finding lines ---------------------------------------------------------------------------------------------------

_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_KEY_LINE = re.compile(rf"^\s*({_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*=")
_HEADER_LINE = re.compile(rf"^\s*(\[\[?)\s*({_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*\]")


def _key_parts(dotted: str) -> list[str]:
    return [part.strip().strip("\"'") for part in re.findall(_KEY_PART, dotted)]


def key_lines(text: str) -> dict[str, int]:
    """Map key paths (``web.listen``, ``printer[1]``, ``printer[1].id``) to the 1-based line that defines them.

    A light scan of the source rather than a second parser: tomlkit keeps no line numbers, and an approximate line
    beside an exact key path is all a message needs.
    """
    return _scan_keys(text)[0]


def _duplicate_problem(exc: TOMLKitError, text: str, source: str) -> Problem:
    """A key or table written twice, by its path and the line of its second definition. tomlkit reports a
    duplicate inside a table without any position (``KeyAlreadyPresent``), so the scan finds it."""
    duplicates = _scan_keys(text)[1]
    if duplicates:
        path, line, first = duplicates[0]
        return Problem("error", path, f"duplicate key: already set on line {first}", line, source)
    # The scan missed it (an unusual way of writing keys): tomlkit's message names only the key.
    name = re.search(r'Key "(.*)" already exists', str(exc))
    return Problem("error", "", f"duplicate key {name.group(1) if name else ''}".rstrip(), None, source)


def _scan_keys(text: str) -> tuple[dict[str, int], list[tuple[str, int, int]]]:
    """The first line of every key path, and each path defined again: ``(path, line, first line)``."""
    lines: dict[str, int] = {}
    duplicates: list[tuple[str, int, int]] = []
    arrays: dict[str, int] = {}  # path of each [[array]] -> index of its latest table
    table = ""
    in_multiline = False

    def resolve(parts: list[str]) -> str:
        path = ""
        for part in parts:
            path = f"{path}.{part}" if path else part
            if path in arrays:
                path = f"{path}[{arrays[path]}]"
        return path

    for number, line in enumerate(text.splitlines(), start=1):
        quotes = line.count('"""') + line.count("'''")
        if in_multiline:
            in_multiline = quotes % 2 == 0
            continue
        if header := _HEADER_LINE.match(line):
            parts = _key_parts(header.group(2))
            if header.group(1) == "[[":
                name = ".".join(filter(None, [resolve(parts[:-1]), parts[-1]]))
                arrays[name] = arrays.get(name, -1) + 1
                table = f"{name}[{arrays[name]}]"
            else:
                table = resolve(parts)
                if table in lines:
                    duplicates.append((table, number, lines[table]))
            lines.setdefault(table, number)
        elif key := _KEY_LINE.match(line):
            path = ".".join(filter(None, [table, *_key_parts(key.group(1))]))
            if path in lines:
                duplicates.append((path, number, lines[path]))
            lines.setdefault(path, number)
        in_multiline = quotes % 2 == 1
    return lines, duplicates


def _line_of(lines: Mapping[str, int], key: str) -> int | None:
    # The key itself, else the nearest enclosing table that is in the file (a missing key points at its table).
    while key:
        if key in lines:
            return lines[key]
        key = re.sub(r"(\[\d+\]|\.?[^.\[]+)$", "", key)
    return None


# --- parsing ---------------------------------------------------------------------------------------------------------


class _Collector:
    def __init__(self, source: str, lines: Mapping[str, int]) -> None:
        self.source = source
        self.lines = lines
        self.problems: list[Problem] = []

    def add(self, level: Literal["error", "warning"], key: str, message: str) -> None:
        self.problems.append(Problem(level, key, message, _line_of(self.lines, key), self.source))

    def in_file_order(self) -> list[Problem]:
        return sorted(self.problems, key=lambda p: (p.line is None, p.line or 0))

    def error_count(self) -> int:
        return len(errors(self.problems))

    def unknown(self, key: str, name: str, candidates: Sequence[str], what: str = "key") -> None:
        close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        self.add("warning", key, f"unknown {what}, ignored{hint}")


def _syntax_problem(exc: ParseError, text: str, source: str) -> Problem:
    message = re.sub(r"\s*at line \d+ col \d+$", "", str(exc)).rstrip(".")
    source_lines = text.splitlines()
    line_text = source_lines[exc.line - 1] if 0 < exc.line <= len(source_lines) else ""
    key = _KEY_LINE.match(line_text)
    if key and set(_key_parts(key.group(1))) & SECRET_KEYS:
        # tomlkit quotes the offending character, which would be part of the secret.
        message = "cannot read this secret value (details hidden): write it in double quotes, nothing after it"
    return Problem("error", "", f"invalid TOML: {message} (column {exc.col})", exc.line, source)


def _validate_table(section: Section, table: Mapping[str, Any], path: str, out: _Collector) -> dict[str, Any]:
    """The table's validated values by key (keys that failed are left out; their problems are in ``out``)."""
    values: dict[str, Any] = {}
    errors_before = out.error_count()
    for key, raw in table.items():
        if key in section.tables:
            sub = section.tables[key]
            if not isinstance(raw, dict):
                out.add("error", f"{path}.{key}", f"must be a table: a [{path.split('[')[0]}.{key}] line and its keys")
                continue
            before = out.error_count()
            sub_values = _validate_table(sub, raw, f"{path}.{key}", out)
            if out.error_count() == before:  # built only when whole: a table with an error may lack a field
                values[key] = _build(sub, sub_values)
            continue
        option = section.options.get(key)
        if option is None:
            what = "table" if isinstance(raw, dict) else "key"
            out.unknown(f"{path}.{key}", key, [*section.options, *section.tables], what)
            continue
        try:
            value = option.validator(raw)
        except ValueError as exc:
            message = str(exc)
            if option.secret and isinstance(raw, str):
                message = redact(message, raw)  # belt and braces: validators of secrets never quote them anyway
            out.add("error", f"{path}.{key}", message)
            continue
        if isinstance(value, Warned):
            out.add("warning", f"{path}.{key}", value.message)
            value = value.value
        values[key] = value
    for key, option in section.options.items():
        if key in table:
            continue
        if option.default_from is not None and option.default_from in values:
            values[key] = values[option.default_from]
        elif option.required:
            out.add("error", f"{path}.{key}", "required")
    if section.kinds is not None:
        for key, message in section.kinds.problems(table, values):
            out.add("error", f"{path}.{key}", message)
    if section.check is not None and out.error_count() == errors_before:
        for key, message in section.check(values):
            out.add("error", f"{path}.{key}", message)
    return values


def _build(section: Section, values: Mapping[str, Any]) -> Any:
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key in section.tables:
            kwargs[key] = value  # already built by _validate_table
            continue
        into = section.options[key].into
        if into:
            kwargs.update(zip(into, value, strict=True))
        else:
            kwargs[key] = value
    return section.cls(**kwargs)


def _check_unique(name: str, section: Section, tables: Sequence[Mapping[str, Any]], out: _Collector) -> None:
    for key in section.unique:
        first: dict[Any, int] = {}
        for index, values in enumerate(tables):
            if key not in values:
                continue
            value = values[key]
            if value in first:
                shown = "" if section.options[key].secret else f" {value!r}"
                out.add("error", f"{name}[{index}].{key}", f"duplicate{shown}: {name}[{first[value]}] has it too")
            else:
                first[value] = index


def _array_of_tables(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def parse_config(text: str, *, source: str = "bambupi.toml") -> tuple[Config | None, list[Problem]]:
    """Check ``text`` against :data:`SCHEMA`: the Config (None when there is any error) and every problem found."""
    text = text.removeprefix("\ufeff")  # Notepad's byte-order mark is no key
    try:
        document: dict[str, Any] = tomlkit.parse(text).unwrap()
    except KeyAlreadyPresent as exc:
        return None, [_duplicate_problem(exc, text, source)]
    except ParseError as exc:
        if "already exists" in str(exc):
            return None, [_duplicate_problem(exc, text, source)]
        return None, [_syntax_problem(exc, text, source)]
    except TOMLKitError as exc:
        # Anything else tomlkit refuses: named without its message, which may quote a value.
        return None, [Problem("error", "", f"invalid TOML ({type(exc).__name__})", None, source)]
    out = _Collector(source, key_lines(text))
    found: dict[str, list[dict[str, Any]]] = {}  # section name -> validated values of each of its tables
    for name, value in document.items():
        section = SCHEMA.get(name)
        if section is None:
            candidates = [*SCHEMA, *(f"{s}.{k}" for s, sec in SCHEMA.items() for k in sec.options)]
            out.unknown(name, name, candidates, "section" if isinstance(value, dict | list) else "key")
        elif section.many:
            if not _array_of_tables(value):
                out.add("error", name, f"must be written as [[{name}]] tables (double brackets, one per {name})")
                continue
            found[name] = [_validate_table(section, table, f"{name}[{i}]", out) for i, table in enumerate(value)]
            _check_unique(name, section, found[name], out)
        elif not isinstance(value, dict):
            out.add("error", name, f"must be a table: a [{name}] line followed by its keys")
        else:
            found[name] = [_validate_table(section, value, name, out)]
    if not found.get("printer") and "printer" not in out.lines:
        out.add("warning", "printer", "no printers configured: the box shows only its network screen")
    if "facade" in found:
        for key, message in facade_printer_problems(found["facade"][0], found.get("printer", [])):
            out.add("error", f"facade.{key}", message)
    if out.error_count():
        # Objects are built only from fully valid tables: a table with an error may lack a required field.
        return None, out.in_file_order()
    kwargs: dict[str, Any] = {}
    for name, tables in found.items():
        section = SCHEMA[name]
        built = tuple(_build(section, values) for values in tables)
        kwargs[section.attr] = built if section.many else built[0]
    return Config(**kwargs), out.in_file_order()


# --- files -----------------------------------------------------------------------------------------------------------


def _read(path: Path) -> tuple[Config | None, list[Problem]]:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return None, [Problem("error", "", f"not UTF-8 text (byte {exc.start})", None, source)]
    except OSError as exc:
        return None, [Problem("error", "", f"cannot read: {exc.strerror or exc}", None, source)]
    config, problems = parse_config(text, source=source)
    return (None if config is None else dataclasses.replace(config, source=path)), problems


def load_config(path: Path) -> tuple[Config, list[Problem]]:
    """The config in ``path`` and its warnings; raises :class:`ConfigError` (listing every problem) on any error."""
    config, problems = _read(path)
    if config is None:
        raise ConfigError(problems)
    return config, problems


def check_config(path: Path) -> list[Problem]:
    """Every problem in ``path``; never raises for bad content (an unreadable file is an error problem)."""
    return _read(path)[1]


def cli_check_config(path: Path, out: TextIO) -> int:
    """``bambupi check-config``: print every problem, then a summary; 1 when there are errors."""
    config, problems = _read(path)
    for problem in problems:
        print(problem, file=out)
    warnings = len(problems) - len(errors(problems))
    also = f", {_count(warnings, 'warning')}" if warnings else ""
    if config is None:
        print(f"{path}: {_count(len(errors(problems)), 'error')}{also}", file=out)
        return 1
    print(f"OK: {_count(len(config.printers), 'printer')}{also}", file=out)
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
