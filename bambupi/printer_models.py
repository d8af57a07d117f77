"""What differs between Bambu Lab printer models, as far as bambupi cares.

What the LAN protocol shows: X1-class printers send full reports, P1/A1 send deltas (the captures of newer models are
all answers to pushall, so whether they send deltas is not settled: they are taken as sending deltas, the case that
needs field-by-field merging, which bambupi does for every model); P1/A1 stream their camera
over TLS on port 6000, the others over RTSPS on port 322; A1/P1 have no chamber sensor (they report a constant 5);
newer models (H2D, H2S, P2S, X2D) pack temperatures into ``device.*``. Model strings come from the user's config,
so an unknown one gets a sensible default instead of an error.

Where the door sensor reports (real captures, ha-bambulab's fixtures): X1C/X1E in ``home_flag``, H2/P2S/X2D in ``stat``,
both bit 0x00800000; P1, A1 and A2L have no door sensor.

A leaf module beside the packages, not inside ``bambupi.printer``: the config's validators check a model against it,
and the printer side imports the config.
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
    extruders: int  # 2 on the dual-nozzle printers, which say per extruder which tray it has loaded
    lights: tuple[str, ...]  # the light nodes in its lights_report (H2 printers have a second chamber light bar)
    ssdp_codes: tuple[str, ...]  # what its SSDP announcements send as DevModel.bambu.com


def _info(
    model: str,
    *,
    chamber: bool,
    camera: CameraKind,
    full: bool,
    packed: bool,
    door: DoorField | None,
    extruders: int = 1,
    ssdp: tuple[str, ...] = (),
) -> ModelInfo:
    port = 6000 if camera == "tls6000" else 322
    lights = ["chamber_light"]
    if camera == "rtsps":  # the X1, H2, P2 and X2 printers' toolhead camera light
        lights.append("work_light")
    if model.startswith("H2"):
        lights.append("chamber_light2")
    return ModelInfo(model, chamber, camera, port, full, packed, door, extruders, tuple(lights), ssdp)


# SSDP codes: BambuStudio's device list (the two 3DPrinter-X1 names of early firmware) and Bambuddy's SSDP code map
# (frontend src/utils/printerModels.ts), which corrected the P-series codes (C11 P1P, C12 P1S, C13 X1E, N7 P2S).
_MODELS: dict[str, ModelInfo] = {
    info.model: info
    for info in (
        _info("X1C", chamber=True, camera="rtsps", full=True, packed=False, door="home_flag",
              ssdp=("BL-P001", "3DPRINTER-X1-CARBON")),
        _info("X1", chamber=True, camera="rtsps", full=True, packed=False, door="home_flag",
              ssdp=("BL-P002", "3DPRINTER-X1")),
        _info("X1E", chamber=True, camera="rtsps", full=True, packed=False, door="home_flag", ssdp=("C13", "BL-P003")),
        _info("P1P", chamber=False, camera="tls6000", full=False, packed=False, door=None, ssdp=("C11",)),
        _info("P1S", chamber=False, camera="tls6000", full=False, packed=False, door=None, ssdp=("C12",)),
        _info("A1", chamber=False, camera="tls6000", full=False, packed=False, door=None, ssdp=("N2S",)),
        _info("A1MINI", chamber=False, camera="tls6000", full=False, packed=False, door=None, ssdp=("N1",)),
        # A2L: deltas and packed temperatures like the H2 family, the port-6000 camera and no chamber sensor like the
        # A1; its AMS lite reports as unit 16.
        _info("A2L", chamber=False, camera="tls6000", full=False, packed=True, door=None, ssdp=("N9",)),
        _info("H2D", chamber=True, camera="rtsps", full=False, packed=True, door="stat", extruders=2, ssdp=("O1D",)),
        _info("H2DPRO", chamber=True, camera="rtsps", full=False, packed=True, door="stat", extruders=2,
              ssdp=("O1E", "O2D")),
        _info("H2S", chamber=True, camera="rtsps", full=False, packed=True, door="stat", ssdp=("O1S",)),
        _info("H2C", chamber=True, camera="rtsps", full=False, packed=True, door="stat", extruders=2,
              ssdp=("O1C", "O1C2")),
        _info("P2S", chamber=True, camera="rtsps", full=False, packed=True, door="stat", ssdp=("N7",)),
        _info("X2D", chamber=True, camera="rtsps", full=False, packed=True, door="stat", extruders=2, ssdp=("N6",)),
    )
}  # fmt: skip

# An unknown model is most likely a newer one: assume the newer traits (RTSPS camera, packed temperatures,
# a chamber sensor). Packed temperatures are only read when present, so this costs an older model nothing. Its door
# is unknown: a bit in a field we cannot place must not claim "door open".
_ALIASES = {"X1CARBON": "X1C", "A1M": "A1MINI", "X1ENTERPRISE": "X1E"}


KNOWN_MODELS: Final = frozenset(_MODELS)

# DevModel.bambu.com (upper case) -> model, for discovery.
MODEL_BY_SSDP_CODE: Final = {code.upper(): info.model for info in _MODELS.values() for code in info.ssdp_codes}


def normalise_model(model: str) -> str:
    return "".join(ch for ch in model.upper() if ch.isalnum())


def model_info(model: str) -> ModelInfo:
    """The traits of ``model`` ("P1S", "a1 mini", "X1-Carbon"...); unknown models get a default, never an error."""
    key = normalise_model(model)
    key = _ALIASES.get(key, key)
    if key in _MODELS:
        return _MODELS[key]
    return _info(key, chamber=True, camera="rtsps", full=False, packed=True, door=None)
