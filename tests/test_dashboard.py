"""The dashboard in headless Chromium at phone size, against the real service and the simulated printer.

Screenshots land in tests/artifacts/ (git-ignored). The pictures in the README and docs/ come from the running demo:
``make screenshots`` (tests/screenshots.py).
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from bambupi.config import Config, PrinterConfig, WebConfig
from bambupi.printer.capture import CapturedMessage, Direction
from bambupi.printer.hms import WIKI_HMS_HOME, decode_hms
from bambupi.printer.routes import logged
from bambupi.secret import Secret
from bambupi.service import Running, Service
from bambupi.sim.simulator import Simulator
from bambupi.state_hub import StateHub
from bambupi.web.merge_patch import apply_merge_patch, diff
from tests.browser import ARTIFACTS, Page, chromium, require_chromium

HANG_S = 30  # waits end on what the page shows; this bounds only a hang, however busy the machine

SERIAL = "01P00A000000042"
CODE = "31415926"
CARD = "document.querySelector('article[data-printer=\"p1s\"]')"


def field(name: str) -> str:
    """A JS expression: the text of a card's field, or '' while it is not shown."""
    return f"({CARD}?.querySelector('[data-field=\"{name}\"]')?.textContent ?? '')"


@dataclass
class Box:
    sim: Simulator
    running: Running
    scope: trio.CancelScope
    stopped: trio.Event
    config: Config
    folder: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.running.port}"


async def start_service(
    nursery: trio.Nursery, config: Config, folder: Path
) -> tuple[Running, trio.CancelScope, trio.Event]:
    scope, stopped = trio.CancelScope(), trio.Event()

    async def run(*, task_status: trio.TaskStatus[Running]) -> None:
        try:
            with scope:
                await Service(config, storage_folder=folder).run(task_status=task_status)
        finally:
            stopped.set()

    running: Running = await nursery.start(run)
    return running, scope, stopped


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Box]:
    require_chromium()
    async with trio.open_nursery() as nursery:
        sim = Simulator("P1S", SERIAL, CODE, mqtt_port=0, scenario="idle")
        await nursery.start(sim.run)
        printer = PrinterConfig(
            id="p1s", name="Workshop P1S", model="P1S", host="127.0.0.1", serial=SERIAL,
            access_code=Secret(CODE), mqtt_port=sim.mqtt_port, reconnect_max_s=0.5,
        )
        config = Config(printers=(printer,), web=WebConfig(host="127.0.0.1", port=0))
        running, scope, stopped = await start_service(nursery, config, tmp_path)
        yield Box(sim, running, scope, stopped, config, tmp_path)
        nursery.cancel_scope.cancel()


async def shows(page: Page, expression: str) -> None:
    """Wait until the page shows it (pushed over /ws: the page is never reloaded)."""
    await page.wait_for(expression, timeout=HANG_S)


def report(**fields: Any) -> dict[str, Any]:
    return {"print": {"command": "push_status", "msg": 1, **fields}}


async def test_dashboard_live_on_a_phone(box: Box, tmp_path: Path) -> None:
    async with chromium(tmp_path / "profile") as browser:
        page = await browser.new_page(width=390, height=844)
        await page.navigate(box.base + "/")
        await page.wait_for(f"{field('connection')}.includes('Online') && {field('state')}.includes('Idle')", HANG_S)
        assert await page.evaluate(f"{field('hms')}") == "HMS OK"
        assert "°C" in await page.evaluate(field("bed"))
        assert await page.evaluate(f"{CARD}.querySelectorAll('.tray').length") >= 4  # AMS trays and the spool

        # The page's merge patch is the server's: same results on random objects.
        rng = random.Random(7)
        cases = [(_random_object(rng), _random_object(rng)) for _ in range(200)]
        patches = [[old, diff(old, new)] for old, new in cases]
        results = await page.evaluate(
            f"{json.dumps(patches)}.map(([o, p]) => window.bambupi.applyMergePatch(o, p))"
        )
        assert results == [apply_merge_patch(old, patch) for old, patch in patches]

        # A state change in the simulator shows without a reload.
        box.sim.printer.start_print("benchy.3mf", layers=120, minutes=45)
        await shows(page, f"{field('state')}.includes('Preparing')")
        box.sim.printer.publish_report(
            report(gcode_state="RUNNING", mc_percent=42, layer_num=50, total_layer_num=120, mc_remaining_time=26)
        )
        await shows(page, f"{field('percent')} === '42 %'")
        assert await page.evaluate(field("layer")) == "Layer 50 of 120"
        assert "done at" in await page.evaluate(f"{CARD}.querySelector('.progress-line').textContent")

        box.sim.printer.set_hms([(0x07008000, 0x00020001)])
        await shows(page, f"{field('hms')}.includes('1 error, serious')")
        await page.evaluate(f"{CARD}.querySelector('details.hms summary').click()")
        listed = await page.wait_for(f"{CARD}.querySelector('.hms-list')?.textContent")
        assert "0700_8000_0002_0001" in listed and "Support article" in listed and "AMS" in listed
        # The published HMS index has no article for this code: the link is the index, not a /en/p1/ page (none exist).
        assert await page.evaluate(f"{CARD}.querySelector('.hms-list a').href") == WIKI_HMS_HOME
        await page.wait_for("document.querySelector('#events').textContent.includes('HMS serious')")
        await page.screenshot(ARTIFACTS / "dashboard-390.png")

        # 360 px: nothing wider than the screen, even with a long unbroken job name and the HMS list open.
        await page.set_viewport(360, 780)
        box.sim.printer.publish_report(report(subtask_name="a_very_long_file_name_without_any_spaces_" * 3))
        await page.wait_for(f"{field('job')}.startsWith('a_very_long')")
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360
        await page.send("Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": "dark"}])
        await page.screenshot(ARTIFACTS / "dashboard-360-dark.png")

        box.sim.printer.set_hms([])
        await shows(page, f"{field('hms')} === 'HMS OK'")
        assert page.exceptions == []


