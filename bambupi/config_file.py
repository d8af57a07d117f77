"""Writing the config file back: tomlkit keeps the user's comments and order; writes are atomic.

Atomic means: the new text goes to a temporary file in the same folder, is flushed to disk, and only then
renamed over the old file, whose previous content is kept as ``<name>.bak``. A crash at any point leaves either
the old or the new file complete, never a half-written one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import tomlkit
from tomlkit.toml_document import TOMLDocument

from bambupi.config import Problem, errors, parse_config


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
    text = path.read_text("utf-8") if path.exists() else ""
    document = tomlkit.parse(text)
    edit(document)
    new_text = tomlkit.dumps(document)
    _, problems = parse_config(new_text, source=path.name)
    if errors(problems):
        raise ConfigWriteError(errors(problems))
    write_atomically(path, new_text)
    return problems


def set_password_hash(path: Path, password_hash: str) -> None:
    def edit(document: TOMLDocument) -> None:
        if "web" not in document:
            document["web"] = tomlkit.table()
        document["web"]["admin_password_hash"] = password_hash

    edit_config(path, edit)
