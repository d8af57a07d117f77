"""The optional ambient light sensor: a BH1750 on the OLED's I2C bus, read through smbus2.

Wiring (hardware/README.md): VCC to 3.3 V, GND, SDA and SCL to the same pins as the OLED (GPIO2/GPIO3), ADDR to GND
(address 0x23) or left open on most breakout boards; behind a window in the case, away from the LEDs and the screen,
so it sees the room and not the box's own light.

``panel.light_sensor = "auto"`` uses one when it answers and otherwise says so once; ``"bh1750"`` expects one, so
its absence is a warning in ``/healthz``. A sensor that stops answering is a warning too: the night schedule sets
the brightness until it answers again (tried every RETRY_S). Never a stop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final, Protocol, cast

import trio

from bambupi.config import PanelConfig
from bambupi.panel.brightness import lux_level, settle

log = logging.getLogger("bambupi.panel")

READ_EVERY_S: Final = 2.0
RETRY_S: Final = 30.0


class Bus(Protocol):
    """The part of ``smbus2.SMBus`` the driver uses (tests hand in a fake)."""

    def write_byte(self, i2c_addr: int, value: int) -> None: ...

    def i2c_rdwr(self, *i2c_msgs: Any) -> None: ...

    def close(self) -> None: ...


class BH1750:
    """A BH1750 measuring continuously at 1 lx resolution (a new result every 120-180 ms).

    >>> sensor = BH1750(smbus2.SMBus(1), 0x23)
    >>> sensor.start()
    >>> sensor.read_lux()
    231.7
    """

    POWER_ON: Final = 0x01
    CONTINUOUS_HIGH_RES: Final = 0x10

    def __init__(self, bus: Bus, address: int = 0x23) -> None:
        self.bus = bus
        self.address = address

    def start(self) -> None:
        """Power on and start measuring; OSError when nothing answers at the address."""
        self.bus.write_byte(self.address, self.POWER_ON)
        self.bus.write_byte(self.address, self.CONTINUOUS_HIGH_RES)

    def read_lux(self) -> float:
        """The last result: two bytes, high first, in counts of 1/1.2 lx. A plain read (no command byte): a command
        would restart the measurement."""
        from smbus2 import i2c_msg

        message = i2c_msg.read(self.address, 2)
        self.bus.i2c_rdwr(message)
        high, low = list(cast("Iterable[int]", message))  # smbus2's stub says __iter__ returns an int
        return ((high << 8) | low) / 1.2


def open_smbus(port: int) -> Bus:
    from smbus2 import SMBus

    bus: Bus = SMBus(port)
    return bus


class SensorReader:
    """Reads the sensor every READ_EVERY_S (in a worker thread for a real bus) and keeps the room's level for the
    brightness rules; :meth:`health` is ``/healthz``'s ``light_sensor`` entry."""

    def __init__(
        self, config: PanelConfig, *, dev: Path = Path("/dev"), bus: Callable[[int], Bus] = open_smbus,
        threaded: bool = True,
    ) -> None:
        self.kind = config.light_sensor
        self.port = config.i2c_port
        self.address = config.light_sensor_address
        self.dev = dev
        self.open_bus = bus
        self.threaded = threaded
        self.lux: float | None = None
        self.level: float | None = None  # None: no reading to go by (the schedule decides)
        self.warning: str | None = None
        self.found = False
        self._sensor: BH1750 | None = None

    def health(self) -> dict[str, Any]:
        return {
            "ok": True,  # a missing sensor is a warning, never a fault: the schedule sets the brightness
            "kind": self.kind if self.found or self.kind == "bh1750" else "none",
            "address": f"0x{self.address:02X}",
            "lux": None if self.lux is None else round(self.lux, 1),
            "warning": self.warning,
            "brightness_from": "the room" if self.level is not None else "the night schedule",
        }

    async def _call(self, fn: Callable[[], Any]) -> Any:
        return await trio.to_thread.run_sync(fn) if self.threaded else fn()

    async def _open(self, *, probing: bool = False) -> bool:
        """Open the bus and start the sensor; ``probing`` ("auto" looking for one): its absence is no warning."""
        bus: Bus | None = None
        try:
            bus = await self._call(lambda: self.open_bus(self.port))
            sensor = BH1750(bus, self.address)
            await self._call(sensor.start)
        except Exception as exc:  # smbus2: OSError (no ACK, no bus), ImportError without smbus2
            if bus is not None:
                bus.close()
            why = f"no BH1750 answers at 0x{self.address:02X} on I2C bus {self.port} ({type(exc).__name__}: {exc})"
            if probing:
                log.info("panel: %s; the night schedule sets the brightness", why)
                return False
            return self._failed(why)
        self._sensor, self.found = sensor, True
        return True

    def _failed(self, why: str) -> bool:
        if self.warning is None:
            log.warning("panel: light sensor: %s; the night schedule sets the brightness", why)
        self.warning, self.level, self.lux = why, None, None
        return False

    async def run(self) -> None:
        if self.kind == "none":
            return
        if not (self.dev / f"i2c-{self.port}").exists():
            if self.kind == "bh1750":
                self._failed(f"no I2C bus {self.dev / f'i2c-{self.port}'}")
            return
        if self.kind == "auto" and not await self._open(probing=True):
            return  # "auto" with none fitted: the usual box, not a problem
        while True:
            if self._sensor is None and not await self._open():
                await trio.sleep(RETRY_S)
                continue
            assert self._sensor is not None
            try:
                lux = await self._call(self._sensor.read_lux)
            except Exception as exc:  # OSError from i2c-dev; anything else is no reason to stop the panel either
                self._failed(f"the BH1750 stopped answering ({type(exc).__name__}: {exc})")
                self._sensor.bus.close()
                self._sensor = None
                await trio.sleep(RETRY_S)
                continue
            if self.warning is not None:
                log.info("panel: light sensor answers again")
                self.warning = None
            self.lux = lux
            self.level = settle(self.level, lux_level(lux))
            await trio.sleep(READ_EVERY_S)
