"""The one atomic file write: old or new content, never half; the mode from the start; nothing left on failure."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bambupi.atomic_file import replacing, write_atomically


def test_a_write_replaces_the_file_with_its_mode_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "folder" / "pins.json"
    write_atomically(path, b"old")
    assert path.read_bytes() == b"old" and stat.S_IMODE(path.stat().st_mode) == 0o600
    write_atomically(path, b"new", mode=0o644)
    assert path.read_bytes() == b"new" and stat.S_IMODE(path.stat().st_mode) == 0o644
    assert os.listdir(path.parent) == ["pins.json"]


def test_an_error_while_writing_keeps_the_old_file_and_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "bambupi.toml"
    write_atomically(path, b"kept")
    with pytest.raises(RuntimeError), replacing(path) as file:
        file.write(b"half of the new")
        raise RuntimeError("the file changed meanwhile")  # a check the caller makes before the replace
    assert path.read_bytes() == b"kept" and os.listdir(tmp_path) == ["bambupi.toml"]


def test_a_replace_that_fails_leaves_no_temporary_file(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()  # a folder where the file should go: the rename itself fails
    with pytest.raises(IsADirectoryError):
        write_atomically(tmp_path / "taken", b"new")
    assert os.listdir(tmp_path) == ["taken"] and os.listdir(tmp_path / "taken") == []
