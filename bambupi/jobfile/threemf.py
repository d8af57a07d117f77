"""Reading a job's 3MF on disk: the plate's planned filaments, time and weight, and its thumbnail (pure, bounded).

A 3MF is a zip. Bambu Studio writes ``Metadata/slice_info.config`` (XML: one ``<plate>`` per sliced plate with
``index``, ``prediction`` (s) and ``weight`` (g) metadata and a ``<filament id type color used_m used_g
tray_info_idx>`` per filament the plate uses) and ``Metadata/plate_<n>.png`` (the plate's picture). Only those two
members are read, each up to a bound counted in bytes actually decompressed, never in the sizes the zip's directory
claims (a zip bomb lies there), and only after the zip's central directory was found to be of a sane size.
"""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET
import zipfile
import zlib
from dataclasses import dataclass
from lzma import LZMAError
from pathlib import Path
from typing import Final

THUMBNAIL_MAX_BYTES: Final = 256 * 1024
SLICE_INFO_MAX_BYTES: Final = 1024 * 1024  # real ones are a few KB; generous for many plates and filaments
CENTRAL_DIRECTORY_MAX_BYTES: Final = 4 * 1024 * 1024  # a Bambu 3MF has tens of members; 4 MiB is ~40,000 names
SLICE_INFO: Final = "Metadata/slice_info.config"
_EOCD: Final = b"PK\x05\x06"
_EOCD_SIZE: Final = 22
_EOCD_SEARCH: Final = _EOCD_SIZE + 65535  # the record sits within a 64 KiB comment of the end
_ZIP64_LOCATOR: Final = b"PK\x06\x07"
_ZIP64_END: Final = b"PK\x06\x06"
_COLOUR: Final = re.compile(r"#?([0-9A-Fa-f]{6})([0-9A-Fa-f]{2})?")


class JobFileError(Exception):
    """Why the job's file could not be fetched or read. ``str()`` is the reason a person reads; never a secret,
    never a raw body."""


@dataclass(frozen=True)
class PlannedFilament:
    index: int  # the 3MF's filament id (1-based), as in slice_info.config
    material: str  # "PLA", "PETG", ...
    colour: str  # "#RRGGBB" (upper-case hex), "" if unknown
    grams: float  # planned grams for this plate
    metres: float | None
    tray_info_idx: str | None  # the filament preset id (e.g. "GFA00"), when the 3MF names it


@dataclass(frozen=True)
class JobFile:
    path: str  # where it was found on the printer, e.g. "/cache/benchy.3mf"
    plate: int  # 1-based plate index
    predicted_s: float | None  # the slicer's prediction
    weight_g: float | None  # the plate's planned total weight
    filaments: tuple[PlannedFilament, ...]
    thumbnail_png: bytes | None  # Metadata/plate_<n>.png, at most THUMBNAIL_MAX_BYTES, else None


@dataclass(frozen=True)
class PlateInfo:
    """One ``<plate>`` of slice_info.config."""

    index: int
    predicted_s: float | None
    weight_g: float | None
    filaments: tuple[PlannedFilament, ...]


@dataclass(frozen=True)
class CentralDirectory:
    """Where a zip's central directory lies, from its end record: what a partial fetch needs to read first."""

    offset: int
    size: int
    entries: int


def central_directory(tail: bytes, file_size: int) -> CentralDirectory:
    """The central directory named by the end record found in ``tail`` (the last bytes of a ``file_size`` file).

    :class:`JobFileError` when there is no end record (not a zip), the directory lies outside the file, or it is
    larger than :data:`CENTRAL_DIRECTORY_MAX_BYTES` (reading it would cost the Pi's memory).
    """
    at = tail.rfind(_EOCD, max(0, len(tail) - _EOCD_SEARCH))
    if at < 0 or len(tail) - at < _EOCD_SIZE:
        raise JobFileError("not a 3MF: the file is not a zip archive")
    entries, size, offset = struct.unpack("<6xHII", tail[at + 4 : at + 20])
    end = file_size - (len(tail) - at)  # where the end record starts in the file
    locator = at - 20
    if locator >= 0 and tail[locator : locator + 4] == _ZIP64_LOCATOR:
        # Zip64 (a writer may use it for any file): the directory's place is in the zip64 end record.
        (record,) = struct.unpack("<8xQ", tail[locator : locator + 16])
        where = record - (file_size - len(tail))
        if where < 0 or tail[where : where + 4] != _ZIP64_END:
            raise JobFileError("not a 3MF: the zip64 end record is not where the zip says")
        entries, size, offset = struct.unpack("<32xQQQ", tail[where : where + 56])
        end = record
    if offset + size > end:
        raise JobFileError("not a 3MF: the zip's directory points outside the file")
    if size > CENTRAL_DIRECTORY_MAX_BYTES:
        raise JobFileError(f"not a 3MF this box reads: its zip directory is {size // 1024} KiB")
    return CentralDirectory(offset, size, entries)


