"""OLED pictures: golden PNGs per screen compared pixel-exactly, and no text ever leaves the 128×64 frame.

Regenerate goldens after an intended change: BAMBUPI_UPDATE_GOLDEN=1 pytest tests/test_panel_screens.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops

from bambupi.panel.screens import (
    HEIGHT,
    HMS_PAGE_S,
    SHIFTS,
    WIDTH,
    NetworkInfo,
    ScreenName,
    Text,
    View,
    hms_sorted,
    layout,
    render,
    state_word,
)
from bambupi.printer.hms import decode_hms, describe_print_error, job_result
from bambupi.printer.hms_texts import Catalog, parse_service_answer
from tests.hms_service import service_data

GOLDEN = Path(__file__).parent / "golden" / "panel"
NOW = 1_760_000_000.0  # 2025-10-09 08:53:20 UTC
NET = NetworkInfo("bambupi", "192.168.1.23", "http://192.168.1.23:8080/", "wlan0", -56)

LONG = {
    "id": "workshop", "name": "Workshop P1S by the window, left shelf", "connection": "online",
    "state": {
        "gcode_state": "RUNNING", "percent": 42, "remaining_min": 1234, "layer": 1234, "total_layers": 2500,
        "subtask_name": "a_very_long_model_name_with_supports_0.2mm_PLA_P1S_plate_1.3mf",
        "nozzle_temp": 299.6, "nozzle_target": 300, "bed_temp": 110, "bed_target": 110, "chamber_temp": 45,
        "hms": [],
        "ams": {"units": {"0": {"trays": {"0": {"type": "PLA", "remain": 80}, "1": {"type": "PETG-CF", "remain": 100},
                                          "2": {"empty": True}, "3": {"type": "TPU", "remain": -1}}},
                          "1": {"trays": {"0": {"type": "ABS", "remain": 5}}}}},
    },
}
H2D = {
    "id": "h2d", "name": "H2D", "connection": "online",
    "state": {"gcode_state": "IDLE", "nozzles": {"0": {"temp": 215, "target": 220}, "1": {"temp": 38, "target": 0}},
              "active_nozzle": 0, "bed_temp": 55, "bed_target": 55, "chamber_temp": 31, "hms": []},
}
DOOR_OPEN = {
    "id": "h2d", "name": "H2D in the print room", "connection": "online",
    "state": {"gcode_state": "RUNNING", "percent": 64, "remaining_min": 95, "layer": 210, "total_layers": 330,
              "subtask_name": "enclosure hinge", "door_open": True, "hms": []},
}
NO_AMS_FATAL = {
    "id": "a1", "name": "A1 mini", "connection": "online",
    "state": {"gcode_state": "PAUSE", "percent": 100, "remaining_min": 0, "nozzle_temp": 25, "bed_temp": 24,
              "hms": [
                  {"code": "0300_0100_0001_0007", "severity": "fatal", "standing": False,
                   "description": "Heatbed temperature abnormal: the sensor may be open-circuit"},
                  {"code": "0700_2000_0002_0001", "severity": "serious", "standing": False, "description": "x"},
              ]},
}
OFFLINE = {"id": "p1", "name": "Garage", "connection": "offline", "connection_reason": "timeout connecting to 10.0.0.9",
           "state": {"gcode_state": None, "hms": [{"code": "0500_0300_0001_0001", "severity": "common",
                                                   "standing": True, "description": "The SD card is full"}]}}
CANCELLED = {"id": "p1", "name": "Garage", "connection": "online",
             "state": {"gcode_state": "FAILED", "print_error": "0300_400C", "subtask_name": "bracket", "hms": [],
                       "job_result": {"outcome": "cancelled", "text": "Cancelled"}}}
FAILED = {"id": "p1", "name": "Garage", "connection": "online",
          "state": {"gcode_state": "FAILED", "print_error": "0300_4006", "subtask_name": "bracket", "hms": [],
                    "print_error_text": "Nozzle clogged",
                    "job_result": {"outcome": "failed", "text": "Failed: Nozzle clogged"}}}
# Official texts (Bambu's HMS table, English) with their recommended action; a placeholder code with none.
FATAL_WITH_ACTION = {
    "id": "a1", "name": "A1 mini", "connection": "online",
    "state": {"gcode_state": "PAUSE", "hms": [
        {"code": "0300_0100_0001_0007", "severity": "fatal", "standing": False, "silent": False,
         "description": "The heatbed temperature is abnormal; the sensor may have an open circuit.",
         "action": "Check whether the heatbed sensor cable is connected, then restart the printer."},
    ]},
}
SILENT = {
    "id": "x2d", "name": "X2D", "connection": "online",
    "state": {"gcode_state": "IDLE", "hms": [
        {"code": "0500_0600_0002_0070", "severity": "fatal", "standing": True, "silent": True, "description": "",
         "action": None},
    ]},
}
SILENT_AND_COMMON = {
    "id": "x2d", "name": "X2D", "connection": "online",
    "state": {"gcode_state": "IDLE", "hms": [
        {**SILENT["state"]["hms"][0]},
        {"code": "0700_2000_0002_0002", "severity": "common", "standing": False, "silent": False,
         "description": "AMS A Slot 1 is empty; please insert a new filament.", "action": None},
    ]},
}


def official(language: str) -> tuple[Catalog, ...]:
    """The real official table of the stand-in service (tests/fixtures) in ``language``; () for the shipped English."""
    if language == "en":
        return ()
    catalog = parse_service_answer(json.dumps(service_data(language)).encode(), language)
    assert isinstance(catalog, Catalog)
    return (catalog,)


def described(language: str) -> dict[str, Any]:
    """A P1S with a fatal code that has an action, and the failed job's error, decoded as the state does in
    ``language``'s official table."""
    catalogs = official(language)
    entry = decode_hms(0x0300_0200, 0x0001_0006, "P1S", catalogs).to_json(standing=False)
    error = describe_print_error("0300_4006", "P1S", catalogs)
    return {
        "id": "p1", "name": "Garage", "model": "P1S", "connection": "online",
        "state": {"gcode_state": "FAILED", "print_error": "0300_4006", "print_error_text": error.text,
                  "print_error_action": error.action, "hms": [entry],
                  "job_result": job_result("FAILED", "0300_4006", error_text=error.text)},
    }


