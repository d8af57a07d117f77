"""The HMS texts refresher against a local stand-in of Bambu's HMS service (tests/hms_service.py): fetching in the
owner's language, re-describing what is shown, storing, refusing bad answers, never blocking, weekly refresh and
backoff (on trio's autojump clock with a fake wall clock), and the language applying live."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from bambupi.config import AlertsConfig, PrinterConfig
from bambupi.printer.hms_refresh import REFRESH_S, RETRY_FIRST_S, HmsRefresher
from bambupi.printer.hms_texts import MAX_ANSWER_BYTES
from bambupi.secret import Secret
from bambupi.state_hub import StateHub
from tests.hms_service import HmsService, service_data, stand_in
from tests.support import report, wait_for

SERIAL = "01P00A000000001"  # device type 01P (a P1S)
DEVICE = "01P"
PRINTER = PrinterConfig(id="p", name="P", model="P1S", host="127.0.0.1", serial=SERIAL, access_code=Secret("12345678"))
FRONT_COVER = {"attr": 0x0300_1200, "code": 0x0002_0001}
PLACEHOLDER = {"attr": 0x0500_0100, "code": 0x0001_000A}
LIMIT_S = 20.0  # bounds a hang only


def hub_showing(*hms: dict[str, int], print_error: int = 0) -> StateHub:
    hub = StateHub([PRINTER])
    gcode_state = "FAILED" if print_error else "IDLE"
    hub.apply_message("p", report(hms=list(hms), print_error=print_error, gcode_state=gcode_state))
    return hub


def entry(hub: StateHub, code: str) -> dict[str, Any]:
    return next(e for e in hub.printer("p")["state"]["hms"] if e["code"] == code)


async def until(condition: Callable[[], bool]) -> None:
    """Wait for a state. On the autojump clock the limit is pytest-timeout's (the refresher reads and writes its file
    in a thread, and the fake clock jumps while a thread works: a deadline on it would pass at once)."""
    autojump = isinstance(trio.lowlevel.current_clock(), trio.testing.MockClock)
    await wait_for(condition, math.inf if autojump else LIMIT_S, interval=0.01)


def refresher(hub: StateHub, folder: Path, url: str, language: str = "en", **kwargs: Any) -> HmsRefresher:
    return HmsRefresher(hub, folder, AlertsConfig(language=language, hms_service=url), [PRINTER], **kwargs)


# -- against the stand-in over real HTTP ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "language,description,action",
    [
        ("en", "The front cover of the toolhead fell off.", None),
        ("de", "Die Frontverkleidung des Werkzeugkopfes ist abgefallen.", None),
    ],
)
async def test_a_fetched_table_redescribes_what_is_shown_at_once(
    tmp_path: Path, language: str, description: str, action: str | None
) -> None:
    service = HmsService()
    hub = hub_showing(FRONT_COVER)
    shown = hub.version
    async with trio.open_nursery() as nursery:
        server = await nursery.start(stand_in(service).run)
        texts = refresher(hub, tmp_path, server.url, language)
        await nursery.start(texts.run)
        await until(lambda: texts.last_fetch is not None)
        assert entry(hub, "0300_1200_0002_0001")["description"] == description
        assert (hub.version > shown) is (language != "en")  # new words: the readers are woken
        assert service.queries[0] == {"lang": language, "d": DEVICE}
        # Stored under the data folder with its fetch time, for the next start.
        stored = json.loads((tmp_path / f"hms_{language}_{DEVICE}.json").read_text("utf-8"))
        assert stored["language"] == language and stored["ver"] == 1
        assert texts.health()["hms_fetch"]["last_fetch"]["ok"] is True
        nursery.cancel_scope.cancel()


async def test_german_texts_carry_their_action_and_a_print_error_its_own(tmp_path: Path) -> None:
    hub = hub_showing({"attr": 0x0700_2000, "code": 0x0002_0001}, print_error=0x0300_8004)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(stand_in(HmsService()).run)
        await nursery.start(refresher(hub, tmp_path, server.url, "de").run)
        await until(lambda: hub.printer("p")["state"]["print_error_action"] is not None
                    and hub.printer("p")["state"]["print_error_action"].startswith("Bitte"))
        ams = entry(hub, "0700_2000_0002_0001")
        assert ams["description"] == "AMS A Slot 1 Filament ist aufgebraucht."
        assert ams["action"] == "Bitte legen Sie ein neues Filament ein."
        state = hub.printer("p")["state"]
        assert state["job_result"]["text"] == f"Failed: {state['print_error_text']}"
        nursery.cancel_scope.cancel()


async def test_the_service_is_ready_while_the_hms_service_hangs(tmp_path: Path) -> None:
    server = stand_in(HmsService())
    server.delay_s = 3600.0
    hub = hub_showing(FRONT_COVER)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        texts = refresher(hub, tmp_path, server.url)
        with trio.fail_after(LIMIT_S):
            await nursery.start(texts.run)  # started: the fetch goes on without holding anyone
        await until(lambda: len(server.requests) == 1)
        # Meanwhile the shipped English table describes the code, with its support link.
        shown = entry(hub, "0300_1200_0002_0001")
        assert shown["description"] == "The front cover of the toolhead fell off."
        assert shown["url"].startswith("https://wiki.bambulab.com/")
        nursery.cancel_scope.cancel()


BAD_ANSWERS = {
    "broken JSON": (200, b'{"result": 0, "ver": 2, "data": {"device_hms": {"en": [tru'),
    "HTTP 500": (500, b'{"error": "internal"}'),
    "wrong shape": (200, json.dumps({"result": 0, "ver": 2, "data": {"device_hms": "nope"}}).encode()),
    "empty": (200, json.dumps({"result": 0, "ver": 2, "data": {"device_hms": {"en": []}}}).encode()),
    "wrong language": (200, json.dumps(service_data("de", version=2)).encode()),
    "huge": (200, b"{" + b" " * (MAX_ANSWER_BYTES + 1024) + b"}"),
}


@pytest.mark.parametrize("bad", BAD_ANSWERS, ids=list(BAD_ANSWERS))
async def test_a_bad_answer_leaves_the_last_good_table(tmp_path: Path, bad: str) -> None:
    service = HmsService()
    hub = hub_showing(FRONT_COVER)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(stand_in(service).run)
        first = refresher(hub, tmp_path, server.url, "en")
        async with trio.open_nursery() as inner:
            await inner.start(first.run)
            await until(lambda: first.last_fetch is not None)
            inner.cancel_scope.cancel()
        good = (tmp_path / f"hms_en_{DEVICE}.json").read_bytes()
        # The stored copy is a week old now: the next start fetches and gets a bad answer.
        service.status, service.body = BAD_ANSWERS[bad]
        week_later = json.loads(good)["fetched_at"] + REFRESH_S
        later = refresher(hub, tmp_path, server.url, "en", wall_clock=lambda: week_later)
        await nursery.start(later.run)
        await until(lambda: later.last_fetch is not None)
        assert later.last_fetch is not None and later.last_fetch["ok"] is False, later.last_fetch
        assert (tmp_path / f"hms_en_{DEVICE}.json").read_bytes() == good
        assert later.health()["hms_fetch"]["tables"][DEVICE]["source"] == "stored"
        assert later.health()["hms_fetch"]["ok"] is True  # the texts still work: no fault for /healthz
        assert entry(hub, "0300_1200_0002_0001")["description"] == "The front cover of the toolhead fell off."
        nursery.cancel_scope.cancel()


async def test_a_corrupt_stored_table_is_ignored_once_and_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stored = tmp_path / f"hms_de_{DEVICE}.json"
    stored.write_bytes(b'{"format": 1, "language": "de", "data": {"device_hms": [')
    hub = hub_showing(FRONT_COVER)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(stand_in(HmsService()).run)
        texts = refresher(hub, tmp_path, server.url, "de")
        await nursery.start(texts.run)
        await until(lambda: texts.last_fetch is not None)
        assert json.loads(stored.read_text("utf-8"))["ver"] == 1
        assert entry(hub, "0300_1200_0002_0001")["description"].startswith("Die Frontverkleidung")
        nursery.cancel_scope.cancel()
    assert sum("ignored the stored" in r.getMessage() for r in caplog.records) == 1


async def test_a_placeholder_code_stays_silent_with_a_fetched_table(tmp_path: Path) -> None:
    hub = hub_showing(PLACEHOLDER)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(stand_in(HmsService()).run)
        texts = refresher(hub, tmp_path, server.url, "de")
        await nursery.start(texts.run)
        await until(lambda: texts.last_fetch is not None)
        shown = entry(hub, "0500_0100_0001_000A")
        assert shown["silent"] is True and shown["action"] is None and shown["severity"] == "fatal"
        nursery.cancel_scope.cancel()


# -- the schedule: autojump clock, in-process HTTP (real sockets would let the clock jump past every deadline) ------


class Service:
    """The stand-in's handler behind an httpx transport, so the autojump clock only jumps while nobody works."""

    def __init__(self) -> None:
        self.service = HmsService()
        self.fail = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        from tests.plug_servers import Request

        if self.fail:
            self.service.queries.append(dict(request.url.params))
            return httpx.Response(503, stream=httpx.ByteStream(b"down"))
        status, _, body = self.service(Request("GET", str(request.url.raw_path, "ascii"), {}, b""))
        return httpx.Response(status, stream=httpx.ByteStream(body))

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))


