"""Live grams: how much of a job's planned filament is used by now (pure).

The 3MF names each filament's planned grams for the plate; the printer reports the layer it is on. A print lays
its filament down layer by layer, so the used share is the layer's share of all layers (the percent when the
printer reports no layers), per filament and in total, never more than planned. It is an estimate: a plate's first
layers are often wider than its last, and a purge tower uses what the slicer planned for it all along.

The hub calls :func:`live_job_file` every time it builds a printer object (``printer.job_file``, docs/api.md).
A filament whose ``used_g`` is already set keeps it: the recorder fixes the used grams when the job ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def progress_fraction(state: Mapping[str, Any]) -> float | None:
    """The share of the job printed, 0..1: layer / total layers, else percent / 100; None when neither is known."""
    layer, total = _number(state.get("layer")), _number(state.get("total_layers"))
    percent = _number(state.get("percent"))
    if total is not None and total > 0 and layer is not None:
        return _clamp(layer / total)
    if percent is not None:
        return _clamp(percent / 100.0)
    return None


def used_grams(planned_g: float | None, fraction: float | None) -> float | None:
    """``planned_g`` × ``fraction``, never above planned nor below nothing, to 0.01 g; None when either is unknown."""
    if planned_g is None or fraction is None:
        return None
    return round(max(0.0, planned_g) * _clamp(fraction), 2)


def live_job_file(info: Mapping[str, Any] | None, state: Mapping[str, Any]) -> dict[str, Any] | None:
    """``info`` (the recorder's ``job_file``) with ``used_g`` filled in per filament and in total from ``state``'s
    progress. Filaments whose used grams are fixed keep them; the total is their sum (or the plate's planned weight
    × progress when the file names no filaments)."""
    if info is None:
        return None
    fraction = progress_fraction(state)
    filaments = []
    for filament in info.get("filaments") or ():
        used = filament.get("used_g")
        if used is None:
            used = used_grams(filament.get("planned_g"), fraction)
        filaments.append({**filament, "used_g": used})
    if filaments:
        known = [f["used_g"] for f in filaments if f["used_g"] is not None]
        total = round(sum(known), 2) if len(known) == len(filaments) else None
    else:
        total = info.get("used_g")
        if total is None:
            total = used_grams(info.get("planned_g"), fraction)
    return {**info, "filaments": filaments, "used_g": total}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:  # NaN is no number
        return None
    return float(value)


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))