async def test_page_reconnects_and_resyncs_after_a_restart(box: Box, tmp_path: Path) -> None:
    async with chromium(tmp_path / "profile") as browser, trio.open_nursery() as nursery:
        page = await browser.new_page(width=390, height=844)
        await page.navigate(box.base + "/")
        await page.wait_for(f"{field('connection')}.includes('Online')", HANG_S)
        assert await page.evaluate("document.getElementById('link').hidden")

        box.scope.cancel()
        await box.stopped.wait()
        await page.wait_for("!document.getElementById('link').hidden", timeout=HANG_S)
        assert "Connection to the box lost" in await page.evaluate("document.getElementById('link').textContent")
        await page.screenshot(ARTIFACTS / "dashboard-connection-lost.png")

        # What changes while the box is down must be on the page after it comes back.
        box.sim.printer.start_print("while_down.3mf", layers=10, minutes=5)
        config = Config(printers=box.config.printers, web=WebConfig(host="127.0.0.1", port=box.running.port))
        await start_service(nursery, config, box.folder)
        await page.wait_for(f"{field('job')}.startsWith('while_down')", timeout=HANG_S)
        await page.wait_for("document.getElementById('link').hidden", timeout=HANG_S)
        assert page.exceptions == []
        nursery.cancel_scope.cancel()


