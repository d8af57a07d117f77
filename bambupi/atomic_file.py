"""Replacing a file atomically: readers see the old file or the new one, never half of one, even after a power cut.

The box runs from an SD card and can lose power at any moment; every file the service or the image's first boot
rewrites (certificate pins, the config file, snapshots, the first boot's files) is written here: into a temporary
file of its own in the same folder, flushed to the card, renamed over the old one, and the folder flushed so the
rename itself survives. A write that fails leaves the old file as it was and no temporary file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def replacing(path: Path, *, mode: int = 0o600, owner: tuple[int, int] | None = None) -> Iterator[BinaryIO]:
    """Write the new content into the file this yields; ``path`` is replaced when the block ends without an error.

    The file has ``mode`` (and ``owner``, a uid and gid) from its creation: a file holding a secret is never readable
    by others, not even briefly. An error raised in the block (say, a check that the old file did not change
    meanwhile) leaves ``path`` untouched.
    """
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    # A temporary name of its own for every write: two writers of one path never share (and break) one.
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        if owner is not None:
            os.fchown(fd, *owner)
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    folder_fd = os.open(folder, os.O_DIRECTORY)
    try:
        os.fsync(folder_fd)
    finally:
        os.close(folder_fd)


def write_atomically(path: Path, data: bytes, *, mode: int = 0o600, owner: tuple[int, int] | None = None) -> None:
    """Replace ``path`` with ``data`` (see :func:`replacing`)."""
    with replacing(path, mode=mode, owner=owner) as file:
        file.write(data)
