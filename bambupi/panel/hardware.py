"""The hardware behind the panel: which OLED and GPIO to use, and the screen adapter.

``auto`` uses real hardware when it is there (``/dev/i2c-<port>``, a ``/dev/gpiochip*``) and otherwise falls back to
``none`` with one log line, so a box without a screen still works. ``virtual`` uses gpiozero's mock pins and luma's
dummy device; the web API mirrors them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import trio
from PIL import Image

from bambupi.config import PanelConfig

log = logging.getLogger("bambupi.panel")

DEV: Final = Path("/dev")  # tests point this at a fake tree


@dataclass(frozen=True)
class Hardware:
    oled: str  # ssd1306 | sh1106 | virtual | none
    gpio: str  # real | virtual | none


def choose_hardware(config: PanelConfig, dev: Path = DEV) -> Hardware:
    oled: str = config.oled  # "auto" resolves to what is there
    gpio: str = config.gpio
    if oled == "auto":
        found = (dev / f"i2c-{config.i2c_port}").exists()
        oled = "ssd1306" if found else "none"
        if not found:
            log.info("panel: no %s, so no OLED (set [panel] oled to use one)", dev / f"i2c-{config.i2c_port}")
    if gpio == "auto":
        found = any(dev.glob("gpiochip*"))
        gpio = "real" if found else "none"
        if not found:
            log.info("panel: no GPIO chip in %s, so no LEDs, buzzer or button", dev)
    return Hardware(oled=oled, gpio=gpio)


def open_oled(kind: str, config: PanelConfig) -> Any:
    """The luma device for ``kind`` (None for ``none``); raises OSError/ImportError-like errors for missing hardware."""
    if kind == "none":
        return None
    rotate = config.rotation // 90
    if kind == "virtual":
        from luma.core.device import dummy

        return dummy(width=128, height=64, rotate=rotate, mode="1")
    from luma.core.interface.serial import i2c

    serial = i2c(port=config.i2c_port, address=config.i2c_address)
    if kind == "sh1106":
        from luma.oled.device import sh1106

        return sh1106(serial, rotate=rotate)
    from luma.oled.device import ssd1306

    return ssd1306(serial, rotate=rotate)


class Screen:
    """The OLED: shows an image, sets contrast, switches off. Real I2C writes run in a worker thread, one at a time;
    the dummy device only copies into memory and is written in trio's thread (so fast-clock tests stay threadless).
    """

    def __init__(self, device: Any, *, threaded: bool) -> None:
        self.device = device
        self.threaded = threaded
        self.image: Image.Image | None = None
        self.contrast: int | None = None
        self.on = True
        self._lock = trio.Lock()
        self._failed = False

    async def _call(self, fn: Any, *args: Any) -> None:
        if self.device is None or self._failed:
            return
        try:
            if self.threaded:
                async with self._lock:
                    await trio.to_thread.run_sync(fn, *args)
            else:
                fn(*args)
        except OSError as exc:
            # A loose wire: say so once and keep the rest of the panel running.
            self._failed = True
            log.warning("panel: the OLED stopped answering (%s); the screen is disabled until restart", exc)

    async def show(self, image: Image.Image) -> None:
        if self.image is not None and image.tobytes() == self.image.tobytes() and self.on:
            return
        self.image = image
        if not self.on:
            self.on = True
            if self.device is not None:
                await self._call(self.device.show)
        if self.device is not None:
            await self._call(self.device.display, image)

    async def set_contrast(self, level: int) -> None:
        if level != self.contrast:
            self.contrast = level
            if self.device is not None:
                await self._call(self.device.contrast, level)

    async def off(self) -> None:
        if self.on:
            self.on = False
            if self.device is not None:
                await self._call(self.device.hide)
