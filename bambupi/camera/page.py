"""The camera page: every printer's live view (the MJPEG relay in an ``<img>``) and its snapshot history."""

from __future__ import annotations

from pathlib import Path

import bottle

PAGE = Path(__file__).with_name("camera.html")


def add_camera_page(app: bottle.Bottle) -> None:
    def page() -> str:
        bottle.response.content_type = "text/html; charset=utf-8"
        bottle.response.set_header("Cache-Control", "no-store")
        return PAGE.read_text("utf-8")

    app.route("/camera", "GET", page)
