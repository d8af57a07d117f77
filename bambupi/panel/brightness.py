"""How bright the box is: day, night (the quiet hours), the room's light (a BH1750), or asleep with the printers off.

The rules are pure functions (:func:`choose`, :func:`asleep`, :func:`lux_level`, :func:`settle`); :class:`Lighting`
keeps what they need between refreshes (since when each printer is down, when the box was last woken, the sensor's
level) and applies the result to the LEDs through :class:`DimmedLed`. The panel service asks it once per refresh.

- Day: the OLED at ``panel.contrast``, the LEDs at full brightness.
- Night (inside ``alerts.quiet_hours``, the notifications' quiet hours): the OLED at ``panel.night_contrast``, the
  LEDs at ``panel.night_led_level`` of their brightness. The buzzer keeps still but for the fatal alarm (the alarm
  rules' quiet hours, alarms.on_event).
- With a light sensor that answers, the room decides instead of the clock: dark (<= DARK_LUX) is the night levels,
  bright (>= BRIGHT_LUX) the day levels, in between on a log scale (the eye's), with a dead band so the screen does
  not flicker as a cloud passes.
- Asleep: every printer is off (its smart plug reads off, or it has not been online for ``panel.sleep_after_s`` and
  was idle, not in a job) and nothing waits for a person (nothing a press would acknowledge): OLED and LEDs go
  dark. Any printer coming back, any printer event and the button wake the box; a press keeps it awake WAKE_S.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from bambupi.config import PanelConfig
from bambupi.printer.phase import IN_JOB, job_phase

log = logging.getLogger("bambupi.panel")

DARK_LUX: Final = 3.0  # a room at night with a screen's glow: the night levels
BRIGHT_LUX: Final = 300.0  # a lit workshop: the day levels
DEAD_BAND: Final = 0.08  # a new sensor level within this of the current one changes nothing
WAKE_S: Final = 60.0  # a press (or an event) keeps a sleeping box awake this long

LightMode = Literal["day", "night", "room", "asleep"]


@dataclass(frozen=True)
class Light:
    mode: LightMode
    contrast: int  # the OLED's contrast while it shows a picture (0-255)
    leds: float  # the LEDs' brightness, a factor of what the alarm rules ask (0: dark)
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "contrast": self.contrast, "leds": self.leds, "reason": self.reason}


DAY: Final = Light("day", 255, 1.0, "day")


def lux_level(lux: float) -> float:
    """How bright the room is, 0 (dark) to 1 (lit), on a log scale between DARK_LUX and BRIGHT_LUX."""
    if not math.isfinite(lux) or lux <= DARK_LUX:
        return 0.0
    if lux >= BRIGHT_LUX:
        return 1.0
    return math.log(lux / DARK_LUX) / math.log(BRIGHT_LUX / DARK_LUX)


def settle(current: float | None, raw: float) -> float:
    """The level to use: the current one while the new reading is within the dead band (the ends always count)."""
    if current is None or abs(raw - current) > DEAD_BAND or raw in (0.0, 1.0):
        return raw
    return current


def choose(config: PanelConfig, *, night: bool, level: float | None, asleep: bool) -> Light:
    """The brightness now: ``level`` is the room's (None without a working sensor), ``night`` the quiet hours."""
    if asleep:
        return Light("asleep", 0, 0.0, "the printers are off")
    if level is not None:
        contrast = round(config.night_contrast + (config.contrast - config.night_contrast) * level)
        leds = config.night_led_level + (1.0 - config.night_led_level) * level
        return Light("room", contrast, round(leds, 3), f"the room's light ({round(level * 100)} %)")
    if night:
        return Light("night", config.night_contrast, config.night_led_level, "quiet hours")
    return Light("day", config.contrast, 1.0, "day")


def printer_off(printer: Mapping[str, Any], *, plug_off: bool, down_s: float | None, sleep_after_s: float) -> bool:
    """Whether a printer counts as switched off: its plug reads off, or it has been down (not online) for
    ``sleep_after_s``, while its last known state was no job. A printer lost mid-print is a fault to show, not sleep;
    one still reporting a print is printing, whatever its plug's last reading says (a plug's timer, a reading that
    lags or lies): a print never goes dark."""
    state = printer.get("state")
    in_job = job_phase(state if isinstance(state, Mapping) else {}) in IN_JOB
    if plug_off:
        return not (in_job and printer.get("connection") == "online")
    if down_s is None or down_s < sleep_after_s:
        return False
    return not in_job


