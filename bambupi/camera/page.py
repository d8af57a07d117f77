"""The camera page: every printer's live view (the MJPEG relay in an ``<img>``) and its snapshot history."""

from __future__ import annotations

from pathlib import Path

import bottle

from bambupi.web.responses import html_page

PAGE = Path(__file__).with_name("camera.html")


def add_camera_page(app: bottle.Bottle) -> None:
    app.route("/camera", "GET", html_page(PAGE))
