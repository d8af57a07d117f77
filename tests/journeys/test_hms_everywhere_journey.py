"""Issue 15's "done when", end to end: with the stand-in HMS service, a code from each module and each severity shows
its official description and recommended action in the owner's language (English and German) on the page, in a
notification and on the OLED; a code with no official text raises no alarm (no notification, no red or amber LED, no
buzzer); and a box that starts with no network to the service and no stored table still names a code with the
shipped English text and links its support article.

Everything is real: the service from a config file, the simulated printer over MQTT/TLS, the HMS stand-in serving
Bambu's own texts (tests/hms_service.py, from ha-bambulab's copies of the official tables), an ntfy stand-in
(tests/notify_services.py), the virtual panel (``/api/panel`` and the OLED's picture at ``/api/panel.png``) and a
phone-sized Chromium. The expected words below are the official texts as a person reads them, written out here.
"""

from __future__ import annotations

import io
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from PIL import Image

from bambupi.config import WebConfig
from bambupi.panel.screens import CELL, HEIGHT, MAX_SHIFT, WIDTH, FontName, Text, draw, wrap
from bambupi.web.frontdoor import FrontDoor
from tests.browser import ARTIFACTS
from tests.hms_service import HmsService, stand_in
from tests.journeys.harness import SERIAL, Journey, journey
from tests.journeys.test_hms_texts_journey import open_hms_list, shown
from tests.notify_services import NTFY_TOKEN, FakeServices
from tests.plug_servers import FakePlugServer
from tests.support import wait_for

WAIT = 60.0  # a limit for a hang only: every wait is for something the page, the panel or a receiver shows
NAME = "Garage P1S"  # the journey printer's name, first in every notification's title

# code -> (attr, code) as the printer reports it, and the official words per language: (description, action).
# Each module of the official table (03 motion, 05 mainboard, 07 AMS, 0C camera, 12 AMS lite, 18 AMS HT) and each
# severity (fatal 0001, serious 0002, common 0003), every one with a recommended action.
CODES: dict[str, tuple[tuple[int, int], dict[str, tuple[str, str]]]] = {
    "0300_0200_0001_0006": ((0x0300_0200, 0x0001_0006), {
        "en": ("The nozzle temperature is abnormal; the sensor may have a short circuit.",
               "Please check whether the connector is properly plugged in."),
        "de": ("Die Düsentemperatur ist abnormal. Der Sensor könnte einen Kurzschluss haben.",
               "Bitte prüfen Sie, ob der Stecker richtig eingesteckt ist."),
    }),
    "0500_0400_0001_0001": ((0x0500_0400, 0x0001_0001), {
        "en": ("Failed to download print job.", "Please check your network connection."),
        "de": ("Der Druckauftrag konnte nicht heruntergeladen werden.",
               "Bitte überprüfen Sie Ihre Netzwerkverbindung."),
    }),
    "0500_0100_0003_0004": ((0x0500_0100, 0x0003_0004), {
        "en": ("Not enough space on MicroSD Card. Video recording and timelapse recording cannot be performed.",
               "Please clear some space."),
        "de": ("Nicht genügend Speicherplatz auf der SD-Karte.", "Bitte etwas Speicherplatz freigeben."),
    }),
    "0700_2000_0002_0001": ((0x0700_2000, 0x0002_0001), {
        "en": ("AMS A Slot 1 filament has run out.", "Please insert a new filament."),
        "de": ("AMS A Slot 1 Filament ist aufgebraucht.", "Bitte legen Sie ein neues Filament ein."),
    }),
    "0C00_0300_0003_0006": ((0x0C00_0300, 0x0003_0006), {
        "en": ("Purged filament may have piled up in the waste chute.", "Please check and clean the chute."),
        "de": ("Abfallmaterial hat sich vielleicht im Auswurfschacht angesammelt.",
               "Bitte prüfen und reinigen Sie den Auswurfschacht."),
    }),
    "1200_2000_0002_0001": ((0x1200_2000, 0x0002_0001), {
        "en": ("AMS Lite A Slot1 filament has run out.", "Please insert a new filament."),
        "de": ("AMS A Slot1 Filament ist aufgebraucht.", "Bitte legen Sie ein neues Filament ein."),
    }),
    "1800_2000_0002_0001": ((0x1800_2000, 0x0002_0001), {
        "en": ("AMS-HT A Slot 1 filament has run out.", "Please insert a new filament."),
        "de": ("AMS-HT A Slot 1 Filament ist aufgebraucht.", "Bitte legen Sie ein neues Filament ein."),
    }),
}
SEVERITY = {"0001": "fatal", "0002": "serious", "0003": "common"}
# The AMS code goes first, alone beside the placeholder: a serious code takes the OLED and sounds the buzzer once.
FIRST = "0700_2000_0002_0001"
# Listed in the official table with no text, with the fatal severity bits: shown, never an alarm.
PLACEHOLDER = (0x0500_0100, 0x0001_000A)
PLACEHOLDER_CODE = "0500_0100_0001_000A"