JAPANESE = described("ja")

CASES: dict[str, View] = {
    "status-cancelled": View("status", CANCELLED, NET, NOW, ZoneInfo("UTC")),
    "status-failed": View("status", FAILED, NET, NOW, ZoneInfo("UTC")),
    "status-long": View("status", LONG, NET, NOW, ZoneInfo("Europe/Berlin")),
    "status-unsynced": View("status", LONG, NET, NOW, ZoneInfo("Europe/Berlin"), clock_synced=False, page=(2, 3)),
    "status-offline": View("status", OFFLINE, NET, NOW, ZoneInfo("UTC"), shift=(2, 1)),
    "status-paused": View("status", NO_AMS_FATAL, NET, NOW, ZoneInfo("UTC")),
    "status-door-open": View("status", DOOR_OPEN, NET, NOW, ZoneInfo("UTC"), page=(1, 3)),
    "temps-long": View("temps", LONG, NET, NOW),
    "temps-h2d": View("temps", H2D, NET, NOW),
    "hms-fatal": View("hms", NO_AMS_FATAL, NET, NOW),
    "hms-standing": View("hms", OFFLINE, NET, NOW),
    "hms-description": View("hms", FATAL_WITH_ACTION, NET, NOW, shown_s=0.0),
    "hms-action": View("hms", FATAL_WITH_ACTION, NET, NOW, shown_s=HMS_PAGE_S),
    "hms-silent": View("hms", SILENT, NET, NOW),
    "hms-japanese": View("hms", JAPANESE, NET, NOW, shown_s=0.0),
    "hms-japanese-action": View("hms", JAPANESE, NET, NOW, shown_s=HMS_PAGE_S),
    "status-failed-japanese": View("status", JAPANESE, NET, NOW, ZoneInfo("UTC")),
    "ams-two-units": View("ams", LONG, NET, NOW),
    "ams-none": View("ams", H2D, NET, NOW),
    "network": View("network", OFFLINE, NET, NOW, ZoneInfo("UTC")),
    "network-no-wifi": View("network", None, NetworkInfo("box"), NOW, ZoneInfo("UTC"), clock_synced=False),
    "network-setup-error": View("network", None, NetworkInfo(
        "bambupi", "192.168.1.23", "http://192.168.1.23/",
        setup_error="bambupi.toml:4: system.wifi_country: required with wifi_ssid"), NOW, ZoneInfo("UTC")),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str) -> None:
    image = render(CASES[name])
    assert image.mode == "1" and image.size == (WIDTH, HEIGHT)
    path = GOLDEN / f"{name}.png"
    if os.environ.get("BAMBUPI_UPDATE_GOLDEN") or not path.exists():
        assert not os.environ.get("CI"), f"golden image {path} missing"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
    golden = Image.open(path).convert("L")
    # Compared as 8-bit: ImageChops.difference does not handle 1-bit images.
    assert ImageChops.difference(image.convert("L"), golden).getbbox() is None, f"{name} differs from {path}"


