"""Long printer names scroll on their line (a marquee) instead of being cut for good ("Demo P1S (simula.."): pure
rules, the status screen's pixels, and the running panel on luma's dummy device on the fake clock."""

from __future__ import annotations

import dataclasses
from typing import Any

import trio
from PIL import Image, ImageChops

from bambupi.alerts import QuietHours
from bambupi.config import AlertsConfig, PanelConfig
from bambupi.panel.screens import (
    CELL,
    MARQUEE_HOLD_S,
    MARQUEE_STEP_S,
    NetworkInfo,
    Text,
    View,
    changes_within,
    draw,
    layout,
    marquee,
)
from bambupi.panel.service import Panel
from bambupi.state_hub import StateHub
from tests.support import printer_config, report

NAME = "Demo P1S (simulated)"  # 20 characters; the title has room for 21, or 17 beside a page number "1/2"


def test_a_name_that_fits_never_moves() -> None:
    assert {marquee("Workshop P1S", "body", 126, t / 4) for t in range(200)} == {"Workshop P1S"}


def test_a_long_name_shows_its_start_then_scrolls_to_its_end_and_starts_again() -> None:
    width = 17 * 6
    shown = [marquee(NAME, "body", width, t * MARQUEE_STEP_S / 2) for t in range(40)]
    assert shown[0] == "Demo P1S (simul.."  # its start, marked as cut
    assert marquee(NAME, "body", width, MARQUEE_HOLD_S - 0.01) == shown[0]
    steps = len(NAME) - 17
    windows = [marquee(NAME, "body", width, MARQUEE_HOLD_S + k * MARQUEE_STEP_S) for k in range(steps)]
    assert windows == [NAME[k + 1:k + 18] for k in range(steps)]  # one character a step, nothing skipped
    assert windows[-1].endswith("(simulated)")
    assert all(len(text) <= 17 for text in shown)
    cycle = 2 * MARQUEE_HOLD_S + steps * MARQUEE_STEP_S
    assert marquee(NAME, "body", width, cycle + 0.1) == shown[0]
    # Every character of the name is shown at some time in a cycle.
    seen = {i for k in range(steps + 1) for i in range(k, k + 17)}
    assert seen == set(range(len(NAME)))


def _title(view: View) -> Text:
    return next(item for item in layout(view) if isinstance(item, Text) and item.y == 0 and item.x == 0)


def test_the_status_title_scrolls_and_the_rest_of_the_picture_holds_still() -> None:
    printer = {"id": "demo", "name": NAME, "connection": "online", "state": {"gcode_state": "IDLE"}}
    still = View("status", printer, page=(1, 2), now=1_760_000_000.0, clock_synced=False)
    later = View("status", printer, page=(1, 2), now=1_760_000_000.0, clock_synced=False,
                 shown_s=MARQUEE_HOLD_S + 3 * MARQUEE_STEP_S)
    assert _title(still).text == "Demo P1S (simul.." and _title(later).text == NAME[3:]
    before, after = draw(layout(still)), draw(layout(later))
    changed = ImageChops.difference(before.convert("L"), after.convert("L")).getbbox()
    assert changed is not None and changed[3] <= CELL["body"][1]  # only the title's line changed
    assert changes_within(dataclasses.replace(later, shown_s=MARQUEE_HOLD_S), MARQUEE_STEP_S)  # mid-scroll
    assert not changes_within(later, MARQUEE_STEP_S)  # holding at its end
    assert not changes_within(View("status", {**printer, "name": "Demo"}), MARQUEE_STEP_S)


async def test_the_running_panel_scrolls_a_long_name_on_the_dummy_oled(autojump_clock: Any) -> None:
    name = "Workshop P1S by the window"  # 26 characters in a title of 21
    hub = StateHub([printer_config("p1", name=name)])
    panel = Panel(
        hub, PanelConfig(oled="virtual", gpio="none", rotate_s=60), QuietHours(AlertsConfig()),
        clock_synced=lambda: False, network=lambda url: NetworkInfo("box", "10.0.0.2", url), boot_network_s=0,
    )
    looks: list[Image.Image] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(panel.run)
        hub.set_connection("p1", "online")
        hub.apply_message("p1", report(gcode_state="IDLE", hms=[]))
        await trio.sleep(1)
        assert panel.current == ("status", "p1")
        for _ in range(80):  # 10 s, looking 8 times a second at what the (dummy) OLED got
            looks.append(panel.screen.device.image.crop((0, 0, 128, 60)).convert("L"))
            await trio.sleep(0.125)
        nursery.cancel_scope.cancel()
    shown: list[Image.Image] = []
    for look in looks:
        if not shown or ImageChops.difference(look, shown[-1]).getbbox() is not None:
            shown.append(look)
    steps = len(name) - 21
    texts = [f"{name[:19]}.."] + [name[k:k + 21] for k in range(1, steps + 1)] + [f"{name[:19]}.."]
    # The title line as each of those texts, the rest of the picture as the first look: nothing else moved.
    expected = []
    for text in texts:
        picture = looks[0].copy()
        picture.paste(draw([Text(0, 0, text)]).crop((0, 0, 128, CELL["body"][1])).convert("L"), (0, 0))
        expected.append(picture)
    assert len(shown) >= len(texts)
    for index, (got, want) in enumerate(zip(shown, expected, strict=False)):
        assert ImageChops.difference(got, want).getbbox() is None, f"step {index}: not {texts[index]!r}"


def test_the_network_screen_s_printer_line_scrolls_too() -> None:
    printer = {"id": "demo", "name": NAME, "connection": "online", "state": {"gcode_state": "RUNNING"}}
    net = NetworkInfo("bambupi", "192.0.2.2", None, None, None)

    def line(shown_s: float) -> str:
        view = View("network", printer, net, shown_s=shown_s)
        return next(item.text for item in layout(view) if isinstance(item, Text) and item.y == 44)

    assert line(0) == "Demo P1S (simulated): P.."
    ends = {line(MARQUEE_HOLD_S + k * MARQUEE_STEP_S) for k in range(10)}
    assert any(text.endswith("Printing") for text in ends)