def asleep(
    printers: Mapping[str, Mapping[str, Any]], *, plugs_off: frozenset[str], down_since: Mapping[str, float],
    now: float, sleep_after_s: float, attention: bool, awake_until: float,
) -> bool:
    """Whether the box sleeps: every printer off, nothing waiting for a person, not just woken. ``sleep_after_s``
    0 never sleeps; a box with no printers stays awake (its network screen is how it is set up)."""
    if sleep_after_s <= 0 or not printers or attention or now < awake_until:
        return False
    return all(
        printer_off(
            printer, plug_off=pid in plugs_off,
            down_s=now - down_since[pid] if pid in down_since else None, sleep_after_s=sleep_after_s,
        )
        for pid, printer in printers.items()
    )


class PlugStates(Protocol):
    """The smart plugs (the power service): whether a printer's plug last read off."""

    def plug_off(self, printer_id: str) -> bool: ...


class NoPlugs:
    def plug_off(self, printer_id: str) -> bool:
        return False


class DimmedLed:
    """A gpiozero LED whose brightness the night and sleep scale: the LED driver writes what the alarm rules ask
    (``value``), the pin gets that times ``scale``. A ``PWMLED`` dims; a plain ``LED`` (a pin without PWM) can only
    be on or off, so it dims to off only when asleep."""

    def __init__(self, device: Any) -> None:
        self.device = device
        self._value = 0.0
        self._scale = 1.0

    @property
    def value(self) -> float:
        return self._value

    @value.setter
    def value(self, value: float) -> None:
        self._value = value
        self._write()

    @property
    def scale(self) -> float:
        return self._scale

    @scale.setter
    def scale(self, scale: float) -> None:
        if scale != self._scale:
            self._scale = scale
            self._write()

    def _write(self) -> None:
        self.device.value = round(self._value * self._scale, 4)


class LevelSource(Protocol):
    """The room's light as a level 0-1 (light_sensor.SensorReader), None when no sensor answers."""

    @property
    def level(self) -> float | None: ...


class Lighting:
    """What the brightness rules remember, and the LEDs they dim. One per running panel."""

    def __init__(self, config: PanelConfig, *, plugs: PlugStates | None = None,
                 sensor: LevelSource | None = None, night: Callable[[], bool] = lambda: False) -> None:
        self.config = config
        self.plugs = plugs if plugs is not None else NoPlugs()
        self.sensor = sensor
        self.night = night
        self.light = choose(config, night=False, level=None, asleep=False)
        self.leds: list[DimmedLed] = []
        self._down_since: dict[str, float] = {}
        self._awake_until = -math.inf

    def wrap(self, device: Any) -> DimmedLed:
        led = DimmedLed(device)
        led.scale = self.light.leds
        self.leds.append(led)
        return led

    def wake(self, now: float) -> None:
        """A press or a printer's event: awake for WAKE_S at least."""
        self._awake_until = now + WAKE_S

    def update(self, printers: Mapping[str, Mapping[str, Any]], now: float, *, attention: bool) -> Light:
        self._down_since = {
            pid: self._down_since.get(pid, now) for pid, p in printers.items() if p.get("connection") != "online"
        }
        plugs_off = frozenset(pid for pid in printers if self.plugs.plug_off(pid))
        sleeping = asleep(
            printers, plugs_off=plugs_off, down_since=self._down_since, now=now,
            sleep_after_s=self.config.sleep_after_s, attention=attention, awake_until=self._awake_until,
        )
        level = self.sensor.level if self.sensor is not None else None
        light = choose(self.config, night=self.night(), level=level, asleep=sleeping)
        if (light.mode == "asleep") != (self.light.mode == "asleep"):
            log.info("panel: %s", "asleep (the printers are off)" if sleeping else "awake")
        self.light = light
        for led in self.leds:
            led.scale = light.leds
        return light

    def contrast(self, display: str) -> int:
        """The OLED's contrast for the idle rule's ``display`` (on | dim): dimmed for idleness, never brighter than
        the light allows."""
        if display == "dim":
            return min(self.light.contrast, self.config.dim_contrast)
        return self.light.contrast
