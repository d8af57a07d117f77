"""What differs between Bambu Lab printer models, as far as bambupi cares.

What the LAN protocol shows: X1-class printers send full reports, P1/A1 send deltas; P1/A1 stream their camera
over TLS on port 6000, the others over RTSPS on port 322; A1/P1 have no chamber sensor (they report a constant 5);
newer models (H2D, H2S, P2S, X2D) pack temperatures into ``device.*``. Model strings come from the user's config,
so an unknown one gets a sensible default instead of an error.

Where the door sensor reports (real captures, ha-bambulab's fixtures): X1C/X1E in ``home_flag``, H2/P2S/X2D in ``stat``,
both bit 0x00800000; P1, A1 and A2L have no door sensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

CameraKind = Literal["tls6000", "rtsps"]
DoorField = Literal["home_flag", "stat"]


@dataclass(frozen=True)
class ModelInfo:
    model: str  # normalised: upper case, no spaces or dashes ("A1 mini" -> "A1MINI")
    has_chamber_sensor: bool
    camera_kind: CameraKind
    camera_port: int
    full_reports: bool  # True: every report carries every field; False: deltas after the first full one
    packed_temps: bool  # temperatures come packed as (target << 16) | current in device.*
    door: DoorField | None  # the report field whose bit 0x00800000 says "door open"; None: no sensor


def _info(
    model: str, *, chamber: bool, camera: CameraKind, full: bool, packed: bool, door: DoorField | None
) -> ModelInfo:
    port = 6000 if camera == "tls6000" else 322
    return ModelInfo(model, chamber, camera, port, full, packed, door)


_MODELS: dict[str, ModelInfo] = {
    info.model: info
    for info in (
        _info("X1C", chamber=True, camera="rtsps", full=True, packed=False, door="home_flag"),
        _info("X1", chamber=True, camera="rtsps", full=True, packed=False, door="home_flag"),
        _info("X1E", chamber=True, camera="rtsps", full=True, packed=False, door="home_flag"),
        _info("P1P", chamber=False, camera="tls6000", full=False, packed=False, door=None),
        _info("P1S", chamber=False, camera="tls6000", full=False, packed=False, door=None),
        _info("A1", chamber=False, camera="tls6000", full=False, packed=False, door=None),
        _info("A1MINI", chamber=False, camera="tls6000", full=False, packed=False, door=None),
        # A2L: deltas and packed temperatures like the H2 family, the port-6000 camera and no chamber sensor like the
        # A1; its AMS lite reports as unit 16.
        _info("A2L", chamber=False, camera="tls6000", full=False, packed=True, door=None),
        _info("H2D", chamber=True, camera="rtsps", full=False, packed=True, door="stat"),
        _info("H2DPRO", chamber=True, camera="rtsps", full=False, packed=True, door="stat"),
        _info("H2S", chamber=True, camera="rtsps", full=False, packed=True, door="stat"),
        _info("H2C", chamber=True, camera="rtsps", full=False, packed=True, door="stat"),
        _info("P2S", chamber=True, camera="rtsps", full=False, packed=True, door="stat"),
        _info("X2D", chamber=True, camera="rtsps", full=False, packed=True, door="stat"),
    )
}

# An unknown model is most likely a newer one: assume the newer traits (RTSPS camera, packed temperatures,
# a chamber sensor). Packed temperatures are only read when present, so this costs an older model nothing. Its door
# is unknown: a bit in a field we cannot place must not claim "door open".
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
    return _info(key, chamber=True, camera="rtsps", full=False, packed=True, door=None)
