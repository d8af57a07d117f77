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


def panel_png(image: Image.Image, scale: int = PNG_SCALE) -> bytes:
    """The 1-bit picture as a PNG, each pixel a ``scale``×``scale`` square (crisp, like the real screen)."""
    big = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
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
        image = trio.from_thread.run_sync(panel.image.copy)
        bottle.response.content_type = "image/png"
        bottle.response.set_header("Cache-Control", "no-store")
        return panel_png(image)

    expose(app, "GET", "/api/panel", status, Access.ANYONE)
    expose(app, "GET", "/api/panel.png", png, Access.ANYONE)