def config(hms_service: str, ntfy_port: int, language: str) -> str:
    return f"""
[alerts]
language = "{language}"
hms_service = "{hms_service}"

[panel]
oled = "virtual"
gpio = "virtual"
buzzer = "passive"
rotate_s = 1

[[notify]]
name = "phone"
kind = "ntfy"
url = "http://127.0.0.1:{ntfy_port}"
topic = "garage"
token = "{NTFY_TOKEN}"
events = ["hms"]
min_severity = "common"
attach_snapshot = false
"""


async def panel(j: Journey) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=j.base) as client:
        answer: dict[str, Any] = (await client.get("/api/panel")).json()
        return answer


async def oled(j: Journey) -> Image.Image:
    """The OLED's picture as the virtual panel shows it, one pixel a pixel (the route scales it up)."""
    async with httpx.AsyncClient(base_url=j.base) as client:
        png = (await client.get("/api/panel.png")).content
    return Image.open(io.BytesIO(png)).convert("1").resize((WIDTH, HEIGHT), Image.Resampling.NEAREST)


def rows(image: Image.Image) -> list[str]:
    """The picture as one string of 0/1 a pixel row (so a line of text can be looked for with str.find)."""
    pixels = image.convert("1").load()
    assert pixels is not None
    return ["".join("1" if pixels[x, y] else "0" for x in range(image.width)) for y in range(image.height)]


def shows_line(screen: list[str], line: str, font: FontName = "small") -> bool:
    """Whether ``line``, drawn in ``font`` as screens.py draws text, is on ``screen`` anywhere (the screen shifts
    its picture a pixel or two against burn-in)."""
    width, height = CELL[font][0] * len(line), CELL[font][1]
    glyphs = rows(draw([Text(0, 0, line, font)]).crop((0, 0, width, height)))
    for y in range(len(screen) - height + 1):
        x = screen[y].find(glyphs[0])
        while x != -1:
            if all(screen[y + dy][x:x + width] == glyphs[dy] for dy in range(height)):
                return True
            x = screen[y].find(glyphs[0], x + 1)
    return False


def shows_text(screen: list[str], text: str, lines: int) -> bool:
    """Whether the screen shows ``text`` word-wrapped as screens.py wraps it (the width left by the shift), every
    line of it."""
    return all(shows_line(screen, line) for line in wrap(text, "small", WIDTH - MAX_SHIFT[0] - 2, lines))


def ntfy_messages(receiver: FakeServices) -> list[dict[str, Any]]:
    return [r.json for r in receiver.of("ntfy") if isinstance(r.json, dict)]


def told_about(receiver: FakeServices, code: str) -> list[dict[str, Any]]:
    return [m for m in ntfy_messages(receiver) if code in m.get("message", "") or code in m.get("title", "")]


async def told_once(receiver: FakeServices, code: str) -> dict[str, Any]:
    """The one notification about ``code``, once it arrived."""
    await wait_for(lambda: told_about(receiver, code), WAIT, what=f"{code}'s notification")
    [message] = told_about(receiver, code)
    return message


def entry(code: str, inner: str = "") -> str:
    return f'li[data-code="{code}"]' + (f" {inner}" if inner else "")


async def table_from_service(j: Journey) -> None:
    """Wait until the box has the stand-in's table for the printer's device type (``/healthz``), so the codes raised
    next are named from it from their first event on."""
    async def fetched() -> bool:
        async with httpx.AsyncClient(base_url=j.base) as client:
            health = (await client.get("/healthz")).json()
        tables = health["components"]["hms_fetch"]["tables"]
        return bool(tables.get(SERIAL[:3], {}).get("source") == "service")

    await wait_for(fetched, WAIT, what="the HMS table from the stand-in")