async def test_mqtt_debug_page(box: Box, tmp_path: Path) -> None:
    async with chromium(tmp_path / "profile") as browser:
        page = await browser.new_page(width=390, height=844)
        await page.navigate(box.base + "/printers/p1s/mqtt")
        await page.wait_for("document.querySelectorAll('#log li').length > 0", HANG_S)
        text = await page.evaluate("document.getElementById('log').textContent")
        assert "out" in await page.evaluate("document.querySelector('#log .dir.out').textContent")
        assert "in" in await page.evaluate("document.querySelector('#log .dir.in').textContent")
        assert "pushall" in text
        assert CODE not in await page.evaluate("document.documentElement.outerHTML")

        # A report's HMS code reads as on the card: the box's description, in the severity's colour.
        box.sim.printer.set_hms([(0x07008000, 0x00020001)])
        note = "document.querySelector('#log .hms-notes li')"
        await page.wait_for(f"{note}?.textContent.includes('0700_8000_0002_0001') === true", timeout=HANG_S)
        async with httpx.AsyncClient(base_url=box.base) as http:
            card_entry = (await http.get("/api/printers/p1s")).json()["state"]["hms"][0]
        assert card_entry["description"] and card_entry["description"] in await page.evaluate(f"{note}.textContent")
        assert await page.evaluate(f"getComputedStyle({note}).color") == await page.evaluate(
            "(() => { const e = document.createElement('span'); e.className = 's-serious'; document.body.append(e);"
            " const c = getComputedStyle(e).color; e.remove(); return c; })()")
        box.sim.printer.set_hms([])


        box.sim.printer.publish_report(report(subtask_name="fresh_marker"))
        await page.wait_for("document.querySelector('#log li').textContent.includes('fresh_marker')", timeout=HANG_S)
        await page.evaluate("document.querySelector('#log li summary').click()")
        expanded = await page.evaluate("document.querySelector('#log li pre').textContent")
        assert '"subtask_name": "fresh_marker"' in expanded

        # Pause, and count the page's poll ticks from then on: "nothing came while paused" is checked after ticks
        # that would have fetched it, not after a sleep. (One script: no tick falls between the two.)
        await page.evaluate(
            "(() => { window.ticks = 0; const later = window.setTimeout; window.setTimeout = (fn, ms) => "
            "later(() => { if (fn.name === 'poll') window.ticks++; fn(); }, ms); "
            "document.getElementById('pause').click(); })()"
        )
        await page.wait_for("window.ticks >= 1", timeout=HANG_S)  # a fetch under way at the click has ended
        shown = await page.evaluate("document.querySelectorAll('#log li').length")
        box.sim.printer.publish_report(report(subtask_name="while_paused"))
        async with httpx.AsyncClient(base_url=box.base) as http:
            with trio.fail_after(HANG_S):  # the box has it now: an unpaused page would fetch it at its next tick
                while "while_paused" not in (await http.get("/api/printers/p1s/mqtt-log")).text:
                    await trio.sleep(0.05)
        ticks = await page.evaluate("window.ticks")
        await page.wait_for(f"window.ticks >= {ticks + 2}", timeout=HANG_S)  # the next tick, and its fetch, are done
        assert await page.evaluate("document.querySelectorAll('#log li').length") == shown
        await page.evaluate("document.getElementById('pause').click()")
        await page.wait_for("document.querySelector('#log li').textContent.includes('while_paused')", timeout=HANG_S)
        await page.evaluate("document.getElementById('clear').click()")
        assert await page.evaluate("document.querySelectorAll('#log li').length") == 0
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390
        await page.screenshot(ARTIFACTS / "mqtt-390.png")

        # Cleared before a page asked: the log still names it, decoded by the box as the card did (the page looks
        # nothing up in the printer's state, which no longer lists it).
        async with httpx.AsyncClient(base_url=box.base) as http:
            with trio.fail_after(HANG_S):
                while (await http.get("/api/printers/p1s")).json()["state"]["hms"]:
                    await trio.sleep(0.05)
            logged = [m for m in (await http.get("/api/printers/p1s/mqtt-log")).json()["messages"] if "hms" in m]
        described = {key: value for key, value in card_entry.items() if key != "standing"}
        assert [described] in [m["hms"] for m in logged]  # the card's words, severity, action and link
        assert all(m["direction"] == "in" for m in logged)
        await page.navigate(box.base + "/printers/p1s/mqtt")  # a new load: nothing kept from before
        cleared = "document.querySelector('#log .hms-notes li')"
        await page.wait_for(f"{cleared}?.textContent.includes('0700_8000_0002_0001') === true", timeout=HANG_S)
        assert card_entry["description"] in await page.evaluate(f"{cleared}.textContent")
        assert page.exceptions == []


def test_the_mqtt_log_describes_a_reports_hms_codes_and_passes_junk_as_it_came() -> None:
    printer = PrinterConfig(id="p1s", name="P1S", model="P1S", host="127.0.0.1", serial=SERIAL,
                            access_code=Secret(CODE))
    describe = StateHub([printer]).hms_describer("p1s")

    def message(payload: str, direction: Direction = "in") -> CapturedMessage:
        return CapturedMessage(1, 0.0, direction, "device/x/report", payload, len(payload), False)

    entries = [{"attr": 0x07008000, "code": 0x00020001}, {"attr": -1, "code": 5}, "junk", {"attr": 0x0300}]
    report = json.dumps({"print": {"command": "push_status", "hms": entries}})
    expected = decode_hms(0x07008000, 0x00020001, "P1S").to_json(standing=False)
    del expected["standing"]
    assert logged(message(report), describe)["hms"] == [expected]  # the one valid entry, as the state decodes it
    assert "hms" not in logged(message(report, "out"), describe)
    for junk in ('{"print": {"hms": "none"}}', '{"print": {"hms": [{"attr": 117473280, "co', '["hms"]', 'not "hms"'):
        shown = logged(message(junk), describe)
        assert "hms" not in shown and shown["payload"] == junk


def _random_object(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    def value() -> Any:
        kind = rng.randrange(6 if depth < 2 else 4)
        if kind == 4:
            return [rng.randint(0, 2) for _ in range(rng.randrange(3))]
        if kind == 5:
            return _random_object(rng, depth + 1)
        return [None, rng.randint(-3, 3), rng.choice(["a", "b"]), rng.random() < 0.5][kind]

    return {key: value() for key in rng.sample(["a", "b", "c", "d"], rng.randrange(5))}
