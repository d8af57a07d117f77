"""The camera page: every printer's live view (the MJPEG relay in an ``<img>``) and its snapshot history."""

from __future__ import annotations

from pathlib import Path

import bottle

from bambupi.web import frame
from bambupi.web.route_contract import Access, expose

PAGE = Path(__file__).with_name("camera.html")


def add_camera_page(app: bottle.Bottle) -> None:
    # A shell for everyone: the stream, snapshots and history it loads follow web.camera_access (bambupi/web/login.py).
    expose(app, "GET", "/camera", frame.page(PAGE), Access.ANYONE)
