"""A printer goes silent, then offline, then comes back, while its owner watches the dashboard on a phone.

Defect (issue 12, 3 and 4): a printer that stopped reporting (TCP and MQTT pings still answered) was shown green
"Online" again within a second of every reconnect, its card kept "Printing 25 %" with live-looking Pause/Stop,
and it flapped online/stale for ever, so the panel's red light and the "offline" notification never came.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from bambupi.config import WebConfig
from bambupi.notify.channels import SIGNATURE_HEADER, sign
from bambupi.web.frontdoor import FrontDoor
from tests.journeys.harness import PRINTER, Journey, journey
from tests.notify_services import WEBHOOK_SECRET, FakeServices
from tests.support import wait_for

STALE_AFTER_S = 3  # the simulator reports once a second while printing: a margin for a busy machine
OFFLINE_AFTER_S = 8
LIMIT_S = 60  # generous: a busy machine only makes each wait longer

# Every value the card's connection took, as the page rendered it: a MutationObserver records each change, so a
# brief "Online" between two polls is caught too.
RECORD_CONNECTION = """
(() => {
  window.__connection = [];
  const note = () => {
    const card = document.querySelector('article[data-printer="PRINTER"]');
    if (!card) return;
    const pill = card.querySelector('[data-field="connection"]');
    const seen = `${card.dataset.connection}|${pill ? pill.textContent.trim() : ""}`;
    if (window.__connection[window.__connection.length - 1] !== seen) window.__connection.push(seen);
  };
  new MutationObserver(note).observe(document.body,
    {subtree: true, childList: true, attributes: true, characterData: true});
  note();
  return true;
})()
""".replace("PRINTER", PRINTER)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[FakeServices, str]]:
    """A real webhook receiver that checks the HMAC signature, on its own port."""
    fake = FakeServices()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(FrontDoor(fake.app, WebConfig(host="127.0.0.1", port=0)).run)
        yield fake, f"http://127.0.0.1:{port}"
        nursery.cancel_scope.cancel()


def told(fake: FakeServices) -> list[str]:
    return [json.loads(r.body)["event"] for r in fake.of("webhook")]


async def api(j: Journey, path: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=j.base) as client:
        answer: dict[str, Any] = (await client.get(path)).json()
        return answer


async def connection(j: Journey) -> str:
    return str((await api(j, f"/api/printers/{PRINTER}"))["connection"])


async def test_a_printer_goes_silent_then_offline_then_comes_back(
    tmp_path: Path, receiver: tuple[FakeServices, str]
) -> None:
    fake, hooks = receiver
    extra = f"""
[panel]
oled = "virtual"
gpio = "virtual"
offline_grace_s = 2