def test_clock_shows_dashes_until_synchronised() -> None:
    texts = [i.text for i in layout(CASES["status-unsynced"]) if isinstance(i, Text)]
    assert "@--:--" in texts and "--:--" in texts and "-20h34m" in texts
    synced = [i.text for i in layout(CASES["status-long"]) if isinstance(i, Text)]
    assert "10:53" in synced  # 08:53 UTC in Berlin (CEST)


def test_rejected_setup_file_is_named_in_inverse_video() -> None:
    texts = [i for i in layout(CASES["network-setup-error"]) if isinstance(i, Text)]
    assert [t.text for t in texts if t.fill == 0] == [
        "bambupi.toml rejected:", "system.wifi_country:", "required with wifi_ssid"]
    assert "192.168.1.23" in " ".join(t.text for t in texts)  # still says where the page is
    bottom = render(CASES["network-setup-error"]).crop((0, 34, WIDTH - 5, HEIGHT)).convert("L")
    assert bottom.histogram()[255] > bottom.width * bottom.height // 2  # mostly lit: inverse video


def test_fatal_is_inverse_video() -> None:
    image = render(CASES["hms-fatal"])
    assert image.convert("L").histogram()[255] > WIDTH * HEIGHT // 2


def _texts(view: View) -> list[str]:
    return [i.text for i in layout(view) if isinstance(i, Text)]


def test_hms_screen_says_what_happened_then_what_to_do() -> None:
    """The official description first (with the code), the recommended action on the next page; both pages turn
    while the screen shows, so an alarm holding the screen shows both too."""
    first = " ".join(_texts(CASES["hms-description"]))
    assert "0300_0100_0001_0007" in first and "heatbed temperature is abnormal" in first and "What to do" not in first
    second = " ".join(_texts(CASES["hms-action"]))
    assert second.startswith("FATAL") and "What to do: Check whether the heatbed sensor cable is connected," in second
    assert "restart the printer." in second  # the whole action fits: nothing cut
    later = View("hms", FATAL_WITH_ACTION, NET, NOW, shown_s=2 * HMS_PAGE_S + 1)
    assert _texts(later) == _texts(CASES["hms-description"])
    # Without an action there is only the first page.
    no_action = {**FATAL_WITH_ACTION, "state": {"hms": [{**FATAL_WITH_ACTION["state"]["hms"][0], "action": None}]}}
    assert _texts(View("hms", no_action, NET, NOW, shown_s=HMS_PAGE_S)) == _texts(CASES["hms-description"])


def test_a_silent_code_is_listed_but_never_drawn_as_an_alarm() -> None:
    """A placeholder code whose severity bits say fatal: no inverse video, and it says there is nothing to do."""
    image = render(CASES["hms-silent"])
    assert image.convert("L").histogram()[255] < WIDTH * HEIGHT // 8  # mostly dark: not the fatal look
    texts = _texts(CASES["hms-silent"])
    assert texts[0] == "NO ACTION NEEDED" and "FATAL" not in " ".join(texts)
    assert "0500_0600_0002_0070" in texts and "No description published" in texts
    # Beside a real error, the real error leads the screen and the silent code is counted last.
    assert [e["code"] for e in hms_sorted(SILENT_AND_COMMON)] == ["0700_2000_0002_0002", "0500_0600_0002_0070"]
    assert _texts(View("hms", SILENT_AND_COMMON, NET, NOW))[:2] == ["COMMON", "1/2"]


def test_a_language_the_fonts_cannot_draw_is_shown_in_the_official_english_text() -> None:
    """The OLED's fonts are Latin-1: the Japanese table's texts would print as "????". The screen shows the official
    English text instead, pixel for pixel what an English box shows; a language the fonts draw keeps its own."""
    hms = JAPANESE["state"]["hms"][0]
    assert hms["description"].startswith("ノズルの温度") and hms["action"]  # the state holds the owner's language
    english = described("en")
    pages: tuple[tuple[ScreenName, float], ...] = (("hms", 0.0), ("hms", HMS_PAGE_S), ("status", 0.0))
    for screen, shown_s in pages:
        japanese_view = View(screen, JAPANESE, NET, NOW, ZoneInfo("UTC"), shown_s=shown_s)
        english_view = View(screen, english, NET, NOW, ZoneInfo("UTC"), shown_s=shown_s)
        texts = _texts(japanese_view)
        assert not any("?" in text for text in texts), texts
        assert ImageChops.difference(render(japanese_view).convert("L"),
                                     render(english_view).convert("L")).getbbox() is None
    assert "The nozzle temperature" in " ".join(_texts(View("hms", JAPANESE, NET, NOW)))
    assert "What to do:" in " ".join(_texts(View("hms", JAPANESE, NET, NOW, shown_s=HMS_PAGE_S)))
    german = described("de")
    assert german["state"]["hms"][0]["description"] in " ".join(_texts(View("hms", german, NET, NOW)))  # as it is