class WallClock:
    """UTC epoch seconds that follow trio's (fake) clock, and can be stepped like NTP does."""

    def __init__(self) -> None:
        self.step = 1_800_000_000.0

    def __call__(self) -> float:
        return self.step + trio.current_time()


async def test_refreshes_weekly_and_a_clock_step_neither_storms_nor_stops_it(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    fake, wall = Service(), WallClock()
    hub = hub_showing(FRONT_COVER)
    async with fake.client() as client, trio.open_nursery() as nursery:
        texts = refresher(hub, tmp_path, "http://hms.invalid", wall_clock=wall, client=client)
        await nursery.start(texts.run)
        # Waits on states, never on time, while the refresher reads or writes its file: that runs in a thread,
        # and the autojump clock jumps while a thread works.
        await until(lambda: texts.last_fetch is not None)
        assert len(fake.service.queries) == 1

        def stored_at() -> float:
            return float(json.loads((tmp_path / f"hms_en_{DEVICE}.json").read_text("utf-8"))["fetched_at"])

        async def stored_after(before: float) -> float:
            await until(lambda: texts.last_fetch is not None and texts.last_fetch["at"] != before)
            return stored_at()

        last = stored_at()
        fetched = last - wall.step  # on trio's clock (the fake one runs on while the file is written)
        await trio.sleep_until(fetched + REFRESH_S - 10)
        assert len(fake.service.queries) == 1  # not before a week
        await trio.sleep_until(fetched + REFRESH_S + 10)
        assert len(fake.service.queries) == 2
        assert fake.service.queries[1]["v"] == "1"  # the stored version: "201", nothing newer
        last = await stored_after(last)
        wall.step -= 30 * 24 * 3600  # the clock steps back a month: the stored time is in the future
        await trio.sleep(2 * 3600)
        assert len(fake.service.queries) == 3  # stale once, fetched once, not every second
        await stored_after(last)
        await trio.sleep(24 * 3600)
        assert len(fake.service.queries) == 3
        wall.step += 10 * 365 * 24 * 3600  # ten years forward: due, once
        await trio.sleep(2 * 3600)
        assert len(fake.service.queries) == 4
        nursery.cancel_scope.cancel()


async def test_a_failed_fetch_is_retried_with_backoff_not_every_second(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    fake, wall = Service(), WallClock()
    fake.fail = True
    hub = hub_showing(FRONT_COVER)
    async with fake.client() as client, trio.open_nursery() as nursery:
        texts = refresher(hub, tmp_path, "http://hms.invalid", wall_clock=wall, client=client)
        await nursery.start(texts.run)
        await until(lambda: len(fake.service.queries) == 1)
        await trio.sleep(RETRY_FIRST_S - 1)
        assert len(fake.service.queries) == 1
        await trio.sleep(2)
        assert len(fake.service.queries) == 2  # after 5 min
        await trio.sleep(2 * RETRY_FIRST_S + 1)
        assert len(fake.service.queries) == 3  # after 10 more
        fake.fail = False
        await trio.sleep(4 * RETRY_FIRST_S + 1)
        assert len(fake.service.queries) == 4  # after 20 more, and it works again
        await until(lambda: texts.last_fetch is not None and texts.last_fetch["ok"] is True)
        await trio.sleep(24 * 3600)
        assert len(fake.service.queries) == 4
        nursery.cancel_scope.cancel()


async def test_changing_the_language_applies_live(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    fake = Service()
    hub = hub_showing(FRONT_COVER)
    async with fake.client() as client, trio.open_nursery() as nursery:
        texts = refresher(hub, tmp_path, "http://hms.invalid", "de", client=client)
        await nursery.start(texts.run)
        german = "Die Frontverkleidung des Werkzeugkopfes ist abgefallen."
        await until(lambda: entry(hub, "0300_1200_0002_0001")["description"] == german)
        texts.configure(AlertsConfig(language="en", hms_service="http://hms.invalid"), [PRINTER])
        await until(lambda: entry(hub, "0300_1200_0002_0001")["description"] != german)
        assert entry(hub, "0300_1200_0002_0001")["description"] == "The front cover of the toolhead fell off."
        await until(lambda: len(fake.service.queries) == 2)
        assert [q["lang"] for q in fake.service.queries] == ["de", "en"]
        # Back to German: the stored copy applies at once, no fetch (it is not a week old).
        texts.configure(AlertsConfig(language="de", hms_service="http://hms.invalid"), [PRINTER])
        await until(lambda: entry(hub, "0300_1200_0002_0001")["description"] == german)
        await trio.sleep(3600)
        assert len(fake.service.queries) == 2
        nursery.cancel_scope.cancel()
