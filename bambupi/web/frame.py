"""The page frame every page shares: one ``<head>`` (stylesheet, icons, manifest, theme), one header (the menu, who
is signed in, Log out, the theme switch) and the inline SVG icons, in ``templates/frame.html``.

A page template starts with ``% rebase('frame.html', title=..., active=...)`` and holds only its own content;
:func:`render` fills it (``{{...}}`` escapes every value) and finds ``frame.html`` beside the page's own includes.
``active`` names the menu entry the page belongs to (``dashboard``, ``cameras``, ``history``, ``power``,
``settings``; ``""`` for none). Who is signed in is filled by ``static/frame.js`` from ``/api/session``: the pages
are the same shell for everyone, what they load declares its own access.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import bottle

TEMPLATES: Final = Path(__file__).parent / "templates"

# The icons the sprite in templates/icons.html defines (icon("x") refers to its symbol "i-x").
ICONS: Final = frozenset({
    "logo", "dashboard", "camera", "history", "power", "settings", "login", "logout", "user", "theme", "stats",
    "spool", "pause", "play", "stop", "light", "download", "upload", "warn", "plug", "check", "close", "trash", "clock",
    "printer", "live", "back", "next", "log", "bell",
})


def icon(name: str, label: str = "") -> str:
    """An inline SVG icon (HTML, for ``{{!icon('camera')}}``): decorative unless ``label`` names it for a reader."""
    if name not in ICONS:
        raise ValueError(f"no icon {name!r} in templates/icons.html")
    named = f' role="img" aria-label="{bottle.html_escape(label)}"' if label else ' aria-hidden="true"'
    return f'<svg class="icon"{named} focusable="false"><use href="#i-{name}"/></svg>'


def _template(source: str, folder: Path) -> bottle.SimpleTemplate:
    # The page's own folder first (its includes), then the frame's.
    return bottle.SimpleTemplate(source, lookup=[str(folder), str(TEMPLATES)])


@functools.cache
def _cached(path: Path) -> bottle.SimpleTemplate:
    return _template(path.read_text("utf-8"), path.parent)


def render(path: Path, **values: Any) -> str:
    """``path``'s template (read once, when first opened) with ``values``, in the frame if it asks for it."""
    html: str = _cached(path).render(icon=icon, **values)
    return html


def render_fresh(path: Path, **values: Any) -> str:
    """As :func:`render`, reading ``path`` on every call (pages served as they are on disk)."""
    html: str = _template(path.read_text("utf-8"), path.parent).render(icon=icon, **values)
    return html


def page(path: Path, **values: Any) -> Callable[[], str]:
    """A route callback serving ``path`` in the frame (read per request: such pages are small and rarely opened)."""

    def serve() -> str:
        bottle.response.content_type = "text/html; charset=utf-8"
        bottle.response.set_header("Cache-Control", "no-store")
        return render_fresh(path, **values)

    return serve