anything = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                     st.text(max_size=80))
names = st.text(max_size=120)


@st.composite
def printers(draw: Any) -> dict[str, Any]:
    trays = st.dictionaries(st.text(max_size=3), st.one_of(
        st.fixed_dictionaries({"type": anything, "remain": anything}), st.just({"empty": True}), anything), max_size=6)
    return {
        "id": draw(names), "name": draw(st.one_of(st.none(), names)),
        "connection": draw(st.sampled_from(["online", "offline", "stale", "connecting", None])),
        "connection_reason": draw(st.one_of(st.none(), names)),
        "state": {
            "gcode_state": draw(st.sampled_from([None, "IDLE", "RUNNING", "PAUSE", "FINISH", "FAILED", "PREPARE"])),
            **{key: draw(anything) for key in ("percent", "remaining_min", "layer", "total_layers", "nozzle_temp",
                                               "nozzle_target", "bed_temp", "bed_target", "chamber_temp",
                                               "chamber_target", "subtask_name", "active_nozzle")},
            "nozzles": draw(st.dictionaries(st.text(max_size=3), st.fixed_dictionaries(
                {"temp": anything, "target": anything}), max_size=3)),
            "hms": draw(st.lists(st.fixed_dictionaries({
                "code": names, "severity": st.sampled_from(["fatal", "serious", "common", "info", "unknown"]),
                "description": names, "standing": st.booleans(), "silent": st.booleans(),
                "action": st.one_of(st.none(), names)}), max_size=4)),
            "ams": {"units": draw(st.dictionaries(st.text(max_size=2), st.fixed_dictionaries({"trays": trays}),
                                                  max_size=5))},
        },
    }


@settings(max_examples=300, deadline=None)
@given(
    screen=st.sampled_from(["status", "temps", "hms", "ams", "network"]),
    printer=st.one_of(st.none(), printers()),
    network=st.builds(NetworkInfo, names, st.one_of(st.none(), names), st.one_of(st.none(), names),
                      st.one_of(st.none(), names), st.one_of(st.none(), st.integers(-120, 0))),
    shift=st.sampled_from(SHIFTS),
    synced=st.booleans(),
    page=st.tuples(st.integers(1, 12), st.integers(1, 12)),
    now=st.floats(0, 4e9),
    shown_s=st.floats(0, 1e6),
)
def test_text_never_leaves_the_frame(
    screen: Any, printer: Any, network: NetworkInfo, shift: tuple[int, int], synced: bool,
    page: tuple[int, int], now: float, shown_s: float,
) -> None:
    view = View(screen, printer, network, now, ZoneInfo("UTC"), clock_synced=synced, shift=shift, page=page,
                shown_s=shown_s)
    for item in layout(view):
        x0, y0, x1, y1 = item.box
        assert x0 >= 0 and y0 >= 0 and x1 <= WIDTH and y1 <= HEIGHT, (item, view.screen)
        if isinstance(item, Text):
            assert all(32 <= ord(c) <= 255 and not 127 <= ord(c) < 160 for c in item.text)
    render(view)


def test_a_stop_reads_cancelled_and_a_failure_names_its_error() -> None:
    cancelled = [i.text for i in layout(CASES["status-cancelled"]) if isinstance(i, Text)]
    assert "Cancelled" in cancelled and not any("Fail" in t for t in cancelled)
    failed = [i.text for i in layout(CASES["status-failed"]) if isinstance(i, Text)]
    assert "Failed" in failed and "Nozzle clogged" in failed and "0300_4006" not in failed


def test_an_end_not_known_yet_reads_stopping_never_failed() -> None:
    """A real stop reports FAILED without an error first (issue 13, item 6): the OLED says "Stopping..." in its
    Latin-1 font (no "?" for the ellipsis) until the box knows how the job ended."""
    pending = {"id": "p1", "name": "Garage", "connection": "online",
               "state": {"gcode_state": "FAILED", "print_error": None, "subtask_name": "bracket", "hms": [],
                         "job_result": {"outcome": "pending", "text": "Stopping…"}}}
    shown = [i.text for i in layout(View("status", pending, NET, NOW, ZoneInfo("UTC"))) if isinstance(i, Text)]
    assert "Stopping..." in shown and not any("Fail" in t or "?" in t for t in shown)


def test_a_printer_whose_reports_stopped_reads_no_data_as_on_the_page() -> None:
    # The page says "Reconnecting — no data"; the OLED has room for the part that matters, never "Online".
    assert state_word({"connection": "stale", "state": {"gcode_state": "RUNNING"}}) == "No data"
    assert state_word({"connection": "offline", "state": {"gcode_state": "RUNNING"}}) == "Offline"