def read_job_file(file: Path, *, remote_path: str, plate: int | None) -> JobFile:
    """The plate's filaments, times and thumbnail from the 3MF at ``file``.

    ``plate`` None: the plate the printer reported is unknown; the only plate in slice_info, else the one whose
    G-code the file holds, else the first. Every failure is a :class:`JobFileError` saying what is wrong.
    """
    try:
        with file.open("rb") as raw:
            raw.seek(0, 2)
            file_size = raw.tell()
            raw.seek(max(0, file_size - _EOCD_SEARCH))
            central_directory(raw.read(), file_size)  # bounds the directory before zipfile reads all of it
            raw.seek(0)
            with zipfile.ZipFile(raw) as archive:
                names = set(archive.namelist())
                if SLICE_INFO not in names:
                    raise JobFileError("not a sliced 3MF: it has no Metadata/slice_info.config")
                plates = parse_slice_info(_read_member(archive, SLICE_INFO, SLICE_INFO_MAX_BYTES, what="slice_info"))
                chosen = choose_plate(plates, plate, names)
                thumbnail_name = f"Metadata/plate_{chosen.index}.png"
                thumbnail = None
                if thumbnail_name in names:
                    try:
                        thumbnail = _read_member(archive, thumbnail_name, THUMBNAIL_MAX_BYTES, what="thumbnail")
                    except JobFileError:
                        thumbnail = None  # too large or damaged: the job is worth recording without its picture
                    if thumbnail is not None and not thumbnail.startswith(b"\x89PNG\r\n\x1a\n"):
                        thumbnail = None
    except zipfile.BadZipFile as exc:
        raise JobFileError(f"not a 3MF: the zip archive is damaged ({_short(exc)})") from None
    except OSError as exc:
        raise JobFileError(f"cannot read the fetched 3MF ({exc.strerror or type(exc).__name__})") from None
    return JobFile(remote_path, chosen.index, chosen.predicted_s, chosen.weight_g, chosen.filaments, thumbnail)


def _read_member(archive: zipfile.ZipFile, name: str, limit: int, *, what: str) -> bytes:
    """At most ``limit`` decompressed bytes of one member, counted as they come out of the decompressor."""
    out = bytearray()
    try:
        with archive.open(name) as member:
            while chunk := member.read(64 * 1024):
                out += chunk
                if len(out) > limit:
                    raise JobFileError(f"not a 3MF this box reads: its {what} is larger than {limit // 1024} KiB")
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError, RuntimeError, zlib.error, LZMAError) as exc:
        # CRC mismatch, a truncated stream, an unknown compression method, an encrypted member, a bad deflate stream
        raise JobFileError(f"not a 3MF: its {what} cannot be unpacked ({_short(exc)})") from None
    return bytes(out)


def parse_slice_info(data: bytes) -> tuple[PlateInfo, ...]:
    """Every ``<plate>`` of a slice_info.config. A document type declaration is refused outright: Bambu Studio
    writes none, and entities are how XML bombs and external references get in."""
    if len(data) > SLICE_INFO_MAX_BYTES:
        raise JobFileError(f"not a 3MF this box reads: its slice_info is over {SLICE_INFO_MAX_BYTES // 1024} KiB")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise JobFileError("not a 3MF this box reads: its slice_info declares a document type")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise JobFileError(f"not a 3MF: its slice_info is not well-formed XML ({_short(exc)})") from None
    plates = []
    for position, node in enumerate(root.iter("plate"), start=1):
        meta = {m.get("key"): m.get("value") for m in node.findall("metadata")}
        index = _int(meta.get("index"))
        plates.append(
            PlateInfo(
                index=index if index is not None and index > 0 else position,
                predicted_s=_positive(meta.get("prediction")),
                weight_g=_positive(meta.get("weight")),
                filaments=tuple(f for f in (_filament(n) for n in node.findall("filament")) if f is not None),
            )
        )
    if not plates:
        raise JobFileError("not a sliced 3MF: its slice_info lists no plate")
    return tuple(plates)


def choose_plate(plates: tuple[PlateInfo, ...], plate: int | None, names: set[str]) -> PlateInfo:
    """The plate being printed (see :func:`read_job_file`)."""
    if plate is not None:
        for info in plates:
            if info.index == plate:
                return info
        listed = ", ".join(str(p.index) for p in plates)
        raise JobFileError(f"the 3MF has no plate {plate} in its slice_info (it lists plate {listed})")
    if len(plates) == 1:
        return plates[0]
    with_gcode = [p for p in plates if f"Metadata/plate_{p.index}.gcode" in names]
    return with_gcode[0] if len(with_gcode) == 1 else plates[0]


def _filament(node: ET.Element) -> PlannedFilament | None:
    index = _int(node.get("id"))
    grams = _number(node.get("used_g"))
    if index is None or index < 1 or grams is None or grams < 0:
        return None
    colour = _COLOUR.fullmatch((node.get("color") or "").strip())
    tray_info_idx = (node.get("tray_info_idx") or "").strip()
    return PlannedFilament(
        index=index,
        material=(node.get("type") or "").strip()[:32],
        colour=f"#{colour.group(1).upper()}" if colour else "",
        grams=grams,
        metres=_number(node.get("used_m")),
        tray_info_idx=tray_info_idx[:32] or None,
    )


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and value == value and abs(value) != float("inf") else None


def _positive(text: str | None) -> float | None:
    value = _number(text)
    return value if value is not None and value > 0 else None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _short(exc: BaseException) -> str:
    return str(exc)[:120] or type(exc).__name__
