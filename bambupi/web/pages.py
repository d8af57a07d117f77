"""The pages a person opens: the dashboard (``GET /``), the MQTT debug page per printer, and their static files.

Plain HTML, CSS and JavaScript shipped inside the package (no build step, no CDN: the box is often offline).
Every page is drawn in the same frame (``bambupi/web/frame.py``). The pages are shells; ``static/app.js`` fills
the dashboard from ``/ws`` and ``static/mqtt.js`` polls the capture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import bottle
import trio

from bambupi.state_hub import StateHub
from bambupi.web import frame
from bambupi.web.route_contract import Access, NotFound, UpgradeRequired, expose

WEB = Path(__file__).parent
TEMPLATES: Final = WEB / "templates"
STATIC: Final = WEB / "static"
_MIME: Final = {".webmanifest": "application/manifest+json", ".js": "text/javascript", ".svg": "image/svg+xml"}


def _file(root: Path, name: str, *, cache: str) -> Any:
    mimetype: str | bool = _MIME.get(Path(name).suffix, True)  # True: Bottle guesses from the file name
    response = bottle.static_file(name, root=str(root), mimetype=mimetype, charset="utf-8")
    # The box updates in place: the browser asks again (cheaply, with If-Modified-Since) rather than trust a copy.
    response.set_header("Cache-Control", cache)
    response.set_header("X-Content-Type-Options", "nosniff")
    return response


def _framed(name: str) -> str:
    # A shell in the page frame (templates/frame.html): the same for everyone, so the browser may keep it but asks.
    bottle.response.content_type = "text/html; charset=utf-8"
    bottle.response.set_header("Cache-Control", "no-cache")
    bottle.response.set_header("X-Content-Type-Options", "nosniff")
    return frame.render(TEMPLATES / name)


def add_page_routes(app: bottle.Bottle, hub: StateHub) -> None:
    def dashboard() -> Any:
        return _framed("dashboard.html")

    def mqtt_page(printer_id: str) -> Any:
        if not trio.from_thread.run_sync(hub.has, printer_id):
            raise NotFound(f"no printer with id {printer_id!r}")
        return _framed("mqtt.html")

    def static(name: str) -> Any:
        return _file(STATIC, name, cache="no-cache")

    def favicon() -> Any:
        return _file(STATIC, "favicon.ico", cache="max-age=86400")

    def manifest() -> Any:
        return _file(STATIC, "manifest.webmanifest", cache="no-cache")

    def ws_without_upgrade() -> None:
        raise UpgradeRequired("this is a WebSocket endpoint: connect with a WebSocket client")

    # Pages are shells for everyone; what they load declares its own access.
    expose(app, "GET", "/", dashboard, Access.ANYONE)
    expose(app, "GET", "/printers/<printer_id>/mqtt", mqtt_page, Access.ANYONE)
    expose(app, "GET", "/static/<name:path>", static, Access.ANYONE)
    expose(app, "GET", "/favicon.ico", favicon, Access.ANYONE)
    expose(app, "GET", "/manifest.webmanifest", manifest, Access.ANYONE)
    expose(app, "GET", "/ws", ws_without_upgrade, Access.ANYONE)
