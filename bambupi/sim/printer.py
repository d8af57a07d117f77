"""A simulated Bambu printer: the state machine behind ``device/<serial>/report`` and ``device/<serial>/request``.

It heats, levels, prints layer by layer, pauses, fails and raises HMS codes the way the real printers report them:
X1 models send full reports, the others deltas carrying only what changed (``msg: 1``) and a full one (``msg: 0``)
when asked with ``pushall``; the H2 family, P2S, X2D and A2L pack temperatures into ``device.*`` (each model's facts
come from :mod:`bambupi.printer_models`). The report
layout is built by pure functions (:func:`render_report`, :func:`report_delta`); :class:`SimulatedPrinter` owns the
state, the trio clock and the publishing.

Example (the tests drive it directly)::

    printer = sim.printer
    printer.start_print("Benchy", layers=120, minutes=10)
    await printer.wait_until(lambda p: p.gcode_state == "RUNNING")
    printer.pause()
    printer.set_hms([(0x07002000, 0x00020001)])
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import trio

from bambupi.printer_models import ModelInfo, model_info

log = logging.getLogger(__name__)

JSON = dict[str, Any]

CANCELLED_ERROR: Final = 0x0300400C  # print_error 0300_400C: "task was canceled"
DEFAULT_FAILURE: Final = 0x0C008009  # an arbitrary non-cancel print_error for simulated failures
VERIFY_FAILED_HMS: Final = (0x05000500, 0x00010007)  # 0500_0500_0001_0007: command verification failed
VERIFY_FAILED_REASON: Final = "mqtt message verify failed"  # a refused command's reply, as real printers word it
NO_SUCH_LIGHT_REASON: Final = "did not find the valid led"  # a P2S's reply to a light it does not have
# A real stop (P2S): FAILED with print_error 0 first, 0300_400C this many seconds later (simulated time).
STOP_CANCEL_DELAY_S: Final = 4.6
SIGNED_COMMANDS_BIT: Final = 0x20000000  # in `fun`: controls need a signature
DOOR_OPEN_BIT: Final = 0x00800000  # in `stat` (H2/P2S/X2D) or `home_flag` (X1), as the model reports its door

AMBIENT_C: Final = 25.0
SUB_STEP_S: Final = 1.0  # physics resolution in simulated seconds, whatever the time scale
SPEED_MAGNITUDE: Final = {1: 50, 2: 100, 3: 124, 4: 166}  # spd_lvl -> spd_mag (%)

# stg_cur stage ids (BambuStudio's list), those the simulator passes through
STAGE_PRINTING: Final = 0
STAGE_BED_LEVELING: Final = 1
STAGE_HEATBED_PREHEATING: Final = 2
STAGE_HOTEND_HEATING: Final = 7
STAGE_HOMING: Final = 13
STAGE_NOZZLE_CLEANING: Final = 14
STAGE_USER_PAUSE: Final = 16


# --------------------------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelProfile:
    """How the simulator plays one model: the model's facts come from :mod:`bambupi.printer_models` (``info``),
    the rest is what only a simulator needs (its firmware's report shapes, what ships in the box)."""

    name: str
    idle_stage: int  # stg_cur when idle: -1 X1 and H2, 255 P1, 0 A1
    ams_lite: bool  # A1 family: AMS lite, no temperature or humidity sensor
    ams_ht: bool  # H2D ships with an AMS HT (unit id 128) beside the AMS 2 Pro
    slot_states: bool  # X1/H2-era firmware: every AMS slot carries a `state`, an empty one {"id", "state": 0}
    vt_tray_too: bool  # beside vir_slot, the (right) holder repeated as vt_tray: X1 and H2D only
    nozzle_type: str
    firmware: str
    base_fun: int

    @property
    def info(self) -> ModelInfo:
        return model_info(self.name)

    @property
    def full_reports(self) -> bool:
        return self.info.full_reports

    @property
    def chamber_sensor(self) -> bool:  # without one the printer reports a constant 5
        return self.info.has_chamber_sensor

    @property
    def packed_temps(self) -> bool:
        return self.info.packed_temps

    @property
    def extruders(self) -> int:
        return self.info.extruders

    @property
    def rtsp_camera(self) -> bool:
        return self.info.camera_kind == "rtsps"

    @property
    def chamber_lights(self) -> tuple[str, ...]:
        """The lights a ``ledctrl`` command switches (the toolhead's work light is not one of them here)."""
        return tuple(node for node in self.info.lights if node != "work_light")


def _profile(name: str, family: str, **overrides: Any) -> ModelProfile:
    families: dict[str, JSON] = {
        "X1": dict(idle_stage=-1, ams_lite=False, ams_ht=False, slot_states=True, vt_tray_too=True,
                   nozzle_type="hardened_steel",
                   firmware="01.09.01.00", base_fun=0x3EC18FFF9CFF),
        "P1": dict(idle_stage=255, ams_lite=False, ams_ht=False, slot_states=False, vt_tray_too=False,
                   nozzle_type="stainless_steel",
                   firmware="01.08.02.00", base_fun=0x3EC18FFF9CFF),
        "A1": dict(idle_stage=0, ams_lite=True, ams_ht=False, slot_states=False, vt_tray_too=False,
                   nozzle_type="stainless_steel",
                   firmware="01.05.00.00", base_fun=0x3EC18FFF9CFF),
        "H2": dict(idle_stage=-1, ams_lite=False, ams_ht=False, slot_states=True, vt_tray_too=False,
                   nozzle_type="hardened_steel",
                   firmware="01.02.00.00", base_fun=0x3EC18FFF9CFF),
    }  # fmt: skip
    return ModelProfile(name=name, **{**families[family], **overrides})


# One profile for every model printer_models.py knows (test_sim checks it).
PROFILES: Final[Mapping[str, ModelProfile]] = {
    "X1": _profile("X1", "X1"),
    "X1C": _profile("X1C", "X1"),
    "X1E": _profile("X1E", "X1"),
    "P1P": _profile("P1P", "P1"),
    "P1S": _profile("P1S", "P1", nozzle_type="hardened_steel"),
    "A1": _profile("A1", "A1"),
    "A1MINI": _profile("A1MINI", "A1"),
    "A2L": _profile("A2L", "A1"),
    "H2D": _profile("H2D", "H2", ams_ht=True, vt_tray_too=True),
    "H2DPRO": _profile("H2DPRO", "H2", ams_ht=True),
    "H2S": _profile("H2S", "H2"),
    "H2C": _profile("H2C", "H2"),
    "P2S": _profile("P2S", "H2"),
    "X2D": _profile("X2D", "H2"),
}


def profile_for(model: str) -> ModelProfile:
    """The profile for a model name as users write it ("P1S", "a1 mini", "X1-Carbon"), as printer_models.py reads it."""
    try:
        return PROFILES[model_info(model).model]
    except KeyError:
        raise ValueError(f"unknown printer model {model!r}; choose one of: {', '.join(PROFILES)}") from None


# --------------------------------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class Heater:
    """First-order thermal model: approaches its target (or the ambient when off) with time constant tau."""

    heat_tau: float
    cool_tau: float
    current: float = AMBIENT_C
    target: float = 0.0

    def step(self, dt: float, ambient: float, jitter: float) -> None:
        goal = self.target if self.target > 0 else ambient
        tau = self.heat_tau if goal > self.current else self.cool_tau
        self.current += (goal - self.current) * (1.0 - math.exp(-dt / tau))
        if self.target > 0:
            self.current += jitter

    @property
    def at_target(self) -> bool:
        return self.target <= 0 or abs(self.current - self.target) < 2.0


@dataclass
class Tray:
    tray_type: str
    sub_brand: str
    color: str  # RRGGBBAA
    info_idx: str
    nozzle_min: int
    nozzle_max: int
    remain: float  # percent, -1 unknown


@dataclass
class AmsUnit:
    unit_id: int
    humidity_index: int  # "1".."5", 1 = driest
    humidity_pct: int
    temp: float | None  # None: no sensor (AMS lite reports "0.0")
    trays: list[Tray | None]


@dataclass(frozen=True)
class PrepStep:
    stage: int
    seconds: float  # minimum duration; heating steps also wait for the heaters
    nozzle_target: float | None  # None: the filament's printing temperature
    wait_for_heat: bool = False


PREPARE_STEPS: Final = (
    PrepStep(STAGE_HEATBED_PREHEATING, 5.0, 0.0, wait_for_heat=True),
    PrepStep(STAGE_HOMING, 10.0, 140.0),  # the nozzle warms to a non-oozing temperature while probing
    PrepStep(STAGE_BED_LEVELING, 35.0, 140.0),
    PrepStep(STAGE_HOTEND_HEATING, 3.0, None, wait_for_heat=True),
    PrepStep(STAGE_NOZZLE_CLEANING, 10.0, None),
)


@dataclass
class PrintJob:
    name: str
    layers: int
    seconds: float  # printing time at 100 % speed
    started_at: int  # epoch seconds, for gcode_start_time
    task_id: int
    done_s: float = 0.0
    prep_index: int = 0
    prep_elapsed: float = 0.0

    @property
    def fraction(self) -> float:
        return min(1.0, self.done_s / self.seconds) if self.seconds > 0 else 1.0


@dataclass
class PrinterState:
    """Everything a report is rendered from. Mutated only by :class:`SimulatedPrinter`."""

    profile: ModelProfile
    serial: str
    gcode_state: str = "IDLE"
    stage: int = 255
    job: PrintJob | None = None
    print_error: int = 0
    hms: list[tuple[int, int]] = field(default_factory=list)
    speed_level: int = 2
    chamber_light: str = "on"
    chamber_light2: str = "on"  # the second bar, on models that have one
    cancel_in_s: float | None = None  # a stop's 0300_400C is this far (simulated seconds) behind its FAILED
    wifi_dbm: int = -52
    nozzles: list[Heater] = field(default_factory=list)
    active_nozzle: int = 0
    bed: Heater = field(default_factory=lambda: Heater(heat_tau=30.0, cool_tau=400.0))
    chamber: Heater = field(default_factory=lambda: Heater(heat_tau=300.0, cool_tau=600.0))
    ams: list[AmsUnit] = field(default_factory=list)
    tray_now: int = 255
    door_open: bool = False
    signed_commands: bool = False
    print_temp: float = 220.0
    bed_temp: float = 55.0
    liveview_url: str | None = None  # RTSPS models: the simulated camera's address ("LAN Only Liveview" on)

    @property
    def fun(self) -> int:
        return self.profile.base_fun | (SIGNED_COMMANDS_BIT if self.signed_commands else 0)


def initial_state(profile: ModelProfile, serial: str, *, signed_commands: bool = False) -> PrinterState:
    state = PrinterState(profile=profile, serial=serial, stage=profile.idle_stage, signed_commands=signed_commands)
    state.nozzles = [Heater(heat_tau=6.0, cool_tau=90.0) for _ in range(profile.extruders)]
    pla = (190, 230)
    if profile.ams_lite:
        trays: list[Tray | None] = [
            Tray("PLA", "PLA Basic", "FFFFFFFF", "GFA00", *pla, remain=-1),
            Tray("PLA", "PLA Basic", "000000FF", "GFA00", *pla, remain=-1),
            Tray("PLA", "PLA Matte", "F4A7B9FF", "GFA01", *pla, remain=-1),
            Tray("PLA", "PLA Basic", "0A2989FF", "GFA00", *pla, remain=-1),
        ]
        # The AMS lite measures neither humidity nor temperature nor what is left on a spool; an A2L reports it as
        # unit 16.
        state.ams = [AmsUnit(16 if profile.name == "A2L" else 0, 5, 0, None, trays)]
    else:
        trays = [
            Tray("PLA", "PLA Basic", "FFFFFFFF", "GFA00", *pla, remain=87),
            Tray("PLA", "PLA Basic", "00AE42FF", "GFA00", *pla, remain=64),
            Tray("PETG", "PETG HF", "FF6A13FF", "GFG02", 230, 260, remain=31),
            None,
        ]
        state.ams = [AmsUnit(0, 4, 23, 24.8, trays)]
    if profile.ams_ht:
        state.ams.append(AmsUnit(128, 2, 14, 26.5, [Tray("PLA", "PLA Silk+", "C0C0C0FF", "GFA06", *pla, remain=58)]))
    return state


# --------------------------------------------------------------------------------------------------------------------
# Physics (advancing the state in simulated time)
# --------------------------------------------------------------------------------------------------------------------


def _ambient_chamber(state: PrinterState) -> float:
    # Enclosed printers warm up from the bed; an open frame stays at room temperature.
    return AMBIENT_C + 0.22 * (state.bed.current - AMBIENT_C)


def _step(state: PrinterState, dt: float, rng: random.Random) -> None:
    """Advance ``state`` by ``dt`` simulated seconds (dt <= SUB_STEP_S keeps the phase logic fine-grained)."""
    for heater in state.nozzles:
        heater.step(dt, AMBIENT_C, rng.uniform(-0.25, 0.25) * min(dt, 1.0))
    state.bed.step(dt, AMBIENT_C, rng.uniform(-0.1, 0.1) * min(dt, 1.0))
    state.chamber.step(dt, _ambient_chamber(state), 0.0)
    if state.cancel_in_s is not None:
        state.cancel_in_s -= dt
        if state.cancel_in_s <= 0:
            state.cancel_in_s = None
            state.print_error = CANCELLED_ERROR
    job = state.job
    if job is None:
        return
    nozzle = state.nozzles[state.active_nozzle]
    if state.gcode_state == "PREPARE":
        step = PREPARE_STEPS[job.prep_index]
        state.stage = step.stage
        nozzle.target = state.print_temp if step.nozzle_target is None else step.nozzle_target
        job.prep_elapsed += dt
        heated = not step.wait_for_heat or (nozzle.at_target and state.bed.at_target)
        if job.prep_elapsed >= step.seconds and heated:
            job.prep_index += 1
            job.prep_elapsed = 0.0
            if job.prep_index == len(PREPARE_STEPS):
                state.gcode_state = "RUNNING"
                state.stage = STAGE_PRINTING
    elif state.gcode_state == "RUNNING":
        before = job.fraction
        job.done_s += dt * SPEED_MAGNITUDE[state.speed_level] / 100.0
        _use_filament(state, job.fraction - before, job.seconds)
        if job.done_s >= job.seconds:
            _end_print(state, "FINISH")


def _use_filament(state: PrinterState, fraction: float, print_seconds: float) -> None:
    # A print uses about 1 % of a 1 kg spool every 7 minutes: enough to watch `remain` tick down.
    tray = _active_tray(state)
    if tray is not None and tray.remain >= 0:
        tray.remain = max(0.0, tray.remain - fraction * print_seconds / 420.0)


def _active_tray(state: PrinterState) -> Tray | None:
    loaded = _loaded_slot(state)
    if loaded is None:
        return None
    unit_id, index = loaded
    for unit in state.ams:
        if unit.unit_id == unit_id and index < len(unit.trays):
            return unit.trays[index]
    return None


def _loaded_slot(state: PrinterState) -> tuple[int, int] | None:
    """``(unit id, slot)`` the extruder feeds from: ``tray_now`` 128+ is an AMS HT, 0-15 the n>>2-th AMS (the
    A2L's AMS lite is unit 16 but its only AMS), 254 the external spool (unit 255, as ``snow`` says), 255 none."""
    if state.tray_now == 254:
        return 255, 0
    if state.tray_now >= 128 and state.tray_now != 255:
        return state.tray_now, 0
    if state.tray_now < 16:
        regular = [unit.unit_id for unit in state.ams if unit.unit_id < 128]
        position = state.tray_now >> 2
        return (regular[position], state.tray_now & 3) if position < len(regular) else None
    return None


def _snow(state: PrinterState, extruder: int) -> int:
    """An extruder's loaded tray as newer printers report it: AMS id << 8 | slot, 0xFFFF for none."""
    loaded = _loaded_slot(state) if extruder == state.active_nozzle else None
    return 0xFFFF if loaded is None else loaded[0] << 8 | loaded[1]


def _end_print(state: PrinterState, gcode_state: str, error: int = 0) -> None:
    state.gcode_state = gcode_state
    state.stage = state.profile.idle_stage
    state.print_error = error
    for heater in state.nozzles:
        heater.target = 0.0
    state.bed.target = 0.0
    state.tray_now = 255


# --------------------------------------------------------------------------------------------------------------------
# Rendering reports (pure)
# --------------------------------------------------------------------------------------------------------------------


def _temp(value: float) -> int | float:
    """Printers report 1/32 degree steps, as an int when whole: consumers must accept both."""
    quantised = round(value * 32) / 32
    return int(quantised) if quantised.is_integer() else quantised


def _packed(heater: Heater) -> int:
    return (round(heater.target) << 16) | max(0, round(heater.current))


def _fan(level: int) -> str:
    return str(max(0, min(15, level)))


def _exist_bits(unit_id: int) -> tuple[int, int]:
    """``(ams_exist bit, first tray_exist bit)`` of a unit, as real reports place them: AMS 0-3 at bit id / 4*id,
    AMS HT 128+n at 4+n / 16+n, the A2L's AMS lite (unit 16) at 12 / 24."""
    if unit_id >= 128:
        return 4 + unit_id - 128, 16 + unit_id - 128
    if unit_id == 16:
        return 12, 24
    return unit_id, unit_id * 4


def _render_tray(unit_id: int, index: int, tray: Tray, *, slot_state: int | None) -> JSON:
    # A Bambu spool (its remaining filament measured) carries its RFID tag, one per spool (the inventory knows a
    # spool by it), and its net weight; others report zeros there and remain -1.
    rfid = tray.remain >= 0
    tag = unit_id * 16 + index
    rendered: JSON = {"id": str(index)}
    if slot_state is not None:
        rendered["state"] = slot_state
    rendered.update({
        "tray_type": tray.tray_type,
        "tray_sub_brands": tray.sub_brand,
        "tray_color": tray.color,
        "cols": [tray.color],
        "tray_info_idx": tray.info_idx,
        "remain": -1 if tray.remain < 0 else math.ceil(tray.remain),
        "tag_uid": f"{0x8A41A5A600000100 + tag:016X}" if rfid else "0" * 16,
        "tray_uuid": f"{0xC234B32CD1C14E0587B0CF6BF8753D00 + tag:032X}" if rfid else "0" * 32,
        "nozzle_temp_min": str(tray.nozzle_min),
        "nozzle_temp_max": str(tray.nozzle_max),
        "tray_weight": "1000" if rfid else "0",
        "tray_diameter": "1.75",
        "k": 0.02,
        "n": 1,
    })
    return rendered


def _render_ams(state: PrinterState) -> JSON:
    # Current X1/H2-era firmware sends each slot's `state` (11: a spool, read, settled) and an empty slot as
    # {"id", "state": 0}; P1/A1 send no `state` and an empty slot as {"id"}; the A2L sends {"id"} for an empty slot
    # and the older state 3 for a loaded one. `tray_exist_bits` says which slots hold a spool either way.
    profile = state.profile
    with_state = profile.slot_states
    loaded_state = 11 if profile.slot_states else 3 if profile.packed_temps else None
    units = []
    exist_bits = tray_bits = rfid_bits = 0
    for unit in state.ams:
        unit_bit, first_tray_bit = _exist_bits(unit.unit_id)
        exist_bits |= 1 << unit_bit
        trays: list[JSON] = []
        for index, tray in enumerate(unit.trays):
            if tray is None:
                trays.append({"id": str(index), "state": 0} if with_state else {"id": str(index)})
                continue
            tray_bits |= 1 << (first_tray_bit + index)
            rfid_bits |= (1 << (first_tray_bit + index)) if tray.remain >= 0 else 0
            trays.append(_render_tray(unit.unit_id, index, tray, slot_state=loaded_state))
        rendered: JSON = {
            "id": str(unit.unit_id),
            "humidity": str(unit.humidity_index),
            "temp": "0.0" if unit.temp is None else f"{unit.temp:.1f}",
            "tray": trays,
        }
        if unit.temp is not None:
            rendered["humidity_raw"] = str(unit.humidity_pct)
        units.append(rendered)
    return {
        "ams": units,
        "ams_exist_bits": f"{exist_bits:x}",
        "tray_exist_bits": f"{tray_bits:x}",
        "tray_is_bbl_bits": f"{rfid_bits:x}",
        "tray_read_done_bits": f"{tray_bits:x}",
        "tray_now": str(state.tray_now),
        "tray_pre": str(state.tray_now),
        "tray_tar": str(state.tray_now),
        "insert_flag": True,
        "power_on_flag": False,
        "version": 7,
    }


# The spool on the external holder (of the right, main extruder on dual-nozzle printers).
EXTERNAL_SPOOL: Final = Tray("PETG", "PETG Basic", "2850E0FF", "GFG00", 220, 260, remain=-1)


def _render_holder(holder_id: int, tray: Tray | None) -> JSON:
    """An external holder as real reports send it: ``remain`` always 0; an empty one with ``tray_type`` ""."""
    if tray is None:
        return {
            "id": str(holder_id), "tray_type": "", "tray_sub_brands": "", "tray_color": "00000000",
            "cols": ["00000000"], "tray_info_idx": "", "remain": 0, "tag_uid": "0" * 16, "tray_uuid": "0" * 32,
            "nozzle_temp_min": "0", "nozzle_temp_max": "0", "tray_diameter": "1.75", "k": 0.02, "n": 1,
        }  # fmt: skip
    return {**_render_tray(holder_id, 0, tray, slot_state=None), "id": str(holder_id), "remain": 0}


def _render_external(profile: ModelProfile) -> JSON:
    """As the captures show: P1/A1 send ``vt_tray`` (id 254) only; X1 and H2D send ``vir_slot`` and repeat the
    (right) holder 255 as ``vt_tray``; the other newer models send ``vir_slot`` only. Dual-nozzle printers have two
    holders: 254 (left, empty here) and 255."""
    if not profile.packed_temps and not profile.full_reports:
        return {"vt_tray": _render_holder(254, EXTERNAL_SPOOL)}
    holders = [_render_holder(255, EXTERNAL_SPOOL)]
    if profile.extruders > 1:
        holders.insert(0, _render_holder(254, None))
    if profile.vt_tray_too:
        return {"vt_tray": holders[-1], "vir_slot": holders}
    return {"vir_slot": holders}


def _render_device(state: PrinterState) -> JSON:
    """The H2-era layout: packed (target << 16) | current temperatures, extruder count and active one in a state."""
    return {
        "extruder": {
            "info": [
                {"id": index, "temp": _packed(heater), "snow": _snow(state, index)}
                for index, heater in enumerate(state.nozzles)
            ],
            "state": len(state.nozzles) | (state.active_nozzle << 4),
        },
        "bed": {"info": {"temp": _packed(state.bed)}},
        "ctc": {"info": {"temp": _packed(state.chamber)}},
        # not every device.* value is packed: these are plain numbers and strings
        "nozzle": {"info": [{"id": index, "diameter": 0.4, "type": "HS01"} for index in range(len(state.nozzles))]},
        "type": 1,
    }


def _light_mode(state: PrinterState, node: str) -> str:
    if node == "work_light":
        return "off"  # the toolhead camera's light is not simulated
    return state.chamber_light2 if node == "chamber_light2" else state.chamber_light


def render_report(state: PrinterState) -> JSON:
    """The complete ``print`` object of a push_status report for ``state`` (without command/msg/sequence_id)."""
    profile = state.profile
    job = state.job
    printing = state.gcode_state in ("PREPARE", "RUNNING", "PAUSE")
    nozzle = state.nozzles[state.active_nozzle]
    percent = remaining = layer = total_layers = 0
    if job is not None:
        total_layers = job.layers
        percent = math.floor(job.fraction * 100)
        if state.gcode_state in ("RUNNING", "PAUSE", "FINISH", "FAILED") and job.done_s > 0:
            layer = min(job.layers, math.floor(job.fraction * job.layers) + 1)
        if state.gcode_state != "FINISH":
            left = (job.seconds - job.done_s) / (SPEED_MAGNITUDE[state.speed_level] / 100.0)
            remaining = math.ceil(max(0.0, left) / 60)
    first_layer = layer <= 1
    running = state.gcode_state == "RUNNING"
    report: JSON = {
        "gcode_state": state.gcode_state,
        "mc_percent": percent,
        "mc_remaining_time": remaining,
        "layer_num": layer,
        "total_layer_num": total_layers,
        "mc_print_stage": "2" if running else "1",
        "mc_print_sub_stage": 0,
        "stg": [step.stage for step in PREPARE_STEPS] if job is not None else [],
        "stg_cur": state.stage,
        "print_type": "local" if job is not None else "idle",
        "subtask_name": job.name if job is not None else "",
        "gcode_file": f"{job.name}.gcode.3mf" if job is not None else "",
        "gcode_file_prepare_percent": "100" if job is not None else "0",
        "gcode_start_time": str(job.started_at) if job is not None else "0",
        "task_id": str(job.task_id) if job is not None else "0",
        "subtask_id": str(job.task_id) if job is not None else "0",
        "print_error": state.print_error,
        "hms": [{"attr": attr, "code": code} for attr, code in state.hms],
        "spd_lvl": state.speed_level,
        "spd_mag": SPEED_MAGNITUDE[state.speed_level],
        "cooling_fan_speed": _fan(15 if running and not first_layer else 0),
        "big_fan1_speed": _fan(10 if running and not first_layer else 0),
        "big_fan2_speed": _fan(6 if printing else 0),
        "heatbreak_fan_speed": _fan(15 if nozzle.current > 50 else 0),
        "wifi_signal": f"{state.wifi_dbm}dBm",
        "lights_report": [{"node": node, "mode": _light_mode(state, node)} for node in profile.info.lights],
        "nozzle_diameter": "0.4",
        "nozzle_type": profile.nozzle_type,
        "sdcard": True,
        "fun": f"{state.fun:X}",
        "ams": _render_ams(state),
        **_render_external(profile),
        "ipcam": {
            "ipcam_dev": "1", "ipcam_record": "enable", "timelapse": "disable", "resolution": "1080p",
            "tutk_server": "disable", "mode_bits": 3,
        },
        "upgrade_state": {"status": "IDLE", "progress": "", "message": ""},
    }
    door = profile.info.door
    if door is not None:
        # Real reports carry many more flags in these fields; only the door's bit is simulated.
        flags = DOOR_OPEN_BIT if state.door_open else 0
        report[door] = f"{flags:X}" if door == "stat" else flags
    if profile.rtsp_camera:
        # "LAN Only Liveview" is off unless the simulator serves the RTSPS camera.
        report["ipcam"]["rtsp_url"] = state.liveview_url or "disable"
    if profile.packed_temps:
        report["device"] = _render_device(state)
    else:
        report["nozzle_temper"] = _temp(nozzle.current)
        report["nozzle_target_temper"] = _temp(nozzle.target)
        report["bed_temper"] = _temp(state.bed.current)
        report["bed_target_temper"] = _temp(state.bed.target)
        report["chamber_temper"] = _temp(state.chamber.current) if profile.chamber_sensor else 5
    return report


_MISSING: Final = object()


def report_delta(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> JSON:
    """The top-level fields of ``current`` that differ from ``previous`` (all of them without a previous)."""
    if previous is None:
        return dict(current)
    return {key: value for key, value in current.items() if previous.get(key, _MISSING) != value}


def encode_json(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode("utf-8")


# --------------------------------------------------------------------------------------------------------------------
# The printer
# --------------------------------------------------------------------------------------------------------------------


class ReportSink(Protocol):
    """Where the printer's messages go: the broker, which fans them out to subscribed clients."""

    def publish(self, topic: str, payloads: Sequence[bytes], *, coalesce: bool = False) -> None: ...

    def drop_clients(self) -> int: ...


CONTROL_COMMANDS: Final = {("print", "pause"), ("print", "resume"), ("print", "stop"), ("print", "print_speed"),
                           ("system", "ledctrl")}


class SimulatedPrinter:
    """One simulated printer. Methods are synchronous and publish at once, so a test sees the effect immediately.

    ``coalesce=True`` makes each command's reply and the state report that follows it leave in one TLS record,
    as busy printers do; :meth:`publish_reports` does the same for arbitrary payloads.
    """

    tick_s: float = 1.0  # real seconds between periodic reports

    def __init__(
        self,
        model: str,
        serial: str,
        *,
        time_scale: float = 1.0,
        signed_commands: bool = False,
        coalesce: bool = False,
        seed: int | None = None,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.profile = profile_for(model)
        self.serial = serial
        self.time_scale = time_scale
        self.coalesce = coalesce
        self.report_topic = f"device/{serial}/report"
        self.state = initial_state(self.profile, serial, signed_commands=signed_commands)
        self._rng = random.Random(seed if seed is not None else serial)
        self._sink: ReportSink | None = None
        self._last_sent: JSON | None = None
        self._sequence = 0
        self._task_ids = 0
        self._silent_until = -math.inf
        self._changed = trio.Event()
        self._in_command = False  # while applying a request, its reply goes out first, then one state report
        self.requests_seen = 0

    # --- read-only views ------------------------------------------------------------------------------------------

    @property
    def gcode_state(self) -> str:
        return self.state.gcode_state

    @property
    def percent(self) -> int:
        job = self.state.job
        return math.floor(job.fraction * 100) if job is not None else 0

    @property
    def hms(self) -> list[tuple[int, int]]:
        return list(self.state.hms)

    @property
    def print_error(self) -> int:
        return self.state.print_error

    @property
    def silent(self) -> bool:
        return trio.current_time() < self._silent_until

    def full_report(self) -> JSON:
        """The current full report, as ``pushall`` would send it (without advancing the sequence id)."""
        return {"print": {"command": "push_status", "msg": 0, "sequence_id": str(self._sequence),
                          **render_report(self.state)}}

    # --- wiring and time ------------------------------------------------------------------------------------------

    def attach(self, sink: ReportSink) -> None:
        self._sink = sink

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Advance simulated time and send the periodic reports (X1: full every tick; P1/A1: deltas if changed)."""
        task_status.started()
        while True:
            await trio.sleep(self.tick_s)
            self.advance(self.tick_s * self.time_scale)
            self._report_state()

    def advance(self, seconds: float) -> None:
        """Move the simulation ``seconds`` of simulated time forward (without reporting)."""
        steps = max(1, math.ceil(seconds / SUB_STEP_S))
        for _ in range(steps):
            _step(self.state, seconds / steps, self._rng)
        if self._rng.random() < 0.03:  # Wi-Fi strength wanders a little every half minute or so
            self.state.wifi_dbm = max(-70, min(-40, self.state.wifi_dbm + self._rng.choice((-2, -1, 1, 2))))
        self._notify()

    async def wait_until(self, predicate: Callable[[SimulatedPrinter], bool]) -> None:
        """Return once ``predicate(self)`` holds (checked after every change)."""
        while not predicate(self):
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    # --- controls the scenarios and tests use --------------------------------------------------------------------

    def start_print(self, name: str, layers: int = 200, minutes: float = 20.0) -> None:
        """Start a job: PREPARE (bed preheat, homing, leveling, hotend heating, wipe), then RUNNING."""
        if layers < 1 or minutes <= 0:
            raise ValueError("a print needs at least one layer and a positive duration")
        state = self.state
        self._task_ids += 1
        state.job = PrintJob(name, layers, minutes * 60.0, int(time.time()), 480_000_000 + self._task_ids)
        state.gcode_state = "PREPARE"
        state.stage = PREPARE_STEPS[0].stage
        state.print_error = 0
        state.cancel_in_s = None
        state.bed.target = state.bed_temp
        state.tray_now = 1  # AMS 1, slot 2
        self._changed_now()

    def pause(self) -> bool:
        if self.state.gcode_state != "RUNNING":
            return False
        self.state.gcode_state = "PAUSE"
        self.state.stage = STAGE_USER_PAUSE
        self._changed_now()
        return True

    def resume(self) -> bool:
        if self.state.gcode_state != "PAUSE":
            return False
        self.state.gcode_state = "RUNNING"
        self.state.stage = STAGE_PRINTING
        self._changed_now()
        return True

    def stop(self) -> bool:
        """Cancel the job the way a real printer's Stop does (seen on a P2S): FAILED with print_error 0 at once,
        0300_400C ("the task was canceled") :data:`STOP_CANCEL_DELAY_S` simulated seconds later."""
        if not self.fail(0):
            return False
        self.state.cancel_in_s = STOP_CANCEL_DELAY_S
        return True

    def fail(self, error: int = DEFAULT_FAILURE) -> bool:
        """End the job as FAILED with ``print_error`` = ``error``."""
        if self.state.gcode_state not in ("PREPARE", "RUNNING", "PAUSE"):
            return False
        _end_print(self.state, "FAILED", error)
        self._changed_now()
        return True

    def set_hms(self, codes: Sequence[tuple[int, int]]) -> None:
        """Replace the active HMS list with ``(attr, code)`` pairs."""
        self.state.hms = list(codes)
        self._changed_now()

    def set_door(self, open_: bool) -> None:
        """Open or close the door (models with a door sensor report it in ``stat`` or ``home_flag``)."""
        self.state.door_open = open_
        self._changed_now()

    def set_light(self, on: bool) -> None:
        self.state.chamber_light = "on" if on else "off"
        self._changed_now()

    def set_speed(self, level: int) -> None:
        if level not in SPEED_MAGNITUDE:
            raise ValueError(f"speed level must be 1-4, not {level}")
        self.state.speed_level = level
        self._changed_now()

    def go_silent(self, seconds: float | None = None) -> None:
        """Stop sending anything (for ``seconds`` real seconds, or until :meth:`resume_talking`); TCP stays up."""
        self._silent_until = math.inf if seconds is None else trio.current_time() + seconds

    def resume_talking(self) -> None:
        self._silent_until = -math.inf

    def drop_clients(self) -> int:
        return self._sink.drop_clients() if self._sink is not None else 0

    def publish_report(self, report: Mapping[str, Any] | bytes) -> None:
        """Publish exactly ``report`` (a dict as JSON, or raw bytes) on the report topic, silence or not."""
        self.publish_reports([report], coalesce=False)

    def publish_reports(self, reports: Sequence[Mapping[str, Any] | bytes], *, coalesce: bool = True) -> None:
        """Publish several raw reports; with ``coalesce`` they reach each client in one TLS record."""
        payloads = [r if isinstance(r, bytes) else encode_json(r) for r in reports]
        if self._sink is not None:
            self._sink.publish(self.report_topic, payloads, coalesce=coalesce)

    # --- reporting ------------------------------------------------------------------------------------------------

    def _changed_now(self) -> None:
        self._notify()
        if not self._in_command:
            self._report_state()

    def _next_sequence(self) -> str:
        self._sequence += 1
        return str(self._sequence)

    def _state_message(self, *, full: bool) -> bytes | None:
        current = render_report(self.state)
        full = full or self.profile.full_reports
        fields = current if full else report_delta(self._last_sent, current)
        self._last_sent = current
        if not fields:
            return None
        header: JSON = {"command": "push_status", "msg": 0 if full else 1, "sequence_id": self._next_sequence()}
        return encode_json({"print": {**header, **fields}})

    def _emit(self, payloads: Sequence[bytes]) -> None:
        if payloads and not self.silent and self._sink is not None:
            self._sink.publish(self.report_topic, payloads, coalesce=self.coalesce)

    def _report_state(self, *, full: bool = False) -> None:
        if self.silent:
            return  # deltas after the silence carry everything that changed meanwhile
        message = self._state_message(full=full)
        if message is not None:
            self._emit([message])

    # --- requests -------------------------------------------------------------------------------------------------

    def handle_request(self, payload: bytes) -> None:
        """Apply one message from the request topic and answer it (unless silent)."""
        self.requests_seen += 1
        try:
            message = json.loads(payload)
        except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
            log.debug("simulator: request is not JSON; ignored")
            return
        if not isinstance(message, dict):
            return
        for kind, body in message.items():
            if isinstance(body, dict) and isinstance(body.get("command"), str):
                self._handle_command(kind, body)

    def _handle_command(self, kind: str, body: JSON) -> None:
        command: str = body["command"]
        if (kind, command) == ("pushing", "pushall"):
            if not self.silent:
                message = self._state_message(full=True)
                self._emit([message] if message is not None else [])
            return
        if (kind, command) == ("info", "get_version"):
            self._emit([encode_json({"info": self._version_reply(body)})])
            return
        if (kind, command) in CONTROL_COMMANDS and self.state.signed_commands:
            if VERIFY_FAILED_HMS not in self.state.hms:
                self.state.hms.append(VERIFY_FAILED_HMS)
            self._notify()
            self._reply(kind, body, ok=False, reason=VERIFY_FAILED_REASON)
            return
        self._in_command = True
        try:
            ok, reason = self._apply(kind, command, body)
        finally:
            self._in_command = False
        self._notify()
        self._reply(kind, body, ok=ok, reason=reason)

    def _apply(self, kind: str, command: str, body: JSON) -> tuple[bool, str]:
        if kind == "print":
            if command == "pause":
                return self.pause(), "not printing"
            if command == "resume":
                return self.resume(), "not paused"
            if command == "stop":
                return self.stop(), "not printing"
            if command == "print_speed":
                try:
                    self.set_speed(int(str(body.get("param"))))
                except ValueError:
                    return False, "bad speed level"
                return True, ""
        if kind == "system" and command == "ledctrl":
            mode, node = body.get("led_mode"), body.get("led_node")
            if node not in self.profile.chamber_lights:
                return False, f"{NO_SUCH_LIGHT_REASON}: {node}"
            if mode not in ("on", "off", "flashing"):
                return False, "unsupported light mode"
            if node == "chamber_light2":
                self.state.chamber_light2 = mode
            else:
                self.state.chamber_light = mode
            return True, ""
        return False, "command not supported by the simulator"

    def _reply(self, kind: str, body: JSON, *, ok: bool, reason: str) -> None:
        reply = {**body, "result": "success" if ok else "failed", "reason": "success" if ok else reason}
        # The state report right behind the reply is what a coalescing printer packs into the same record.
        messages = [encode_json({kind: reply})]
        if not self.silent:
            state = self._state_message(full=False)
            if state is not None:
                messages.append(state)
        self._emit(messages)

    def _version_reply(self, body: JSON) -> JSON:
        profile = self.profile
        modules: list[JSON] = [
            {"name": "ota", "sw_ver": profile.firmware, "hw_ver": "OTA", "sn": self.serial},
            {"name": "mc", "sw_ver": "00.00.30.20", "hw_ver": "MC07", "sn": self.serial[:8] + "MC"},
            {"name": "th", "sw_ver": "00.00.08.01", "hw_ver": "TH07", "sn": self.serial[:8] + "TH"},
        ]
        for unit in self.state.ams:
            name = "n3s" if unit.unit_id >= 128 else ("ams_f1" if profile.ams_lite else "ams")
            modules.append({"name": f"{name}/{unit.unit_id}", "sw_ver": "00.01.06.37", "hw_ver": "AMS08", "sn": ""})
        return {"command": "get_version", "sequence_id": body.get("sequence_id", "0"), "module": modules,
                "result": "success", "reason": ""}
