"""HMS codes and print errors as a person reads them (issue 15): the official text in their language, what to do,
the code smaller, and a code with nothing to do listed without any alarm look.

The box fetches the official tables from a local stand-in for Bambu's HMS service (``[alerts] hms_service``), which
answers in the service's own format (``/query.php?lang=<lang>&d=<device type>``, hms_texts.py) with texts of its own,
so what the page shows can only have come from it. The simulated printer raises the codes; a phone-sized Chromium
reads the page and its computed colours.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import trio

from tests.browser import ARTIFACTS, Page
from tests.journeys.harness import PRINTER, Journey, journey, tap
from tests.plug_servers import FakePlugServer, Request

WAIT = 60.0  # a limit for a hang only: every wait is for something the page shows

# Codes as the printer reports them, (attr, code), and as they are printed.
HEATBED = (0x0300_0100, 0x0001_0007)  # severity bits: fatal
HEATBED_CODE = "0300_0100_0001_0007"
PLACEHOLDER = (0x0300_9900, 0x0001_0001)  # severity bits: fatal; the table lists it with no text
PLACEHOLDER_CODE = "0300_9900_0001_0001"
FAILURE = 0x0C00_8009  # the simulator's print failure (print_error 0C00_8009)

# The stand-in's texts: description, then the recommended action (the service sends them as one text).
TEXTS: dict[str, dict[str, Any]] = {
    "en": {
        "hms": ("The heatbed temperature is abnormal (stand-in).", "Please check the heatbed sensor cable."),
        "error": ("The toolhead camera found a problem with the print (stand-in).",
                  "Please check the first layer and start the print again."),
    },
    "de": {
        "hms": ("Die Temperatur des Heizbetts ist abnormal (Ersatzdienst).", "Bitte prüfen Sie das Sensorkabel."),
        "error": ("Die Kamera hat ein Problem mit dem Druck erkannt (Ersatzdienst).",
                  "Bitte prüfen Sie die erste Schicht und starten Sie den Druck erneut."),
    },
}


class HmsService:
    """Bambu's HMS service as the box asks it, with the texts above; records the languages asked for."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def answer(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        if request.path != "/query.php":
            return 404, {}, b'{"error": "no such page"}'
        lang = request.query.get("lang", "")
        self.asked.append(lang)
        texts = TEXTS.get(lang)
        if texts is None:
            return 200, {}, json.dumps({"result": 1, "msg": "unknown language"}).encode()
        hms = [
            {"ecode": HEATBED_CODE.replace("_", ""), "intro": " ".join(texts["hms"])},
            {"ecode": PLACEHOLDER_CODE.replace("_", ""), "intro": ""},
        ]
        errors = [{"ecode": f"{FAILURE:08X}", "intro": " ".join(texts["error"])}]
        body = {"result": 0, "ver": 7, "data": {"device_hms": {lang: hms}, "device_error": {lang: errors}}}
        return 200, {}, json.dumps(body).encode()


def alerts(service: FakePlugServer, language: str) -> str:
    return f'[alerts]\nlanguage = "{language}"\nhms_service = "{service.url}"\n'


def shown(j: Journey, inner: str) -> str:
    """A JS expression: the text of an element in the card ('' while it is not there)."""
    return f"({j.card(inner)}?.textContent ?? '')"


def colour(element: str) -> str:
    return f"getComputedStyle({element}).color"


# The colour a class gives in this page's style sheet, from a throw-away element (to compare with what is shown).
CLASS_COLOUR = """((name) => { const e = document.createElement('span'); e.className = name;
  document.querySelector('main').append(e); const c = getComputedStyle(e).color; e.remove(); return c; })"""


async def open_hms_list(page: Page, j: Journey) -> None:
    """A tap on the card's HMS headline opens the list (it stays open while the card updates)."""
    await page.wait_for(f"{j.card('details.hms summary')} != null", WAIT)
    await tap(page, j.card("details.hms summary"))
    await page.wait_for(f"{j.card('details.hms')}.open", WAIT)


