"""What the link calls a printer whose reports stop: the Liveness rules with plain numbers, and the offline
watcher on trio's fake clock (no sockets, no threads)."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from bambupi.config import PrinterConfig
from bambupi.printer.link import REASON_AUTH, LinkFailure, Liveness, PrinterLink
from bambupi.printer.tls_pins import PinStore
from bambupi.secret import Secret
from bambupi.state_hub import StateHub
from tests.support import report, wait_for

STALE = LinkFailure("no report from the printer for 60 s; reconnecting", silent=True)
REFUSED = LinkFailure("connection refused by 10.0.0.9:8883 (is this the printer's address, and is it on?)")
LOST = LinkFailure("connection lost")
AUTH = LinkFailure(REASON_AUTH, definitive=True)
NO_REPORT = "no report from the printer for 120 s"


def reported_at(t: float | None) -> Liveness:
    return Liveness(offline_after_s=120.0, started_at=0.0, last_report=t)


@pytest.mark.parametrize(
    ("last_report", "current", "failure", "now", "expected"),
    [
        # reports stop: stale, and reconnects that bring no report (or fail) keep it stale, with the latest reason
        (1000.0, "online", STALE, 1060.0, ("stale", STALE.reason)),
        (1000.0, "online", LOST, 1001.0, ("stale", "connection lost")),
        (1000.0, "stale", STALE, 1090.0, ("stale", STALE.reason)),
        (1000.0, "stale", REFUSED, 1100.0, ("stale", REFUSED.reason)),
        # no report for offline_after_s: offline, saying what the last attempt found
        (1000.0, "stale", STALE, 1120.0, ("offline", NO_REPORT)),
        (1000.0, "stale", REFUSED, 1130.0, ("offline", REFUSED.reason)),
        (1000.0, "offline", STALE, 1500.0, ("offline", NO_REPORT)),
        # nothing reported since the start: nothing says the printer is there, so a failure is offline at once
        (None, "connecting", REFUSED, 0.1, ("offline", REFUSED.reason)),
        (None, "connecting", STALE, 60.0, ("offline", STALE.reason)),
        (None, "offline", REFUSED, 130.0, ("offline", REFUSED.reason)),
        # a link the settings page restarted finds its printer online (the old link's reports): stale, not offline
        (None, "online", LOST, 5.0, ("stale", "connection lost")),
        # retrying cannot mend a refused access code: offline at once
        (1000.0, "online", AUTH, 1000.5, ("offline", REASON_AUTH)),
        (None, "connecting", AUTH, 1.0, ("offline", REASON_AUTH)),
    ],
)
def test_connection_after_a_failure(
    last_report: float | None, current: Any, failure: LinkFailure, now: float, expected: tuple[str, str]
) -> None:
    assert reported_at(last_report).after_failure(current, failure, now) == expected


def test_offline_is_due_once_no_report_came_for_the_period() -> None:
    live = reported_at(1000.0)
    assert live.offline_at() == 1120.0
    assert live.overdue("stale", 1119.9) is None
    assert live.overdue("stale", 1120.0) == ("offline", NO_REPORT)
    assert live.overdue("offline", 1200.0) is None  # already offline: nothing to change
    live.after_failure("stale", REFUSED, 1110.0)
    assert live.overdue("stale", 1120.0) == ("offline", REFUSED.reason)
    assert reported_at(None).offline_at() == 120.0  # counted from the start when nothing came
    live.reported(1200.0)  # back: the next offline counts from here and does not quote the old refusal
    assert live.overdue("online", 1320.0) == ("offline", NO_REPORT)


async def test_a_silent_printer_goes_stale_then_offline_and_a_report_brings_it_back(
    autojump_clock: trio.testing.MockClock, tmp_path: Any
) -> None:
    config = PrinterConfig(
        id="p", name="P", model="P1S", host="127.0.0.1", serial="01P00A000000001", access_code=Secret("12345678"),
        stale_after_s=60.0, offline_after_s=120.0,
    )
    hub = StateHub([config])
    events = hub.open_event_queue("test")
    link = PrinterLink(config, hub, PinStore(tmp_path / "pins.json"))
    link.liveness = Liveness(config.offline_after_s, trio.current_time())

    def arrive(**fields: object) -> None:  # what a session does with a report
        hub.apply_message("p", report(**fields))
        link.reported()

    def offline() -> bool:
        return hub.printer("p")["connection"] == "offline"

    async with trio.open_nursery() as nursery:
        nursery.start_soon(link._watch_offline)
        arrive(gcode_state="RUNNING", mc_percent=25)
        start = trio.current_time()
        await trio.sleep(60)
        link._failed(STALE)  # the session's stale limit
        assert hub.printer("p")["connection"] == "stale"
        for _ in range(3):  # reconnects: each logs in, sends pushall and hears nothing for 10 s
            await trio.sleep(15)
            link._failed(STALE)
            assert hub.printer("p")["connection"] == "stale"
        await wait_for(offline, 1000, interval=0.5)  # on the fake clock
        assert trio.current_time() - start == pytest.approx(120.0, abs=0.5)
        assert hub.printer("p")["connection_reason"] == NO_REPORT
        assert hub.printer("p")["state"]["percent"] == 25  # the last values stay, marked by the connection

        await trio.sleep(600)  # offline for as long as nothing comes
        arrive(mc_percent=26)
        back = trio.current_time()
        assert hub.printer("p")["connection"] == "online"
        # The watcher counts again from the new report.
        await wait_for(offline, 1000, interval=0.5)
        assert trio.current_time() - back == pytest.approx(120.0, abs=0.5)
        nursery.cancel_scope.cancel()
    kinds = []
    while (event := events.get_nowait()) is not None:
        if event["kind"].startswith("connection_"):  # the first report also says its job is under way
            kinds.append(event["kind"])
    assert kinds == ["connection_lost", "connection_restored", "connection_lost"]
