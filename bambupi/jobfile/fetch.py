"""Fetching the job's 3MF from the printer: which paths to try, and the whole fetch under one deadline.

Where the file is (ha-bambulab's notes from real printers, pybambu ``models.py``): a LAN print from Bambu Studio
reports ``gcode_file`` "36mm.gcode.3mf" (P1) or "/data/Metadata/plate_1.gcode" (X1, a path inside the 3MF on a
RAM disk FTP cannot reach) with ``subtask_name`` "36mm"; the file is "/36mm.gcode.3mf". A cloud or MakerWorld print
reports the 3MF's name or again a plate path, and the file is "/cache/<subtask_name>.3mf". So: the name
``gcode_file`` gives when it is a 3MF, then ``subtask_name`` + ".3mf" and + ".gcode.3mf", each in /cache/ then /.
The plate is the one in "Metadata/plate_<n>.gcode" when ``gcode_file`` names one.

A 3MF can be hundreds of MB; only its zip directory and two small members are needed. So the fetch reads the file's
tail, then just those members, with FTP ``REST`` offsets, into a sparse file of the same size that :mod:`zipfile`
then reads as usual. A server that refuses offsets, or a member that will not unpack from the pieces, gets the whole
file read (up to the size limit) instead. Either way the file lives in ``scratch`` and is deleted.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import trio

from bambupi.jobfile.ftps import (
    FTPS_PORT,
    DataChannelError,
    FtpsClient,
    FtpsTarget,
    RangeRefused,
    ScratchError,
    TooLarge,
)
from bambupi.jobfile.threemf import (
    SLICE_INFO,
    SLICE_INFO_MAX_BYTES,
    THUMBNAIL_MAX_BYTES,
    JobFile,
    JobFileError,
    central_directory,
    read_job_file,
)
from bambupi.printer_models import normalise_model

log = logging.getLogger(__name__)

__all__ = ["FTPS_PORT", "FtpsTarget", "JobFileLimits", "candidate_paths", "fetch_job_file"]

FOLDERS: Final = ("/cache/", "/")
TAIL_BYTES: Final = 64 * 1024 + 22  # the zip's end record with the longest comment it may carry
MEMBER_SLACK: Final = 64 * 1024  # a member's local header (name, extra field) around its compressed bytes
PLAIN_DATA_MODELS: Final = frozenset({"A1", "A1MINI"})  # Bambuddy: their data channel may need to be plain
_PLATE: Final = re.compile(r"(?:^|/)Metadata/plate_(\d{1,3})\.gcode$", re.IGNORECASE)


@dataclass(frozen=True)
class JobFileLimits:
    max_bytes: int = 200 * 1024 * 1024  # [history] max_file_mb: a larger 3MF is refused with the reason
    deadline_s: float = 120.0  # [history] fetch_timeout_s: the whole fetch, every candidate path


def candidate_paths(state: Mapping[str, Any]) -> tuple[tuple[str, ...], int | None]:
    """The paths to try, most likely first, and the plate when the printer named it (see the module's doc)."""
    gcode_file = _name(state.get("gcode_file"))
    subtask = _name(state.get("subtask_name"))
    plate_match = _PLATE.search(gcode_file)
    plate = int(plate_match.group(1)) if plate_match and int(plate_match.group(1)) > 0 else None
    names: list[str] = []
    if gcode_file.lower().endswith(".3mf"):
        names.append(gcode_file)
    if subtask:
        names += [subtask] if subtask.lower().endswith(".3mf") else [f"{subtask}.3mf", f"{subtask}.gcode.3mf"]
    paths: list[str] = []
    for name in names:
        for path in [name] if name.startswith("/") else [folder + name for folder in FOLDERS]:
            if path not in paths:
                paths.append(path)
    return tuple(paths), plate


def _name(value: Any) -> str:
    """A name from the report fit for an FTP command: one line (the reducer already replaced control characters)."""
    if not isinstance(value, str) or "\r" in value or "\n" in value:
        return ""
    return value.strip()


async def fetch_job_file(
    target: FtpsTarget, state: Mapping[str, Any], *, scratch: Path, limits: JobFileLimits
) -> JobFile:
    """Fetch and read the job's 3MF; :class:`JobFileError` with the reason when that cannot be done.

    The blocking FTPS exchange runs in a worker thread under ``limits.deadline_s`` for all of it: past the deadline
    (or when this task is cancelled) the sockets are shut from here, and the worker's next read fails.
    """
    paths, plate = candidate_paths(state)
    if not paths:
        raise JobFileError("the printer named no file for this job (no gcode_file or subtask_name)")
    fetch = _Fetch(target, paths, plate, scratch, limits, time.monotonic() + limits.deadline_s)

    async def watchdog() -> None:
        await trio.sleep(limits.deadline_s)
        fetch.abort()

    failure: JobFileError | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watchdog)
        try:
            job = await trio.to_thread.run_sync(fetch.run, abandon_on_cancel=True)
        except JobFileError as exc:
            failure = exc  # raised below, itself, not in the nursery's exception group
        except trio.Cancelled:
            fetch.abort()  # the abandoned worker fails at once and deletes its file
            raise
        finally:
            nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return job


