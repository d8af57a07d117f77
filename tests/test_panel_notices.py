"""The screens a printer takes when it needs someone (bambupi/panel/notices.py): every one stays inside the frame
(minus the burn-in margin) whatever the printer's name, job, error or estimate, and says what it is about."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from bambupi.panel.alarms import AttentionScreen
from bambupi.panel.notices import HEADS, notice_items, render_notice
from bambupi.panel.screens import HEIGHT, MAX_SHIFT, SHIFTS, WIDTH, Text, View

NOTICES = [s for s in get_args(AttentionScreen) if s != "hms"]


def printer(name: str, job: str | None, remaining: object, error: str | None) -> dict[str, Any]:
    return {"id": "p1", "name": name, "model": "X1C", "connection": "online",
            "state": {"gcode_state": "RUNNING", "subtask_name": job, "remaining_min": remaining,
                      "print_error": "0300_8003" if error else None, "print_error_text": error}}


PRINTERS = [
    printer("Garage", "Benchy", 5, None),
    printer("Demo P1S (simulated, in the workshop upstairs)", "A very long job name_PLA_0.2mm_4h12m.gcode.3mf",
            99999, "Nozzle clogged: the extruder pushed filament but none came out for a long while, check it"),
    printer("", None, None, None),
    printer("x" * 300, "y" * 300, -3, "z" * 500),
]


@pytest.mark.parametrize("screen", NOTICES)
@pytest.mark.parametrize("p", PRINTERS)
@pytest.mark.parametrize("page", [(1, 1), (2, 3)])
def test_every_notice_stays_inside_the_frame(screen: AttentionScreen, p: dict[str, Any], page: tuple[int, int]) -> None:
    view = View(screen="status", printer=p, now=1.75e9, page=page)
    items = notice_items(screen, view, ended_at=1.75e9 - 600)
    for item in items:
        x0, y0, x1, y1 = item.box
        assert x0 >= 0 and y0 >= 0 and x1 <= WIDTH - MAX_SHIFT[0] and y1 <= HEIGHT - MAX_SHIFT[1], (screen, item)
    heads = [i for i in items if isinstance(i, Text) and i.fill == 0]
    assert heads[0].text == HEADS[screen][: len(heads[0].text)] and heads[0].text
    for shift in SHIFTS:
        image = render_notice(screen, View(screen="status", printer=p, now=1.75e9, page=page, shift=shift))
        assert image.size == (WIDTH, HEIGHT)


def test_what_each_notice_says() -> None:
    p = PRINTERS[0]
    view = View(screen="status", printer=p, now=0.0, clock_synced=True)
    words = {s: [i.text for i in notice_items(s, view, ended_at=0.0) if isinstance(i, Text)] for s in NOTICES}
    assert "in 5m" in words["ending_soon"] and "Benchy" in words["ending_soon"]
    assert "Garage" in words["door"] and "printing" in words["door"]
    failed = printer("Garage", "Benchy", 0, "Nozzle clogged")
    said = [i.text for i in notice_items("failed", View(screen="status", printer=failed)) if isinstance(i, Text)]
    assert "Nozzle clogged" in said