@pytest.mark.parametrize("language", ["de", "en"])
async def test_each_module_and_severity_in_one_text_on_the_page_in_a_notification_and_on_the_oled(
    tmp_path: Path, language: str
) -> None:
    service = HmsService()
    receiver = FakeServices()
    async with trio.open_nursery() as nursery:
        hms_server: FakePlugServer = await nursery.start(stand_in(service).run)
        ntfy_port = await nursery.start(FrontDoor(receiver.app, WebConfig(host="127.0.0.1", port=0)).run)
        async with journey(tmp_path, extra=config(hms_server.url, ntfy_port, language)) as j:
            await table_from_service(j)
            page = await j.phone()
            await j.set_password(page)
            await wait_for(lambda: _green_on(j), WAIT, what="the panel's green LED")
            before = await panel(j)
            assert before["buzzer"]["count"] == 0

            # The placeholder alone: listed on the page with "no action needed", on the OLED's rotation, and no
            # alarm anywhere.
            j.sim.printer.set_hms([PLACEHOLDER])
            await open_hms_list(page, j)
            await page.wait_for(f"{shown(j, entry(PLACEHOLDER_CODE, '.note'))}.includes('No action needed')", WAIT)

            async def on_the_oled_rotation() -> bool:
                return bool((await panel(j))["screen"] == "hms")

            await wait_for(on_the_oled_rotation, WAIT, what="the HMS screen in the OLED's rotation")
            quiet = await panel(j)
            assert quiet["leds"]["red"]["mode"] == "off", quiet["leds"]
            assert quiet["leds"]["amber"]["mode"] == "off", quiet["leds"]
            assert quiet["pending"] == []

            async def no_action_needed() -> bool:
                return shows_line(rows(await oled(j)), "NO ACTION NEEDED", "body")

            await wait_for(no_action_needed, WAIT, what="the placeholder's HMS screen on the OLED")

            # A serious code beside it: the events reach the panel and the channel in order, so by the time the
            # AMS code's tone and message are there, the placeholder's would have been too.
            j.sim.printer.set_hms([PLACEHOLDER, CODES[FIRST][0]])
            await wait_for(lambda: told_about(receiver, FIRST), WAIT, what="the AMS code's notification")

            async def serious_tone() -> bool:
                return bool((await panel(j))["buzzer"]["last"] == "serious")

            await wait_for(serious_tone, WAIT, what="the serious tone")
            assert (await panel(j))["buzzer"]["count"] == 1  # the serious tone only: the placeholder sounded none
            assert told_about(receiver, PLACEHOLDER_CODE) == []

            # The OLED (the serious code holds the screen): what happened, then what to do, in the page's words.
            description, action = CODES[FIRST][1][language]
            await wait_for(lambda: _oled_shows(j, description, 4), WAIT, what=f"{description!r} on the OLED")
            await wait_for(lambda: _oled_shows(j, f"What to do: {action}", 6), WAIT, what=f"{action!r} on the OLED")
            (await oled(j)).resize((WIDTH * 4, HEIGHT * 4)).save(ARTIFACTS / f"journey-hms-oled-{language}.png")

            # Every module and severity at once.
            j.sim.printer.set_hms([PLACEHOLDER] + [attr_code for attr_code, _ in CODES.values()])
            for code, (_, words) in CODES.items():
                description, action = words[language]
                await page.wait_for(f"{shown(j, entry(code, '.desc'))} === {description!r}", WAIT)
                assert await page.evaluate(shown(j, entry(code, ".action"))) == action
                assert code in await page.evaluate(shown(j, entry(code, ".meta")))
                message = await told_once(receiver, code)
                assert message["title"] == f"{NAME}: {description}"
                severity = SEVERITY[code[10:14]]
                assert message["message"] == f"{severity} error {code}\n{action}"
                link = await page.evaluate(f"{j.card(entry(code, 'a'))}?.href ?? null")
                assert link and message.get("click") == link
            await page.evaluate(f"{j.card('details.hms')}.scrollIntoView()")
            await page.screenshot(ARTIFACTS / f"journey-hms-everywhere-{language}-390.png")

            # Still nothing about the placeholder; the box asked the stand-in in the owner's language only.
            assert told_about(receiver, PLACEHOLDER_CODE) == []
            assert len(ntfy_messages(receiver)) == len(CODES)
            assert {q.get("lang") for q in service.queries} == {language}
            assert page.exceptions == []
        nursery.cancel_scope.cancel()


async def _green_on(j: Journey) -> bool:
    return bool((await panel(j))["leds"]["green"]["mode"] == "on")


async def _oled_shows(j: Journey, text: str, lines: int) -> bool:
    return shows_text(rows(await oled(j)), text, lines)


def closed_port() -> int:
    """A port on this machine where nothing listens (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_offline_start_with_no_table_shows_the_shipped_english_text_and_the_support_link(
    tmp_path: Path,
) -> None:
    assert not (tmp_path / "hms").exists()  # no stored table: the box has never fetched one
    extra = f'[alerts]\nlanguage = "de"\nhms_service = "http://127.0.0.1:{closed_port()}"\n'
    async with journey(tmp_path, extra=extra) as j:
        page = await j.phone()
        await j.set_password(page)
        await open_hms_list(page, j)
        code = "0300_0200_0001_0006"
        j.sim.printer.set_hms([CODES[code][0]])
        description, action = CODES[code][1]["en"]
        await page.wait_for(f"{shown(j, entry(code, '.desc'))} === {description!r}", WAIT)
        assert await page.evaluate(shown(j, entry(code, ".action"))) == action
        link = await page.evaluate(f"{j.card(entry(code, 'a'))}?.href ?? null")
        assert link == "https://wiki.bambulab.com/en/x1/troubleshooting/hmscode/0300_0200_0001_0006"
        assert await page.evaluate(shown(j, entry(code, "a"))) == "Support article"
        assert page.exceptions == []
