"""``GET /api/panel`` (LED modes, buzzer, current screen) and ``GET /api/panel.png`` (the OLED picture, scaled up)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, Final

import bottle
import trio
from PIL import Image

from bambupi.panel.service import Panel
from bambupi.web.route_contract import Access, Unavailable, expose

PNG_SCALE: Final = 4


def lit_grey(on: bool, contrast: int | None) -> int:
    """How bright a lit pixel looks on the page: the OLED's contrast (dimmed at night, in a dark room, when idle),
    never so dark that a dimmed screen looks off; black when the screen is off (asleep)."""
    if not on:
        return 0
    level = 255 if contrast is None else min(max(contrast, 0), 255)
    return 64 + round(191 * level / 255)


def panel_png(image: Image.Image, scale: int = PNG_SCALE, grey: int = 255) -> bytes:
    """The 1-bit picture as a PNG, each pixel a ``scale``×``scale`` square (crisp, like the real screen), the lit
    ones ``grey``."""
    big = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    if grey != 255:
        big = big.convert("L").point(lambda v: grey if v else 0)
    out = io.BytesIO()
    big.save(out, format="PNG")
    return out.getvalue()


def add_panel_routes(app: bottle.Bottle, current: Callable[[], Panel | None]) -> None:
    """``current`` gives the running panel (the settings page may have restarted it with new settings)."""

    def running() -> Panel:
        panel = trio.from_thread.run_sync(current)
        if panel is None:
            raise Unavailable("the panel is restarting")
        return panel

    def status() -> dict[str, Any]:
        return trio.from_thread.run_sync(running().status)

    def png() -> bytes:
        panel = running()
        image, grey = trio.from_thread.run_sync(lambda: (panel.image.copy(), lit_grey(panel.screen.on,
                                                                                        panel.screen.contrast)))
        bottle.response.content_type = "image/png"
        bottle.response.set_header("Cache-Control", "no-store")
        return panel_png(image, grey=grey)

    expose(app, "GET", "/api/panel", status, Access.ANYONE)
    expose(app, "GET", "/api/panel.png", png, Access.ANYONE)

    def button() -> dict[str, Any]:
        """The box's button, pressed from the page (a short press: acknowledge, else the next screen)."""
        return trio.from_thread.run_sync(running().press)

    # The owner's: like the page's other controls, and a press cancels a smart plug's auto-off.
    expose(app, "POST", "/api/panel/button", button, Access.OPERATOR)
