"""The default wiring of the panel, read from the ``pins.toml`` shipped inside the package (``hardware/pins.toml``
links to it): the defaults of ``[panel]``'s pin and I2C keys.

Read on first use, not at import: importing the config touches no file.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

PINS_TOML: Final = Path(__file__).resolve().parent.parent / "data" / "pins.toml"


@dataclass(frozen=True)
class DefaultPins:
    led_green: str
    led_amber: str
    led_red: str
    buzzer: str
    button: str
    i2c_port: int
    i2c_address: int
    light_sensor_address: int


def load_default_pins(path: Path = PINS_TOML) -> DefaultPins:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    pins, oled, sensor = data["pins"], data["oled"], data.get("light_sensor", {})
    return DefaultPins(
        led_green=pins["led_green"], led_amber=pins["led_amber"], led_red=pins["led_red"], buzzer=pins["buzzer"],
        button=pins["button"], i2c_port=oled["i2c_port"], i2c_address=oled["i2c_address"],
        light_sensor_address=sensor.get("i2c_address", 0x23),
    )


@functools.cache
def default_pins() -> DefaultPins:
    """The packaged wiring, read once."""
    return load_default_pins()
