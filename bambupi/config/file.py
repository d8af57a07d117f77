"""Writing the config file back: tomlkit keeps the user's comments and order; writes are atomic and serialized.

Atomic means: the new text goes to a temporary file in the same folder, is flushed to disk, and only then
renamed over the old file, whose previous content is kept as ``<name>.bak``. A crash at any point leaves either
the old or the new file complete, never a half-written one.

Serialized means: every writer (the settings page, the first-visit password, `bambupi set-password` in another
process) reads, checks and writes under one lock on the file's folder, so two saves cannot interleave and undo
each other. A change made by hand is detected by the file's version (a digest of its bytes): a save made against
an older version is refused instead of silently overwriting it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Item, Table
from tomlkit.toml_document import TOMLDocument

from bambupi.atomic_file import replacing
from bambupi.config.labels import LABELS, SECTIONS
from bambupi.config.parse import parse_config
from bambupi.config.problems import Problem, errors
from bambupi.config.schema import SCHEMA, Option, Section
from bambupi.config.validators import NumberRange, valid_bool, valid_model, valid_password_hash
from bambupi.printer_models import KNOWN_MODELS
from bambupi.secret import MASK

# Changed through their own flows (set-password, first visit), never through the settings form.
READ_ONLY_KEYS = frozenset({"web.admin_password_hash"})

# Where each table's secrets are sent, by schema path, with the words a refusal uses. When one of these changes in a
# save, a stored secret of the same table goes with it only if the owner types it again in that save: otherwise the
# access code would be offered to whatever now listens at the new address (see _refuse_secrets_to_a_new_destination).
DESTINATIONS: dict[str, dict[str, str]] = {
    "printer": {"host": "address", "mqtt_port": "MQTT port", "ftps_port": "FTPS port", "camera_port": "camera port"},
    "printer.plug": {"address": "address", "kind": "kind"},
    "notify": {"url": "URL", "api_url": "API URL", "kind": "kind"},
    # The home broker's password goes where these say (a CA of "insecure" would send it to any listener too).
    "bridge": {"host": "address", "port": "port", "tls": "TLS setting", "ca": "certificate check"},
}
_OWNER_WORDS = {"printer": "printer", "printer.plug": "plug", "notify": "channel", "bridge": "home broker"}

# Each entry of a [[printer]] or [[notify]] list, as the settings read it, carries its identity under this key; a
# save sends it back so that a hidden secret is kept from the same entry (see apply_settings).
REF_KEY = "_ref"


class ConfigWriteError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class ConfigChanged(Exception):
    """The file is not the version the change was made against (edited by hand, or saved from another page)."""

    def __init__(self) -> None:
        super().__init__("the file changed since this page loaded it; reload")


# The file holds access codes (8 digits: a plain digest of a file whose other lines are known could be searched
# for them), so its version is keyed with a secret of this process. A page loaded before a restart then reloads.
_VERSION_KEY = secrets.token_bytes(32)


def file_version(raw: bytes) -> str:
    """The version of a config file's content, as ``GET /api/settings`` gives it and a save sends it back."""
    return hmac.new(_VERSION_KEY, raw, hashlib.sha256).hexdigest()