[[notify]]
name = "phone"
kind = "webhook"
url = "{hooks}/hook"
secret = "{WEBHOOK_SECRET}"
offline_grace_s = 3
"""
    printer_extra = f"stale_after_s = {STALE_AFTER_S}\noffline_after_s = {OFFLINE_AFTER_S}"
    async with journey(tmp_path, printer_extra=printer_extra, extra=extra) as j:
        page = await j.phone()
        await j.set_password(page)  # the owner, logged in: the controls are theirs
        card = j.card()
        j.sim.printer.start_print("bracket", layers=40, minutes=120)
        await page.wait_for(j.card("[data-field=state]") + "?.textContent.includes('Printing')", LIMIT_S)
        await page.wait_for(f"{card}?.dataset.connection === 'online'", LIMIT_S)
        await page.wait_for(j.card("button[data-command=pause]") + "?.disabled === false", LIMIT_S)
        assert await page.evaluate(RECORD_CONNECTION) is True
        assert j.running is not None
        link = j.running.links[PRINTER]
        events = j.running.hub.open_event_queue("journey")

        # It goes silent: the TCP session and MQTT pings stay up, no report comes, pushall is not answered.
        j.sim.printer.go_silent()
        await page.wait_for(f"{card}?.dataset.connection === 'stale'", LIMIT_S)
        pill = j.card("[data-field=connection]") + "?.textContent"
        assert "Reconnecting — no data" in await page.evaluate(pill)
        last_report_at = (await api(j, f"/api/printers/{PRINTER}"))["last_report_at"]

        # The service reconnects, logs in and asks for a full report, again and again: after each of those
        # logins (the moment the old link said "online") the printer is still not online, on the API and the card.
        logins = link.connects
        for n in range(1, 4):
            with trio.fail_after(LIMIT_S):
                while link.connects < logins + n:
                    await trio.sleep(0.05)
            assert await connection(j) in ("stale", "offline")
            shown = await page.evaluate(f"{card}?.dataset.connection")
            assert shown in ("stale", "offline")
            assert "Online" not in await page.evaluate(pill)
            assert await page.evaluate(
                f"[...{card}.querySelectorAll('[data-command]')].every(b => b.disabled)"
            ), "controls must be disabled while the printer does not report"

        # It stays silent: offline, greyed, "last seen HH:MM", controls disabled.
        await wait_for(lambda: _is(j, "offline"), LIMIT_S, what="offline on the API")
        printer = await api(j, f"/api/printers/{PRINTER}")
        assert printer["last_report_at"] == last_report_at  # the time of the last report, kept
        assert printer["connection_reason"] == f"no report from the printer for {OFFLINE_AFTER_S} s"
        await page.wait_for(f"{card}?.dataset.connection === 'offline'", LIMIT_S)
        assert await page.evaluate(f"{card}.classList.contains('offline')")
        assert (await page.evaluate(pill)).strip().endswith("Offline")
        seen_text = await page.evaluate(j.card("[data-field=last-seen]") + "?.textContent")
        # The time of the last report, as the phone's locale writes a time of day ("13:06" or "01:06 PM").
        when = time.localtime(last_report_at)
        assert seen_text in (
            "last seen " + time.strftime("%H:%M", when), "last seen " + time.strftime("%I:%M %p", when)
        ), seen_text
        assert await page.evaluate(f"[...{card}.querySelectorAll('[data-command]')].every(b => b.disabled)")
        frozen = await page.evaluate(j.card("[data-field=percent]") + "?.textContent")

        # The box says so: the red slow blink on the panel and one "offline" notification.
        async def red_slow_blink() -> bool:
            return (await api(j, "/api/panel"))["leds"]["red"]["mode"] == "slow_blink"

        await wait_for(red_slow_blink, LIMIT_S, what="the red LED")
        await wait_for(lambda: told(fake) == ["printer_offline"], LIMIT_S, what="the offline notification")
        assert all(r.headers.get(SIGNATURE_HEADER) == sign(WEBHOOK_SECRET, r.body) for r in fake.of("webhook"))

        # Never "Online" while silent, on the card (every rendered value) or as an event.
        rendered = await page.evaluate("window.__connection")
        assert rendered[0].startswith("online|") and len(rendered) >= 3
        assert not [seen for seen in rendered[1:] if seen.startswith("online") or "Online" in seen], rendered
        kinds = []
        while (event := events.get_nowait()) is not None:
            kinds.append(event["kind"])
        assert kinds.count("connection_lost") == 1 and "connection_restored" not in kinds, kinds

        # It talks again: online, live values, controls enabled, and one "back online".
        j.sim.printer.resume_talking()
        await page.wait_for(f"{card}?.dataset.connection === 'online'", LIMIT_S)
        assert await connection(j) == "online"
        assert (await page.evaluate(pill)).strip().endswith("Online")
        assert not await page.evaluate(f"{card}.classList.contains('offline')")
        assert await page.evaluate(j.card("[data-field=last-seen]")) is None
        await page.wait_for(j.card("button[data-command=pause]") + "?.disabled === false", LIMIT_S)
        await page.wait_for(j.card("[data-field=percent]") + f"?.textContent !== {json.dumps(frozen)}", LIMIT_S)
        await wait_for(lambda: told(fake) == ["printer_offline", "printer_online"], LIMIT_S,
                       what="the back-online notification")

        async def red_off() -> bool:  # the panel's next refresh; the notification may come first
            return not await red_slow_blink()

        await wait_for(red_off, LIMIT_S, what="the red LED going out")
        assert page.exceptions == []


async def _is(j: Journey, wanted: str) -> bool:
    return await connection(j) == wanted
