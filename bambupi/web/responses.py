"""Answers every Bottle route gives the same way: JSON bodies, request JSON, static HTML pages (errors:
``route_contract``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bottle

from bambupi.web import frame


def json_response(status: int, body: Any) -> str:
    bottle.response.status = status
    bottle.response.content_type = "application/json"
    bottle.response.set_header("Cache-Control", "no-store")
    return json.dumps(body, separators=(",", ":"), allow_nan=False)


def read_json_body() -> dict[str, Any] | None:
    """The request's JSON object, or None when the body is not one."""
    try:
        data = json.loads(bottle.request.body.read() or b"null")
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested deeper than the parser's stack
        return None
    return data if isinstance(data, dict) else None


def html_page(path: Path) -> Callable[[], str]:
    """A route callback serving one HTML page (read per request: pages are small and rarely opened), drawn in the
    page frame when it starts with ``% rebase('frame.html', title=..., active=...)`` (see ``bambupi/web/frame.py``)."""
    return frame.page(path)