@contextlib.contextmanager
def config_lock(path: Path) -> Iterator[None]:
    """Hold the one lock for writing ``path``, across threads and processes.

    The lock is on the folder, not the file: the file is replaced by a rename, so a lock on it would be on the
    old file and the next writer would lock the new one. An flock ends with the descriptor, also when a writer
    is killed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def write_config_text(path: Path, text: str, *, unchanged_since: bytes | None = None) -> None:
    """Replace ``path`` with ``text`` atomically, keeping the old file as ``<name>.bak``; with ``unchanged_since``,
    only if the file still holds those bytes (ConfigChanged otherwise: an edit by hand that landed while this write
    ran is kept, not overwritten)."""
    # A new file holds the printer's access code: readable by its owner only. An existing one keeps its mode.
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    with replacing(path, mode=mode) as file:
        file.write(text.encode("utf-8"))
        if unchanged_since is not None and _read_bytes(path) != unchanged_since:
            raise ConfigChanged
        if path.exists():
            shutil.copy2(path, path.with_name(path.name + ".bak"))


def edit_config(
    path: Path, edit: Callable[[TOMLDocument], None], *, version: str | None = None
) -> tuple[list[Problem], str]:
    """Apply ``edit`` to the parsed document, validate the result with the one schema, and write it; the only
    way bambupi writes its config file (read, check and write under :func:`config_lock`).

    With ``version``, the file must still be that version (ConfigChanged otherwise, nothing written). Raises
    ConfigWriteError (and writes nothing) when the edited file would have errors; returns the warnings and the
    version written.
    """
    with config_lock(path):
        raw = _read_bytes(path)
        if version is not None and file_version(raw) != version:
            raise ConfigChanged
        document = _parse_document(raw, path.name)
        edit(document)
        new_text = tomlkit.dumps(document)
        _, problems = parse_config(new_text, source=path.name)
        if errors(problems):
            raise ConfigWriteError(errors(problems))
        write_config_text(path, new_text, unchanged_since=raw)
    return problems, file_version(new_text.encode("utf-8"))


def read_document(path: Path) -> TOMLDocument:
    """The file as tomlkit reads it (empty when there is none); ConfigWriteError when it cannot be read as TOML."""
    return read_versioned(path)[0]


def read_versioned(path: Path) -> tuple[TOMLDocument, str]:
    """The file as tomlkit reads it and its version (of the same bytes)."""
    raw = _read_bytes(path)
    return _parse_document(raw, path.name), file_version(raw)


def _parse_document(raw: bytes, name: str) -> TOMLDocument:
    """The error is worded like ``bambupi check-config`` words it, never quoting a secret (tomlkit's own message
    quotes the character it stopped at, which may be part of an access code)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigWriteError([Problem("error", "", f"not UTF-8 text (byte {exc.start})", None, name)]) from None
    text = text.removeprefix("\ufeff")  # as check-config reads it: Notepad's byte-order mark is no key
    try:
        return tomlkit.parse(text)
    except TOMLKitError:  # KeyAlreadyPresent (a duplicate inside a table) is no ParseError
        _, problems = parse_config(text, source=name)
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
    """What the settings page needs to build its form: each section's title and keys, and which are secret, lists,
    choices or destinations of its secrets, the keys each kind of its tables takes, the sub-tables inside its tables
    (a printer's ``plug``), and per key its label, help, unit, control, bounds and default (``fields``).

    Sections come in the order the page shows them (:data:`bambupi.config.labels.SECTIONS`)."""
    order = [name for name in SECTIONS if name in SCHEMA] + [name for name in SCHEMA if name not in SECTIONS]
    return {name: _section_schema(SCHEMA[name], name) for name in order}


def _section_schema(section: Section, path: str) -> dict[str, Any]:
    title = SECTIONS.get(path)
    return {
        "title": title.title if title else path,
        "help": title.help if title else "",
        "fields": {key: _field_schema(section, path, key, option) for key, option in section.options.items()},
        "many": section.many,
        "keys": list(section.options),
        "required": [k for k, o in section.options.items() if o.required],
        "secret": [k for k, o in section.options.items() if o.secret],
        "lists": [k for k, o in section.options.items() if o.is_list],
        "destinations": list(DESTINATIONS.get(path, {})),
        "choices": {k: list(o.choices) for k, o in section.options.items() if o.choices},
        "kinds": {
            name: {"takes": list(kind.takes), "requires": list(kind.requires), "shown": list(kind.shown)}
            for name, kind in (section.kinds.of.items() if section.kinds else ())
        },
        "tables": {name: _section_schema(sub, f"{path}.{name}") for name, sub in section.tables.items()},
    }


def _field_schema(section: Section, path: str, key: str, option: Option) -> dict[str, Any]:
    """How the page shows one key. The control follows from the schema (its check, choices, secrecy, list-ness);
    the label table adds words and a hint only where the check cannot say (a time range is text to the schema)."""
    label = LABELS.get(f"{path}.{key}")
    out: dict[str, Any] = {
        "label": label.label if label else key,
        "help": label.help if label else "",
        "unit": label.unit if label else "",
        "advanced": label.advanced if label else False,
    }
    validator = option.validator
    if option.secret:
        out["control"] = "password"
    elif option.choices:
        out["control"] = "choices" if option.is_list else "choice"
    elif option.is_list:
        out["control"] = "list"
    elif validator is valid_bool:
        out["control"] = "switch"
    elif isinstance(validator, NumberRange):
        out.update(control="number", min=validator.minimum, max=validator.maximum, whole=validator.whole)
    elif label is not None and label.control is not None:
        out["control"] = label.control
    else:
        out["control"] = "text"
    if validator is valid_model:  # any model is taken (a newer one with a warning): offer the known ones
        out["suggestions"] = sorted(KNOWN_MODELS)
    default = _default(section, key, option)
    if default is not None:
        out["default"] = default
    return out


def _default(section: Section, key: str, option: Option) -> Any:
    """The value the service uses when the key is absent, as the page can show it; None when there is none to show
    (a secret, a value derived from another key, or one made of several fields such as ``web.listen``)."""
    if option.secret or option.default_from or len(option.into) > 1 or not dataclasses.is_dataclass(section.cls):
        return None
    name = option.into[0] if option.into else key
    found = next((f for f in dataclasses.fields(section.cls) if f.name == name), None)
    if found is None or found.default is dataclasses.MISSING:
        return None
    value = found.default
    if isinstance(value, tuple) and all(isinstance(v, str | int | float) for v in value):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    return value if isinstance(value, bool | int | float | str) else None


