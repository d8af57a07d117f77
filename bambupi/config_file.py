"""Writing the config file back: tomlkit keeps the user's comments and order; writes are atomic.

Atomic means: the new text goes to a temporary file in the same folder, is flushed to disk, and only then
renamed over the old file, whose previous content is kept as ``<name>.bak``. A crash at any point leaves either
the old or the new file complete, never a half-written one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Item, Table
from tomlkit.toml_document import TOMLDocument

from bambupi.config import SCHEMA, Problem, Section, errors, parse_config, valid_password_hash
from bambupi.secret import MASK

# Changed through their own flows (set-password, first visit), never through the settings form.
READ_ONLY_KEYS = frozenset({"web.admin_password_hash"})

# Each entry of a [[printer]] or [[notify]] list, as the settings read it, carries its identity under this key; a
# save sends it back so that a hidden secret is kept from the same entry (see apply_settings).
REF_KEY = "_ref"


class ConfigWriteError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def write_atomically(path: Path, text: str) -> None:
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            shutil.copy2(path, path.with_name(path.name + ".bak"))
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            # The file holds the printer's access code: readable by its owner only.
            os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(folder, os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def edit_config(path: Path, edit: Callable[[TOMLDocument], None]) -> list[Problem]:
    """Apply ``edit`` to the parsed document, validate the result with the one schema, and write it.

    Raises ConfigWriteError (and writes nothing) when the edited file would have errors; returns the warnings.
    """
    document = read_document(path)
    edit(document)
    new_text = tomlkit.dumps(document)
    _, problems = parse_config(new_text, source=path.name)
    if errors(problems):
        raise ConfigWriteError(errors(problems))
    write_atomically(path, new_text)
    return problems


def read_document(path: Path) -> TOMLDocument:
    """The file as tomlkit reads it (empty when there is none); ConfigWriteError when it cannot be read as TOML.

    The error is worded like ``bambupi check-config`` words it, never quoting a secret (tomlkit's own message
    quotes the character it stopped at, which may be part of an access code).
    """
    try:
        text = path.read_text("utf-8") if path.exists() else ""
    except UnicodeDecodeError as exc:
        raise ConfigWriteError([Problem("error", "", f"not UTF-8 text (byte {exc.start})", None, path.name)]) from None
    text = text.removeprefix("\ufeff")  # as check-config reads it: Notepad's byte-order mark is no key
    try:
        return tomlkit.parse(text)
    except TOMLKitError:  # KeyAlreadyPresent (a duplicate inside a table) is no ParseError
        _, problems = parse_config(text, source=path.name)
        raise ConfigWriteError(errors(problems)) from None


def set_password_hash(path: Path, password_hash: str) -> None:
    def edit(document: TOMLDocument) -> None:
        if "web" not in document:
            document["web"] = tomlkit.table()
        document["web"]["admin_password_hash"] = password_hash

    edit_config(path, edit)


def stored_password_hash(path: Path) -> str | None:
    """The admin password hash ``path`` holds now, or None (no file, no hash, or not one that could be used)."""
    try:
        document = read_document(path)
    except (OSError, ConfigWriteError):
        return None
    web = document.get("web")
    value = web.get("admin_password_hash") if isinstance(web, dict) else None
    try:
        return valid_password_hash(value.unwrap() if isinstance(value, Item) else value).reveal()
    except ValueError:
        return None


def settings_view(document: TOMLDocument) -> dict[str, Any]:
    """The settings as the file states them (absent = default, shown as null), every secret masked."""
    view: dict[str, Any] = {}
    for name, section in SCHEMA.items():
        raw = document.get(name)
        if section.many:
            tables = raw if isinstance(raw, list) else []
            view[name] = [
                {**_table_view(section, t), REF_KEY: entry_ref(section, t)} for t in tables if isinstance(t, dict)
            ]
        else:
            view[name] = _table_view(section, raw if isinstance(raw, dict) else {})
    return view


def schema_view() -> dict[str, Any]:
    """What the settings page needs to build its form: each section's keys and which are secret or lists, and
    the sub-tables inside its tables (a printer's ``plug``)."""
    return {name: _section_schema(section) for name, section in SCHEMA.items()}


def _section_schema(section: Section) -> dict[str, Any]:
    return {
        "many": section.many,
        "keys": list(section.options),
        "required": [k for k, o in section.options.items() if o.required],
        "secret": [k for k, o in section.options.items() if o.secret],
        "lists": [k for k, o in section.options.items() if o.is_list],
        "tables": {name: _section_schema(sub) for name, sub in section.tables.items()},
    }


def _table_view(section: Section, table: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, option in section.options.items():
        value = table.get(key)
        plain = value.unwrap() if isinstance(value, Item) else value
        out[key] = MASK if option.secret and plain is not None else plain
    for name, sub in section.tables.items():
        raw = table.get(name)
        out[name] = _table_view(sub, raw) if isinstance(raw, dict) else None
    return out


def apply_settings(document: TOMLDocument, changes: dict[str, Any]) -> None:
    """Edit ``document`` in place; ValueError (naming the key or entry) for a change of the wrong shape or one
    that would lose a value.

    Per key: a value sets it, null removes it (back to the default), a secret left empty or masked stays as it
    is. A list (``[[printer]]``, ``[[notify]]``) replaces the whole list; see :func:`_apply_list` for how its
    entries are matched to the file's.
    """
    for name, value in changes.items():
        section = SCHEMA.get(name)
        if section is None:
            raise ValueError(f"{name}: unknown section")
        if section.many:
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise ValueError(f"{name}: must be a list of tables")
            document[name] = _apply_list(section, name, document.get(name), value)
        else:
            if not isinstance(value, dict):
                raise ValueError(f"{name}: must be a table")
            current = document.get(name)
            table = current if isinstance(current, Table) else tomlkit.table()
            document[name] = _apply_table(section, table, value, name)


def entry_ref(section: Section, table: dict[str, Any]) -> str:
    """The identity of one entry of a list as it stands in the file: a digest of what the settings show of it.

    Secrets enter only as "set or not" (the digest is sent to the browser, and an 8-digit access code would be
    easy to find from a digest of it), so a secret changed by hand is kept, not refused; anything else changed
    since the page read the entry changes the digest, and the save is refused instead of undoing that change.
    """
    shown = json.dumps(_table_view(section, table), sort_keys=True, default=str)
    return hashlib.sha256(shown.encode()).hexdigest()[:24]


def _apply_list(section: Section, name: str, existing: object, items: list[dict[str, Any]]) -> AoT:
    """The new ``[[name]]`` list: each item carrying an identity edits the file's entry it was read from, in place
    (its comments and hidden secrets stay with it, whatever its new position or name); an item without one is new.

    Position and name are no identity: after a removal, a rename or a reorder they point at another entry, and a
    hidden secret would move to it. A save that cannot be matched like this is refused, naming the entry: one whose
    entry changed in the file or is gone since the page read it, or two items that claim the same entry.
    An entry no item claims is removed with its secrets.
    """
    tables = [t for t in existing if isinstance(t, Table)] if isinstance(existing, AoT) else []
    by_ref: dict[str, list[Table]] = {}
    for table in tables:
        by_ref.setdefault(entry_ref(section, table), []).append(table)
    claimed: dict[int, int] = {}  # id(table) -> index of the item that claimed it
    out = AoT([])
    for index, item in enumerate(items):
        path = f"{name}[{index}]"
        values = dict(item)
        ref = values.pop(REF_KEY, None)
        label = _entry_label(name, values)
        if ref is None:
            out.append(_apply_table(section, tomlkit.table(), values, path))
            continue
        matches = by_ref.get(str(ref), [])
        if len(matches) != 1:
            raise ValueError(
                f"{path}: {label} changed in the file since the page loaded it (or was removed); reload the page"
            )
        table = matches[0]
        if id(table) in claimed:
            raise ValueError(f"{path}: {label} claims the same entry as {name}[{claimed[id(table)]}]")
        claimed[id(table)] = index
        out.append(_apply_table(section, table, values, path))
    return out


def _entry_label(name: str, values: dict[str, Any]) -> str:
    what = {"printer": "printer", "notify": "channel"}.get(name, name)
    ident = values.get("id") if name == "printer" else values.get("name")
    return f"{what} {ident!r}" if isinstance(ident, str) and ident else f"this {what}"


def _apply_table(section: Section, table: Table, values: dict[str, Any], path: str) -> Table:
    for key, value in values.items():
        sub = section.tables.get(key)
        if sub is not None:  # a sub-table ([printer.plug]): null removes it, a table edits it in place
            if value is None:
                table.pop(key, None)
            elif isinstance(value, dict):
                current = table.get(key)
                table[key] = _apply_table(sub, current if isinstance(current, Table) else tomlkit.table(), value,
                                          f"{path}.{key}")
            else:
                raise ValueError(f"{path}.{key}: must be a table or null")
            continue
        option = section.options.get(key)
        if option is None:
            raise ValueError(f"{path}.{key}: unknown key")
        if f"{path.split('[')[0]}.{key}" in READ_ONLY_KEYS:
            if value in (None, "", MASK):
                continue
            raise ValueError(f"{path}.{key}: change it with `bambupi set-password`")
        if option.secret and value in (None, "", MASK):
            if value == MASK and key not in table:  # a new entry, or one whose secret was removed by hand
                raise ValueError(f"{path}.{key}: no stored value to keep here; type it")
            continue
        if value is None:
            table.pop(key, None)
        elif _is_scalar(value) or (option.is_list and isinstance(value, list) and all(map(_is_scalar, value))):
            table[key] = value
        else:
            raise ValueError(f"{path}.{key}: must be a string, number or true/false")
    return table


def _is_scalar(value: Any) -> bool:
    return isinstance(value, bool | int | float | str)
