"""``GET /api/panel`` (LED modes, buzzer, current screen) and ``GET /api/panel.png`` (the OLED picture, scaled up)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Final

import bottle
import trio
from PIL import Image

from bambupi.panel.service import Panel
from bambupi.web.responses import error_response

PNG_SCALE: Final = 4


def panel_png(image: Image.Image, scale: int = PNG_SCALE) -> bytes:
    """The 1-bit picture as a PNG, each pixel a ``scale``×``scale`` square (crisp, like the real screen)."""
    big = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    out = io.BytesIO()
    big.save(out, format="PNG")
    return out.getvalue()


def add_panel_routes(app: bottle.Bottle, current: Callable[[], Panel | None]) -> None:
    """``current`` gives the running panel (the settings page may have restarted it with new settings)."""

    def status() -> str:
        panel = trio.from_thread.run_sync(current)
        if panel is None:
            return error_response(503, "the panel is restarting")
        body = trio.from_thread.run_sync(panel.status)
        bottle.response.content_type = "application/json"
        bottle.response.set_header("Cache-Control", "no-store")
        return json.dumps(body, separators=(",", ":"))

    def png() -> bytes | str:
        panel = trio.from_thread.run_sync(current)
        if panel is None:
            return error_response(503, "the panel is restarting")
        image = trio.from_thread.run_sync(panel.image.copy)
        bottle.response.content_type = "image/png"
        bottle.response.set_header("Cache-Control", "no-store")
        return panel_png(image)

    app.route("/api/panel", "GET", status)
    app.route("/api/panel.png", "GET", png)
