"""What differs between Bambu Lab printer models, as far as bambupi cares.

Facts from protocol.md: X1-class printers send full reports, P1/A1 send deltas; P1/A1 stream their camera
over TLS on port 6000, the others over RTSPS on port 322; A1/P1 have no chamber sensor (they report a constant 5);
newer models (H2D, H2S, P2S, X2D) pack temperatures into ``device.*``. Model strings come from the user's config,
so an unknown one gets a sensible default instead of an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

CameraKind = Literal["tls6000", "rtsps"]


@dataclass(frozen=True)
class ModelInfo:
    model: str  # normalised: upper case, no spaces or dashes ("A1 mini" -> "A1MINI")
    series: str  # the path segment of the support wiki, e.g. "x1", "p1", "a1-mini"
    has_chamber_sensor: bool
    camera_kind: CameraKind
    camera_port: int
    full_reports: bool  # True: every report carries every field; False: deltas after the first full one
    packed_temps: bool  # temperatures come packed as (target << 16) | current in device.*


def _info(model: str, series: str, *, chamber: bool, camera: CameraKind, full: bool, packed: bool) -> ModelInfo:
    port = 6000 if camera == "tls6000" else 322
    return ModelInfo(model, series, chamber, camera, port, full, packed)


_MODELS: dict[str, ModelInfo] = {
    info.model: info
    for info in (
        _info("X1C", "x1", chamber=True, camera="rtsps", full=True, packed=False),
        _info("X1", "x1", chamber=True, camera="rtsps", full=True, packed=False),
        # The wiki files X1E HMS articles under the X1 series.
        _info("X1E", "x1", chamber=True, camera="rtsps", full=True, packed=False),
        _info("P1P", "p1", chamber=False, camera="tls6000", full=False, packed=False),
        _info("P1S", "p1", chamber=False, camera="tls6000", full=False, packed=False),
        _info("A1", "a1", chamber=False, camera="tls6000", full=False, packed=False),
        _info("A1MINI", "a1-mini", chamber=False, camera="tls6000", full=False, packed=False),
        _info("H2D", "h2d", chamber=True, camera="rtsps", full=False, packed=True),
        _info("H2DPRO", "h2d", chamber=True, camera="rtsps", full=False, packed=True),
        _info("H2S", "h2s", chamber=True, camera="rtsps", full=False, packed=True),
        _info("H2C", "h2c", chamber=True, camera="rtsps", full=False, packed=True),
        _info("P2S", "p2s", chamber=True, camera="rtsps", full=False, packed=True),
        _info("X2D", "x2d", chamber=True, camera="rtsps", full=False, packed=True),
    )
}

# An unknown model is most likely a newer one: assume the newer traits (RTSPS camera, packed temperatures,
# a chamber sensor). Packed temperatures are only read when present, so this costs an older model nothing.
_UNKNOWN_SERIES = ""
_ALIASES = {"X1CARBON": "X1C", "A1M": "A1MINI", "X1ENTERPRISE": "X1E"}


KNOWN_MODELS: Final = frozenset(_MODELS)


def normalise_model(model: str) -> str:
    return "".join(ch for ch in model.upper() if ch.isalnum())


def model_info(model: str) -> ModelInfo:
    """The traits of ``model`` ("P1S", "a1 mini", "X1-Carbon"...); unknown models get a default, never an error."""
    key = normalise_model(model)
    key = _ALIASES.get(key, key)
    if key in _MODELS:
        return _MODELS[key]
    return _info(key, _UNKNOWN_SERIES, chamber=True, camera="rtsps", full=False, packed=True)