class _Fetch:
    """One fetch, run in a worker thread; :meth:`abort` from any thread."""

    def __init__(self, target: FtpsTarget, paths: tuple[str, ...], plate: int | None, scratch: Path,
                 limits: JobFileLimits, deadline: float) -> None:  # fmt: skip
        self.target = target
        self.paths = paths
        self.plate = plate
        self.scratch = scratch
        self.limits = limits
        self.deadline = deadline
        self._client: FtpsClient | None = None
        self._aborted = False

    def abort(self) -> None:
        self._aborted = True
        if self._client is not None:
            self._client.abort()

    def run(self) -> JobFile:
        try:
            return self._run(plain_data=False)
        except DataChannelError:
            if normalise_model(self.target.model) not in PLAIN_DATA_MODELS:
                raise
            log.info("%s: the FTPS data channel failed; trying a plain one, as A1 printers may need",
                     self.target.printer_id)  # fmt: skip
            return self._run(plain_data=True)

    def _run(self, *, plain_data: bool) -> JobFile:
        client = FtpsClient(self.target, deadline=self.deadline, plain_data=plain_data)
        self._client = client
        if self._aborted:
            client.abort()
        try:
            client.connect()
            for path in self.paths:
                size = client.size(path)
                if size is not None:
                    return self._fetch(client, path, size)
            tried = ", ".join(self.paths)
            raise JobFileError(
                f"file not found on the printer (tried {tried}; is 'store sent files on external storage' on?)"
            )
        finally:
            client.close()

    def _fetch(self, client: FtpsClient, path: str, size: int) -> JobFile:
        if size > self.limits.max_bytes:
            raise TooLarge(self.limits.max_bytes, size)
        try:
            return self._fetch_to_scratch(client, path, size)
        except OSError as exc:  # the client's own socket errors are JobFileErrors: this is the box's disk
            raise ScratchError(exc) from None

    def _fetch_to_scratch(self, client: FtpsClient, path: str, size: int) -> JobFile:
        self.scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.scratch, prefix="job-", suffix=".3mf") as file:
            local = Path(file.name)
            try:
                read = _fetch_pieces(client, path, size, file)
                job = read_job_file(local, remote_path=path, plate=self.plate)
            except (RangeRefused, _PiecesUnusable) as why:
                log.info("%s: reading all of %s (%s)", self.target.printer_id, path, why)
                file.seek(0)
                file.truncate()
                read = client.retrieve(path, file, max_bytes=self.limits.max_bytes)
                file.flush()
                job = read_job_file(local, remote_path=path, plate=self.plate)
            log.info("%s: read %s from %s (%d of its %d bytes)", self.target.printer_id, SLICE_INFO, path, read, size)
            return job


class _PiecesUnusable(Exception):
    """The pieces fetched by offset do not make a readable zip: read the whole file."""


def _fetch_pieces(client: FtpsClient, path: str, size: int, file: IO[bytes]) -> int:
    """Fill a sparse copy of the remote file with its tail, zip directory, slice_info and thumbnail members."""
    file.truncate(size)
    tail_start = max(0, size - TAIL_BYTES)
    read = _piece(client, path, file, tail_start, size - tail_start)
    file.seek(tail_start)
    directory = central_directory(file.read(size - tail_start), size)  # not a zip: a definite answer
    if directory.offset < tail_start:
        read += _piece(client, path, file, directory.offset, tail_start - directory.offset)
    file.flush()
    file.seek(0)
    try:
        with zipfile.ZipFile(file) as archive:
            infos = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise _PiecesUnusable(f"its directory did not read: {exc}") from None
    starts = sorted({info.header_offset for info in infos} | {directory.offset})
    wanted = {SLICE_INFO: SLICE_INFO_MAX_BYTES}
    # The thumbnail's plate is known only after slice_info is read; every plate picture is small, take them all.
    wanted |= {info.filename: THUMBNAIL_MAX_BYTES for info in infos if _is_plate_png(info.filename)}
    for info in infos:
        limit = wanted.get(info.filename)
        if limit is None:
            continue
        end = next((s for s in starts if s > info.header_offset), directory.offset)
        if end - info.header_offset > limit + MEMBER_SLACK:
            if info.filename == SLICE_INFO:
                raise JobFileError(f"not a 3MF this box reads: its slice_info is over {limit // 1024} KiB")
            continue  # a picture too large to keep: the job goes without it
        if info.header_offset < tail_start:  # what lies in the tail is here already
            read += _piece(client, path, file, info.header_offset, min(end, tail_start) - info.header_offset)
    file.flush()
    return read


def _is_plate_png(name: str) -> bool:
    return name.startswith("Metadata/plate_") and name.endswith(".png") and name[15:-4].isdigit()


def _piece(client: FtpsClient, path: str, file: IO[bytes], offset: int, length: int) -> int:
    file.seek(offset)
    return client.retrieve(path, file, offset=offset, length=length, max_bytes=length)

