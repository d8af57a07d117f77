"""A step of the wall clock must not change a length of time (issue 14, item 11).

A Pi has no battery clock and NTP steps it at boot. A -1 h step during a print stored a job with -0.0763 kWh and
3,653 s; a +1 h step during the 120 s auto-off warning switched the plug off 0.5 s later. The power service measures
every length of time on the monotonic clock (trio's) and uses the wall clock only for labels. Here the wall clock
jumps back and forward while the monotonic clock advances normally.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import trio

from bambupi.config import NotifyConfig, PlugConfig, PowerConfig, PrinterConfig, WebConfig
from bambupi.notify.notifier import Notifier
from bambupi.power.plugs import Plug, PlugReading
from bambupi.power.service import PowerService, held_energy_ws
from bambupi.secret import Secret
from bambupi.state_hub import StateHub
from bambupi.web.frontdoor import FrontDoor
from tests.notify_services import WEBHOOK_SECRET, FakeServices
from tests.support import wait_for

WAIT = 30  # generous: a busy CPU only slows the waits
HOUR = 3600.0


class SteppedWall:
    """The wall clock as NTP steps it: a base clock plus an offset the test changes."""

    def __init__(self, base: Any = time.time) -> None:
        self.base = base
        self.offset = 0.0

    def __call__(self) -> float:
        return float(self.base()) + self.offset


def printer_config(plug: PlugConfig) -> PrinterConfig:
    return PrinterConfig(
        id="p", name="P", model="P1S", host="127.0.0.1", serial="01P00A000000001", access_code=Secret("12345678"),
        plug=plug,
    )


def report(gcode_state: str, nozzle: float = 25.0) -> bytes:
    return json.dumps({"print": {
        "command": "push_status", "gcode_state": gcode_state, "nozzle_temper": nozzle, "subtask_name": "cube",
        "stg_cur": 255, "hms": [],
    }}).encode()


def test_held_energy_is_never_negative_and_counts_only_the_job() -> None:
    assert held_energy_ws(100.0, 10.0, 5.0, 12.0, max_gap_s=30) == 200.0
    assert held_energy_ws(100.0, 10.0, 5.0, 9.0, max_gap_s=30) == 0.0  # time never runs backwards, but if it did
    assert held_energy_ws(100.0, 10.0, 5.0, 100.0, max_gap_s=30) == 3000.0  # a gap is not filled with a guess
    assert held_energy_ws(100.0, 4.0, 5.0, 12.0, max_gap_s=30) == 0.0  # read before the job started
    assert held_energy_ws(100.0, 4.0, None, 12.0, max_gap_s=30) == 800.0  # a resumed job counts since the restart
    assert held_energy_ws(None, 4.0, 5.0, 12.0, max_gap_s=30) == 0.0


class MemoryPlug(Plug):
    """A plug in this process (no sockets), so the fake clock can run the whole auto-off countdown exactly."""

    kind = "memory"

    def __init__(self, config: PlugConfig) -> None:
        super().__init__(config)
        self.on = True
        self.switched_off_at: float | None = None

    async def read(self) -> PlugReading:
        return PlugReading(on=self.on, watts=8.0 if self.on else 0.0, total_kwh=None)

    async def switch(self, on: bool) -> None:
        self.on = on
        if not on:
            self.switched_off_at = trio.current_time()


async def test_a_wall_clock_step_forward_does_not_cut_the_auto_off_warning_short(autojump_clock: Any) -> None:
    warning_s = 120.0
    plug_config = PlugConfig(kind="shelly1", address="http://127.0.0.1", auto_off=True, auto_off_after_min=0.0,
                             auto_off_warning_s=warning_s)
    config = printer_config(plug_config)
    plug = MemoryPlug(plug_config)
    wall = SteppedWall(lambda: 1_800_000_000.0 + trio.current_time())
    hub = StateHub([config])
    hub.set_connection("p", "online")
    hub.apply_message("p", report("IDLE"))
    events = hub.open_event_queue("test")
    async with trio.open_nursery() as nursery:
        power = await nursery.start(
            PowerService(hub, [config], None, PowerConfig(sample_interval_s=1.0), clock=wall, plugs={"p": plug}).run
        )
        hub.apply_message("p", report("RUNNING", nozzle=220.0))
        hub.apply_message("p", report("FINISH", nozzle=30.0))  # cool already: the warning comes at once
        with trio.fail_after(WAIT):
            while (event := await events.get())["kind"] != "power_warning":
                pass
        warned = trio.current_time()
        # The panel and the page show the off time on the wall clock; it moves with a step, the deadline does not.
        assert event["off_at"] == pytest.approx(wall() + warning_s)
        wall.offset = HOUR  # NTP steps the clock forward during the countdown
        assert power.auto_off_warnings()["p"] == pytest.approx(wall() + warning_s)
        with trio.fail_after(10 * warning_s):
            while plug.on:
                await trio.sleep(1.0)
        nursery.cancel_scope.cancel()
    assert plug.switched_off_at is not None
    assert plug.switched_off_at - warned >= warning_s  # before: switched off at the next check, 1 s later


async def test_a_wall_clock_step_does_not_change_how_long_a_notification_says_a_print_took() -> None:
    """The hub labels events with the (stepped) wall clock; the notifier measures the print on the monotonic one."""
    fake = FakeServices()
    wall = SteppedWall()
    hub = StateHub([printer_config(PlugConfig(kind="shelly1", address="http://127.0.0.1"))], clock=wall)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(FrontDoor(fake.app, WebConfig(host="127.0.0.1", port=0)).run)
        webhook = NotifyConfig(name="webhook", kind="webhook", url=f"http://127.0.0.1:{port}/hook",
                               secret=Secret(WEBHOOK_SECRET), events=("finished",))
        await nursery.start(Notifier(hub, (webhook,), retry_delays=(0.05,), timeout_s=5.0).run)
        hub.set_connection("p", "online")
        hub.apply_message("p", report("IDLE"))
        hub.apply_message("p", report("RUNNING"))
        wall.offset = HOUR  # NTP steps the clock forward during a print of a few milliseconds
        hub.apply_message("p", report("FINISH"))

        async def told() -> bool:
            return bool(fake.of("webhook"))

        await wait_for(told, WAIT)
        nursery.cancel_scope.cancel()
    body = json.loads(fake.of("webhook")[0].body)
    assert body["event"] == "job_finished" and body["body"].startswith("Took 0 min."), body  # before: 1 h 00 min
