"""Reading a job's 3MF on disk: the plate's planned filaments, time and weight, and its thumbnail (pure, bounded).

A 3MF is a zip. Bambu Studio writes ``Metadata/slice_info.config`` (XML: one ``<plate>`` per sliced plate, a
``<filament used_g=... used_m=...>`` per filament the plate uses, ``prediction`` and ``weight`` metadata) and
``Metadata/plate_<n>.png`` (the plate's picture). Only those two members are read, each up to a bound counted in
the bytes actually decompressed, not the sizes the zip's directory claims (a zip bomb lies there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

THUMBNAIL_MAX_BYTES: Final = 256 * 1024
SLICE_INFO_MAX_BYTES: Final = 1024 * 1024  # real ones are a few KB; generous for many plates and filaments
SLICE_INFO: Final = "Metadata/slice_info.config"


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