def _table_view(section: Section, table: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kind = _plain(table.get("kind"))
    for key in section.options:
        plain = _plain(table.get(key))
        out[key] = MASK if _secret_in(section, key, kind) and plain is not None else plain
    for name, sub in section.tables.items():
        raw = table.get(name)
        out[name] = _table_view(sub, raw) if isinstance(raw, dict) else None
    return out


def _plain(value: Any) -> Any:
    return value.unwrap() if isinstance(value, Item) else value


def _secret_in(section: Section, key: str, kind: Any) -> bool:
    """Whether ``key`` is a secret in a table of this ``kind``: as the schema says, unless the kind shows it (ntfy's
    server URL is an address; a Discord webhook's URL carries its token)."""
    option = section.options.get(key)
    if option is None or not option.secret:
        return False
    own = section.kinds.of.get(kind) if section.kinds is not None and isinstance(kind, str) else None
    return own is None or key not in own.shown


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
            table = _apply_table(section, table, value, name)
            if current is not None or len(table) > 0:  # a form sent with every key at its default adds no [name]
                document[name] = table


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
    _refuse_secrets_to_a_new_destination(section, table, values, path)
    # Whether a stored value is a secret (kept when left empty) is judged by the kind it was stored under.
    stored_kind = _plain(table.get("kind"))
    new_kind = values.get("kind", stored_kind)
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
        if _kept(section, key, value, stored_kind):
            if value == MASK and key not in table:  # a new entry, or one whose secret was removed by hand
                raise ValueError(f"{path}.{key}: no stored value to keep here; type it")
            if not _secret_in(section, key, new_kind):
                # The new kind would show it (a Discord webhook's URL kept as an ntfy server): it goes instead.
                table.pop(key, None)
            continue
        if value is None:
            table.pop(key, None)
        elif _is_scalar(value) or (option.is_list and isinstance(value, list) and all(map(_is_scalar, value))):
            table[key] = value
        else:
            raise ValueError(f"{path}.{key}: must be a string, number or true/false")
    _drop_kept_secrets_of_another_kind(section, table, values, stored_kind)
    return table


def _drop_kept_secrets_of_another_kind(
    section: Section, table: Table, values: dict[str, Any], stored_kind: Any
) -> None:
    """Remove the stored secrets the table's kind does not take that the save left as they were.

    The form cannot empty a secret (an empty field keeps it), so after a change of kind (ntfy to pushover) the old
    kind's stored secrets (ntfy's server URL, token) could never leave, and the save would be refused for keys the
    owner cannot remove. A secret of another kind typed in this save stays, and is refused by name.
    """
    if section.kinds is None:
        return
    kind = section.kinds.of.get(str(table.get("kind")))
    if kind is None:  # an unknown kind: its own error, and nothing to judge the keys by
        return
    own = {*kind.takes, *kind.requires}
    for key in section.kinds.specific - own:
        if key in table and _kept(section, key, values.get(key), stored_kind):
            table.pop(key)


def _refuse_secrets_to_a_new_destination(section: Section, table: Table, values: dict[str, Any], path: str) -> None:
    """ValueError naming the first stored secret of ``table`` that would be kept while where it is sent changes.

    A secret that is itself a destination (a Discord webhook URL) is no exception only in name: kept, it still
    goes where it went. Values are compared as the schema reads them, so ``192.168.1.60`` and
    ``http://192.168.1.60`` are one plug address.
    """
    schema_path = re.sub(r"\[[^\]]*\]", "", path)
    destinations = DESTINATIONS.get(schema_path, {})
    kind = _plain(table.get("kind"))
    changed = [
        words for key, words in destinations.items()
        if key in values and not _kept(section, key, values[key], kind)
        and _differs(section, key, table.get(key), values[key])
    ]
    if not changed:
        return
    for key in section.options:
        if key not in destinations and key in table and _kept(section, key, values.get(key), kind):
            owner = _OWNER_WORDS.get(schema_path, schema_path)
            raise ValueError(
                f"{path}.{key}: type the {key.replace('_', ' ')} again: the {owner}'s {changed[0]} changed"
            )


def _kept(section: Section, key: str, value: Any, kind: Any) -> bool:
    """Whether a save leaves this secret as the file holds it (empty or masked); never for a key that is no secret
    in a table of the ``kind`` it was stored under."""
    return _secret_in(section, key, kind) and value in (None, "", MASK)


def _differs(section: Section, key: str, old: Any, new: Any) -> bool:
    old = old.unwrap() if isinstance(old, Item) else old
    if new is None:  # removed: back to a default, which may well be another place
        return old is not None
    validate = section.options[key].validator
    try:
        new = validate(new)
    except (ValueError, TypeError):  # the schema refuses the save and names this key: no address to send to
        return False
    try:
        return bool(validate(old) != new)
    except (ValueError, TypeError):  # absent, or broken by hand: any valid new value is a new destination
        return True


def _is_scalar(value: Any) -> bool:
    return isinstance(value, bool | int | float | str)