async def test_official_english_text_action_a_silent_code_and_a_print_error(tmp_path: Path) -> None:
    service = HmsService()
    async with trio.open_nursery() as nursery:
        server: FakePlugServer = await nursery.start(FakePlugServer(service.answer).run)
        async with journey(tmp_path, extra=alerts(server, "en")) as j:
            page = await j.phone()
            await j.set_password(page)
            await open_hms_list(page, j)

            # A fatal code: the official text, under it what to do, then the code; the alarm colour on the headline
            # and on the entry alike.
            j.sim.printer.set_hms([HEATBED])
            description, action = TEXTS["en"]["hms"]
            entry = f'li[data-code="{HEATBED_CODE}"]'
            await page.wait_for(f"{shown(j, entry + ' .desc')} === {description!r}", WAIT)
            assert await page.evaluate(shown(j, entry + " .action")) == action
            assert HEATBED_CODE in await page.evaluate(shown(j, entry + " .meta"))
            assert await page.evaluate(shown(j, "[data-field=hms]")) == "HMS: 1 error, fatal"
            red = await page.evaluate(f"{CLASS_COLOUR}('s-fatal')")
            muted = await page.evaluate(f"{CLASS_COLOUR}('muted')")
            assert red != muted
            assert await page.evaluate(colour(j.card("[data-field=hms]"))) == red
            assert await page.evaluate(f"getComputedStyle({j.card(entry)}).borderLeftColor") == red
            # The recent events say it in the same words.
            await page.wait_for(f"document.getElementById('events').textContent.includes({description!r})", WAIT)

            # A placeholder code beside it: listed after it, muted, "no action needed"; the headline still counts one.
            j.sim.printer.set_hms([PLACEHOLDER, HEATBED])
            quiet = f'li[data-code="{PLACEHOLDER_CODE}"]'
            await page.wait_for(f"{j.card(quiet)} != null", WAIT)
            assert await page.evaluate(f"[...{j.card('.hms-list')}.children].map((li) => li.dataset.code)") == [
                HEATBED_CODE, PLACEHOLDER_CODE]
            assert "No action needed" in await page.evaluate(shown(j, quiet))
            assert await page.evaluate(f"getComputedStyle({j.card(quiet)}).borderLeftColor") == muted
            assert await page.evaluate(shown(j, "[data-field=hms]")) == "HMS: 1 error, fatal"
            await page.evaluate(f"{j.card('details.hms')}.scrollIntoView()")
            await page.screenshot(ARTIFACTS / "journey-hms-390.png")

            # The placeholder alone: no alarm anywhere on the card.
            j.sim.printer.set_hms([PLACEHOLDER])
            await page.wait_for(f"{shown(j, '[data-field=hms]')}.startsWith('HMS OK')", WAIT)
            assert "no action needed" in await page.evaluate(shown(j, "[data-field=hms]"))
            assert await page.evaluate(colour(j.card("[data-field=hms]"))) == await page.evaluate(
                f"{CLASS_COLOUR}('s-ok')")
            alarm_look = ".s-fatal, .s-serious, .s-common, .s-unknown, .failed"
            assert await page.evaluate(f"{j.card(alarm_look)} == null")
            j.sim.printer.set_hms([])

            # A failed print: the error's official text and what to do, the code only small beside it.
            j.sim.printer.start_print("bracket", layers=40, minutes=600)
            await page.wait_for(f"{shown(j, '[data-field=state]')}.includes('Printing')", WAIT)
            assert j.sim.printer.fail(FAILURE)
            error, todo = TEXTS["en"]["error"]
            await page.wait_for(f"{shown(j, '[data-field=state]')}.includes({error!r})", WAIT)
            assert "0C00_8009" not in await page.evaluate(shown(j, "[data-field=state]"))
            assert await page.evaluate(shown(j, "[data-field=print-error-action]")) == todo
            code = j.card("[data-field=print-error] .code")
            assert "0C00_8009" in await page.evaluate(f"{code}.textContent")
            sizes = await page.evaluate(
                f"[{code}, {j.card('[data-field=state]')}].map((e) => parseFloat(getComputedStyle(e).fontSize))")
            assert sizes[0] < sizes[1]
            await page.evaluate(f"{j.card()}.scrollIntoView()")
            await page.screenshot(ARTIFACTS / "journey-print-error-390.png")
            assert service.asked and set(service.asked) == {"en"}
            assert page.exceptions == []
        nursery.cancel_scope.cancel()


async def test_german_texts_on_the_card_and_in_the_mqtt_log(tmp_path: Path) -> None:
    service = HmsService()
    async with trio.open_nursery() as nursery:
        server: FakePlugServer = await nursery.start(FakePlugServer(service.answer).run)
        async with journey(tmp_path, extra=alerts(server, "de")) as j:
            page = await j.phone()
            await j.set_password(page)
            await open_hms_list(page, j)
            j.sim.printer.set_hms([HEATBED])
            description, action = TEXTS["de"]["hms"]
            entry = f'li[data-code="{HEATBED_CODE}"]'
            await page.wait_for(f"{shown(j, entry + ' .desc')} === {description!r}", WAIT)
            assert await page.evaluate(shown(j, entry + " .action")) == action

            j.sim.printer.start_print("bracket", layers=40, minutes=600)
            await page.wait_for(f"{shown(j, '[data-field=state]')}.includes('Printing')", WAIT)
            assert j.sim.printer.fail(FAILURE)
            error, todo = TEXTS["de"]["error"]
            await page.wait_for(f"{shown(j, '[data-field=state]')}.includes({error!r})", WAIT)
            assert await page.evaluate(shown(j, "[data-field=print-error-action]")) == todo

            # The MQTT log names the code in the card's words (and colour), not in words of its own.
            red = await page.evaluate(f"{CLASS_COLOUR}('s-fatal')")
            await page.navigate(f"{j.base}/printers/{PRINTER}/mqtt")
            notes = "[...document.querySelectorAll('#log .hms-notes li')]"
            note = f"{notes}.find((li) => li.textContent.includes({HEATBED_CODE!r}))"
            await page.wait_for(f"({note})?.textContent.includes({description!r}) === true", WAIT)
            assert await page.evaluate(colour(f"({note})")) == red
            assert set(service.asked) == {"de"}
            assert page.exceptions == []
        nursery.cancel_scope.cancel()
