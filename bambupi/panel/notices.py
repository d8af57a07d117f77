"""The screens a printer takes when it needs someone (alarms.attention): a print's end until acknowledged (FINISHED,
FAILED, CANCELLED), DOOR OPEN during a print, and DONE SOON before the estimated end.

Pure, like :mod:`bambupi.panel.screens`, and drawn with its fonts and items: a banner in inverse video says what
happened, then which printer and job, then what to do. Kept apart from the rotation's screens because these belong
to the alarm rules: a new one comes with a new rule, not with a new page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from PIL import Image

from bambupi.panel.alarms import AttentionScreen
from bambupi.panel.screens import (
    CELL,
    MAX_SHIFT,
    Item,
    Rect,
    Text,
    View,
    clock,
    draw,
    duration,
    fit,
    print_error_words,
    state_word,
    wrap,
)

_W: Final = 128 - MAX_SHIFT[0]

HEADS: Final[Mapping[AttentionScreen, str]] = {
    "finished": "PRINT FINISHED",
    "failed": "PRINT FAILED",
    "cancelled": "PRINT CANCELLED",
    "door": "DOOR OPEN",
    "ending_soon": "DONE SOON",
    "hms": "HMS",
}
HINT: Final = "Button: seen"


def _state(printer: Mapping[str, Any]) -> Mapping[str, Any]:
    state = printer.get("state")
    return state if isinstance(state, Mapping) else {}


def notice_items(screen: AttentionScreen, view: View, *, ended_at: float | None = None) -> list[Item]:
    """The items of ``screen`` for ``view.printer``; ``ended_at`` (wall clock) is when the print ended."""
    printer = view.printer or {}
    state = _state(printer)
    page = f"{view.page[0]}/{view.page[1]}" if view.page[1] > 1 else ""
    head = fit(HEADS[screen], "body", _W - 4 - CELL["body"][0] * (len(page) + 1))
    items: list[Item] = [Rect(0, 0, _W - 1, 11, fill=1, outline=None), Text(2, 1, head, "body", fill=0)]
    if page:
        items.append(Text(_W - 2 - CELL["body"][0] * len(page), 1, page, "body", fill=0))
    items.append(Text(0, 14, fit(printer.get("name") or printer.get("id") or "", "body", _W)))
    job = state.get("subtask_name")
    if job:
        items.append(Text(0, 25, fit(job, "small", _W), "small"))
    if screen == "ending_soon":
        remaining = state.get("remaining_min")
        words = f"in {duration(remaining)}" if isinstance(remaining, int | float) and remaining >= 0 else "soon"
        items.append(Text(0, 34, fit(words, "big", _W), "big"))
        if isinstance(remaining, int | float) and remaining >= 0:
            items.append(Text(0, 55, fit(f"at {clock(view.now + remaining * 60, view)}", "small", _W), "small"))
        return items
    if screen == "door":
        items.append(Text(0, 36, fit("opened while", "body", _W)))
        items.append(Text(0, 47, fit(f"{state_word(printer).lower()}", "body", _W)))
        return items
    if screen == "failed":
        error = print_error_words(printer)
        for row, line in enumerate(wrap(error or "See the printer", "small", _W, 2)):
            items.append(Text(0, 34 + row * 8, line, "small"))
    elif ended_at is not None:
        verb = "Done" if screen == "finished" else "Stopped"
        items.append(Text(0, 35, fit(f"{verb} at {clock(ended_at, view)}", "body", _W)))
    items.append(Text(0, 55, fit(HINT, "small", _W), "small"))
    return items


def render_notice(screen: AttentionScreen, view: View, *, ended_at: float | None = None) -> Image.Image:
    """The picture, shifted for burn-in care like every other screen."""
    dx, dy = view.shift
    shifted: list[Item] = []
    for item in notice_items(screen, view, ended_at=ended_at):
        if isinstance(item, Text):
            shifted.append(Text(item.x + dx, item.y + dy, item.text, item.font, item.fill))
        else:
            shifted.append(Rect(item.x0 + dx, item.y0 + dy, item.x1 + dx, item.y1 + dy, item.fill, item.outline))
    return draw(shifted)
