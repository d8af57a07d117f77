"""The panel's behaviour rules (README, "The lights, buzzer and screen") end to end through the hub: the finish that
stays until someone has seen it, the door, the "done soon" heads-up and several printers on one box.

Each runs the real Panel on trio's fake clock with gpiozero's MockFactory pins (the LEDs' and the buzzer's pin
values), the luma dummy device behind ``oled = "virtual"`` (the picture's pixels) and a StateHub fed with reports as
a printer sends them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import trio

from bambupi.alerts import QuietHours
from bambupi.config import AlertsConfig, Config, PanelConfig, WebConfig
from bambupi.notify.messages import message_for, wanted
from bambupi.panel.notices import HEADS
from bambupi.panel.screens import SHIFTS, NetworkInfo, Rect, Text, draw
from bambupi.panel.service import DOOR_LIGHT_ORIGIN, Panel
from bambupi.printer.events import Event
from bambupi.printer.state import DOOR_OPEN_BIT, SIGNATURE_REQUIRED_BIT
from bambupi.service import Service
from bambupi.state_hub import StateHub
from tests.support import printer_config, report

GREEN, AMBER, RED, BUZZER, BUTTON = 17, 27, 22, 18, 23
IDLE_GREEN = 0.2


@dataclass
class Commands:
    """The printers' controls as the panel sees them: records each command; ``refuse`` makes them fail."""

    sent: list[tuple[str, str, str]] = field(default_factory=list)
    refuse: bool = False

    async def send(self, printer_id: str, name: str, params: Mapping[str, Any], *, origin: str = "the page") -> object:
        self.sent.append((printer_id, name, origin))
        if self.refuse:
            raise RuntimeError("no")
        return None


def door(opened: bool) -> int:
    return DOOR_OPEN_BIT if opened else 0


@asynccontextmanager
async def box(
    *printers: str, model: str = "X1C", commands: Commands | None = None, alerts: AlertsConfig | None = None,
    **panel: Any,
) -> AsyncIterator[tuple[StateHub, Panel]]:
    """A hub with ``printers`` (X1Cs: their door is reported) online and idle, and a running virtual panel."""
    hub = StateHub([printer_config(pid, name=f"Printer {pid}", model=model) for pid in printers])
    config = PanelConfig(oled="virtual", gpio="virtual", buzzer="passive", dim_after_s=86400, off_after_s=86400,
                         **panel)
    quiet = QuietHours(alerts or AlertsConfig(), wall=lambda: 1.75e9, clock_synced=lambda: True)
    made = Panel(hub, config, quiet, commands=commands, clock_synced=lambda: True, boot_network_s=0,
                 network=lambda url: NetworkInfo("box", "10.0.0.2", url))
    async with trio.open_nursery() as nursery:
        await nursery.start(made.run)
        for pid in printers:
            hub.set_connection(pid, "online")
            hub.apply_message(pid, report(gcode_state="IDLE", home_flag=door(False), hms=[]))
        await trio.sleep(1)
        yield hub, made
        nursery.cancel_scope.cancel()


def pin(panel: Panel, number: int) -> float:
    assert panel.factory is not None
    return float(panel.factory.pin(number).state)


def green_blinks(panel: Panel, seconds: float = 0.5) -> bool:
    """The green LED's pin went on and off in the last ``seconds`` (the finished fast blink is 0.1 s on, 0.1 off)."""
    now = trio.current_time()
    values = {v for t, v in panel.recorder.of("green") if t >= now - seconds}
    return values == {0.0, 1.0}


def banner(panel: Panel) -> str | None:
    """Which notice's banner the OLED shows (its inverse-video head, pixel for pixel at any burn-in shift), read from
    the luma dummy device behind ``oled = "virtual"``: what the screen was last sent."""
    shown = panel.screen.device.image
    assert shown.tobytes() == panel.image.tobytes()  # the picture the page mirrors is the screen's
    for head in HEADS.values():
        for dx, dy in SHIFTS:
            lit = Rect(dx, dy, 125 + dx, 11 + dy, fill=1, outline=None)
            expected = draw([lit, Text(2 + dx, 1 + dy, head, "body", 0)])
            box_ = (0, 0, 2 + dx + 6 * len(head) + 1, 12 + dy)  # the head, not the page number beside it
            if shown.crop(box_).tobytes() == expected.crop(box_).tobytes():
                return head
    return None


def press(panel: Panel) -> None:
    assert panel.factory is not None
    panel.factory.pin(BUTTON).drive_low()
    panel.factory.pin(BUTTON).drive_high()


async def finish(hub: StateHub, pid: str = "p1") -> None:
    hub.apply_message(pid, report(gcode_state="RUNNING", mc_percent=50, mc_remaining_time=30, subtask_name="Benchy"))
    await trio.sleep(5)
    hub.apply_message(pid, report(gcode_state="FINISH", mc_percent=100, mc_remaining_time=0))
    await trio.sleep(1)


def tones(panel: Panel, since: float) -> list[float]:
    return [v for t, v in panel.recorder.of("buzzer") if t >= since and v]


# --- finish until acknowledged --------------------------------------------------------------------------------------


@pytest.mark.parametrize("seen_by", ["button", "door", "next job"])
async def test_the_finish_stays_until_someone_has_seen_it(autojump_clock: Any, seen_by: str) -> None:
    async with box("p1", finished_hold_s=0) as (hub, panel):  # 0: no time limit
        await finish(hub)
        assert panel.buzzer is not None and panel.buzzer.played[-1][1] == "finished"
        await trio.sleep(45 * 60)  # later than the default hold (30 min), nobody came
        assert green_blinks(panel) and panel.status()["leds"]["green"]["mode"] == "fast_blink"
        assert panel.current == ("finished", "p1") and banner(panel) == "PRINT FINISHED"
        assert panel.status()["pending"] == ["p1: finished"]
        if seen_by == "button":
            press(panel)
        elif seen_by == "door":
            hub.apply_message("p1", report(home_flag=door(True)))
        else:
            hub.apply_message("p1", report(gcode_state="PREPARE", mc_percent=0, subtask_name="Next"))
        await trio.sleep(1.5)
        assert not green_blinks(panel)
        expected = "pulse" if seen_by == "next job" else "on"
        assert panel.status()["leds"]["green"]["mode"] == expected
        if seen_by != "next job":
            assert pin(panel, GREEN) == pytest.approx(IDLE_GREEN)  # idle: steady and dimmed
        assert panel.current[0] != "finished" and banner(panel) is None and panel.status()["pending"] == []
        assert len(panel.buzzer.played) == 1  # the door opening after a finish does not chirp


async def test_the_finish_goes_to_idle_after_the_hold_time(autojump_clock: Any) -> None:
    async with box("p1", finished_hold_s=600) as (hub, panel):
        await finish(hub)
        await trio.sleep(590)
        assert green_blinks(panel) and banner(panel) == "PRINT FINISHED"
        await trio.sleep(15)
        assert not green_blinks(panel) and pin(panel, GREEN) == pytest.approx(IDLE_GREEN)
        assert banner(panel) is None and panel.current[0] != "finished"


@pytest.mark.parametrize(("error", "head", "red"), [("0300_8003", "PRINT FAILED", 1.0), ("0300_400C",
                                                                                            "PRINT CANCELLED", 0.0)])
async def test_the_same_acknowledgement_clears_a_failed_or_cancelled_end(
    autojump_clock: Any, error: str, head: str, red: float
) -> None:
    async with box("p1") as (hub, panel):
        hub.apply_message("p1", report(gcode_state="RUNNING", mc_percent=40, subtask_name="Vase"))
        await trio.sleep(2)
        hub.apply_message("p1", report(gcode_state="FAILED", print_error=int(error.replace("_", ""), 16)))
        await trio.sleep(2)
        assert banner(panel) == head and pin(panel, RED) == red
        hub.apply_message("p1", report(home_flag=door(True)))  # someone opens the door to look
        await trio.sleep(1.5)
        assert banner(panel) is None and pin(panel, RED) == 0.0 and panel.status()["pending"] == []


# --- the door -------------------------------------------------------------------------------------------------------


async def test_the_door_opened_during_a_print_chirps_and_says_so(autojump_clock: Any) -> None:
    async with box("p1") as (hub, panel):
        hub.apply_message("p1", report(gcode_state="RUNNING", mc_percent=20, mc_remaining_time=60,
                                       subtask_name="Benchy"))
        await trio.sleep(2)
        start = trio.current_time()
        hub.apply_message("p1", report(home_flag=door(True)))
        await trio.sleep(1)
        assert panel.buzzer is not None and panel.buzzer.played[-1][1] == "door"
        assert tones(panel, start) == [2637]  # one short chirp on the buzzer's pin
        chirp = [t for t, v in panel.recorder.of("buzzer") if t >= start]
        assert round(chirp[1] - chirp[0], 3) == 0.05
        assert banner(panel) == "DOOR OPEN" and panel.current == ("door", "p1")
        assert pin(panel, GREEN) > 0  # still printing: green pulses on
        await trio.sleep(35)  # the note lets go; the status screen keeps its DOOR tag
        assert banner(panel) is None
        hub.apply_message("p1", report(home_flag=door(False)))
        await trio.sleep(1)
        hub.apply_message("p1", report(home_flag=door(True)))  # again: again a chirp
        await trio.sleep(1)
        assert [p for _, p in panel.buzzer.played].count("door") == 2


async def test_no_door_chirp_when_turned_off_or_in_quiet_hours(autojump_clock: Any) -> None:
    for settings in ({"door_chirp": False}, {"alerts": AlertsConfig(quiet_hours=((0, 0), (23, 59)))}):
        async with box("p1", **settings) as (hub, panel):
            hub.apply_message("p1", report(gcode_state="RUNNING", mc_percent=20))
            await trio.sleep(2)
            hub.apply_message("p1", report(home_flag=door(True)))
            await trio.sleep(1)
            assert panel.buzzer is not None and panel.buzzer.played == [] and tones(panel, 0) == []


async def test_the_door_light_goes_on_while_idle_where_allowed_and_off_when_the_door_closes(
    autojump_clock: Any,
) -> None:
    commands = Commands()
    async with box("p1", commands=commands, door_light=True, door_light_s=120) as (hub, panel):
        hub.apply_message("p1", report(home_flag=door(True)))
        await trio.sleep(1)
        assert commands.sent == [("p1", "light_on", DOOR_LIGHT_ORIGIN)]
        assert panel.buzzer is not None and panel.buzzer.played == []  # idle: no chirp
        assert panel.status()["door_light"] == ["p1"]
        hub.apply_message("p1", report(home_flag=door(False)))
        await trio.sleep(1)
        assert commands.sent[-1] == ("p1", "light_off", DOOR_LIGHT_ORIGIN)
        # Left open: off after door_light_s, and not again when it closes.
        hub.apply_message("p1", report(home_flag=door(True)))
        await trio.sleep(119)
        assert commands.sent[-1][1] == "light_on"
        await trio.sleep(2)
        assert commands.sent[-1][1] == "light_off" and len(commands.sent) == 4
        hub.apply_message("p1", report(home_flag=door(False)))
        await trio.sleep(1)
        assert len(commands.sent) == 4
        # A light already on is the owner's: the box neither switches it nor turns it off.
        hub.apply_message("p1", report(lights_report=[{"node": "chamber_light", "mode": "on"}]))
        hub.apply_message("p1", report(home_flag=door(True)))
        await trio.sleep(1)
        hub.apply_message("p1", report(home_flag=door(False)))
        await trio.sleep(1)
        assert len(commands.sent) == 4
        # During a print the door only chirps.
        hub.apply_message("p1", report(lights_report=[{"node": "chamber_light", "mode": "off"}], gcode_state="RUNNING"))
        hub.apply_message("p1", report(home_flag=door(True)))
        await trio.sleep(1)
        assert len(commands.sent) == 4


async def test_no_door_light_unless_allowed_and_the_printer_accepts_commands(autojump_clock: Any) -> None:
    commands = Commands()
    async with box("p1", commands=commands) as (hub, _):  # door_light is off by default
        hub.apply_message("p1", report(home_flag=door(True)))
        await trio.sleep(1)
        assert commands.sent == []
    async with box("p1", commands=commands, door_light=True) as (hub, _):
        # Firmware that wants signed commands (the developer-mode switch off): controls_available is false.
        hub.apply_message("p1", report(fun=f"{SIGNATURE_REQUIRED_BIT:X}"))
        await trio.sleep(1)
        assert hub.printer("p1")["controls_available"] is False
        hub.apply_message("p1", report(home_flag=door(True)))
        await trio.sleep(1)
        assert commands.sent == []


async def test_a_refused_door_light_is_logged_and_the_panel_goes_on(
    autojump_clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    commands = Commands(refuse=True)
    async with box("p1", commands=commands, door_light=True) as (hub, panel):
        hub.apply_message("p1", report(home_flag=door(True)))
        await trio.sleep(1)
        assert commands.sent == [("p1", "light_on", DOOR_LIGHT_ORIGIN)]
        assert "door light on for p1 not sent" in caplog.text
        hub.apply_message("p1", report(gcode_state="RUNNING", mc_percent=1))
        await trio.sleep(1)
        assert panel.status()["leds"]["green"]["mode"] == "pulse"


# --- done soon ------------------------------------------------------------------------------------------------------


async def test_the_heads_up_comes_once_per_job_not_again_after_a_pause(autojump_clock: Any) -> None:
    async with box("p1") as (hub, panel):
        events = hub.open_event_queue("test")
        for minutes in (30, 12, 6):
            hub.apply_message("p1", report(gcode_state="RUNNING", mc_percent=90, mc_remaining_time=minutes,
                                           subtask_name="Benchy"))
            await trio.sleep(60)
        assert panel.buzzer is not None and panel.buzzer.played == []
        start = trio.current_time()
        hub.apply_message("p1", report(mc_remaining_time=5))
        await trio.sleep(1)
        assert [p for _, p in panel.buzzer.played] == ["ending_soon"]
        assert tones(panel, start) == [880, 1175]  # the soft chirp: two short notes
        assert banner(panel) == "DONE SOON" and panel.current == ("ending_soon", "p1")
        # A pause and resume push the estimate back up; it comes down past 5 again: no second heads-up.
        hub.apply_message("p1", report(gcode_state="PAUSE"))
        await trio.sleep(300)
        hub.apply_message("p1", report(gcode_state="RUNNING", mc_remaining_time=8))
        await trio.sleep(60)
        hub.apply_message("p1", report(mc_remaining_time=4))
        await trio.sleep(60)
        kinds = []
        while (event := events.get_nowait()) is not None:
            kinds.append(event)
        soon = [e for e in kinds if e["kind"] == "job_ending_soon"]
        assert len(soon) == 1 and soon[0]["remaining_min"] == 5 and soon[0]["job"] == "Benchy"
        assert [p for _, p in panel.buzzer.played] == ["ending_soon"]
        assert banner(panel) is None  # the note let go after a minute
        # The next job has its own heads-up; its end takes the place of its note.
        hub.apply_message("p1", report(gcode_state="RUNNING", mc_remaining_time=20, subtask_name="Clips"))
        await trio.sleep(1)
        hub.apply_message("p1", report(mc_remaining_time=3))
        await trio.sleep(1)
        assert banner(panel) == "DONE SOON"
        hub.apply_message("p1", report(gcode_state="FINISH", mc_remaining_time=0))
        await trio.sleep(1)
        assert banner(panel) == "PRINT FINISHED"
        press(panel)
        hub.apply_message("p1", report(gcode_state="RUNNING", mc_remaining_time=20, subtask_name="Vase"))
        await trio.sleep(1)
        hub.apply_message("p1", report(mc_remaining_time=3))
        await trio.sleep(1)
        assert [p for _, p in panel.buzzer.played].count("ending_soon") == 3


async def test_no_heads_up_for_a_print_shorter_than_the_lead_or_when_turned_off(autojump_clock: Any) -> None:
    lead = 5.0
    hub = StateHub([printer_config("p1")], ending_soon_min=lambda: lead)
    events = hub.open_event_queue("test")
    hub.set_connection("p1", "online")
    hub.apply_message("p1", report(gcode_state="IDLE"))
    hub.apply_message("p1", report(gcode_state="RUNNING", mc_remaining_time=4, subtask_name="Tiny"))
    hub.apply_message("p1", report(mc_remaining_time=2))
    hub.apply_message("p1", report(gcode_state="FINISH", mc_remaining_time=0))
    lead = 0.0  # the owner turned it off
    hub.apply_message("p1", report(gcode_state="RUNNING", mc_remaining_time=40, subtask_name="Big"))
    hub.apply_message("p1", report(mc_remaining_time=1))
    found = []
    while (event := events.get_nowait()) is not None:
        found.append(event["kind"])
    assert "job_ending_soon" not in found and found.count("job_started") == 2


def test_a_channel_hears_of_the_heads_up_only_when_it_asks() -> None:
    event: Event = {"kind": "job_ending_soon", "printer": "p1", "job": "Benchy", "remaining_min": 5, "at": 0.0}
    message = message_for(dict(event), "Garage")
    assert message is not None and message.title == "Garage: Benchy done in 5 min"
    assert wanted(message, dict(event), ("ending_soon",), "serious")
    assert not wanted(message, dict(event), ("finished", "failed", "hms"), "serious")


# --- several printers -----------------------------------------------------------------------------------------------


async def test_two_printers_the_fatal_one_is_shown_and_the_button_acknowledges_the_one_shown(
    autojump_clock: Any,
) -> None:
    async with box("a", "b", model="P1S") as (hub, panel):
        await finish(hub, "a")
        assert panel.current == ("finished", "a")
        hub.apply_message("b", report(gcode_state="RUNNING", mc_percent=10, mc_remaining_time=80,
                                      hms=[{"attr": 0x03000100, "code": 0x00010007}]))
        await trio.sleep(2)
        assert panel.current == ("hms", "b")
        # The OLED's fatal screen is inverse video: mostly lit.
        assert panel.image.convert("L").histogram()[255] > 128 * 64 // 2
        # The LEDs show the worst of both: b's fatal red, a's finished green.
        assert panel.status()["leds"]["red"]["mode"] == "blink" and green_blinks(panel)
        press(panel)  # acknowledges b (shown), not a
        await trio.sleep(1.5)
        assert panel.status()["pending"] == ["a: finished"] and green_blinks(panel)
        assert panel.current == ("finished", "a") and banner(panel) == "PRINT FINISHED"
        press(panel)
        await trio.sleep(1.5)
        assert panel.status()["pending"] == [] and not green_blinks(panel)


async def test_among_equals_the_printer_finishing_soonest_is_shown(autojump_clock: Any) -> None:
    async with box("a", "b", "c", model="P1S") as (hub, panel):
        for pid, minutes in (("a", 40), ("b", 30), ("c", 50)):
            hub.apply_message(pid, report(gcode_state="RUNNING", mc_percent=50, mc_remaining_time=minutes))
        await trio.sleep(1)
        for pid, minutes in (("a", 5), ("c", 4)):
            hub.apply_message(pid, report(mc_remaining_time=minutes))
        await trio.sleep(1)
        assert panel.current == ("ending_soon", "c")  # 4 minutes left beats 5
        press(panel)
        await trio.sleep(1.5)
        assert panel.current == ("ending_soon", "a")
        press(panel)
        await trio.sleep(1.5)
        assert panel.current[0] in ("status", "temps", "ams", "network")  # nothing left: the rotation


async def test_the_heads_up_lead_time_changes_live_from_the_settings(tmp_path: Path) -> None:
    """The settings page saves ``alerts.ending_soon_min``; the hub uses the new lead at the next report."""
    config = Config(printers=(printer_config("p1"),), web=WebConfig(host="127.0.0.1", port=0),
                    panel=PanelConfig(oled="none", gpio="none"))
    service = Service(config, storage_folder=tmp_path)
    async with trio.open_nursery() as nursery:
        running = await nursery.start(service.run)
        hub = running.hub
        events = hub.open_event_queue("test")
        answer = await service.reconfigure(replace(config, alerts=replace(config.alerts, ending_soon_min=10)))
        assert "'done soon' heads-up 10 min before a print's end" in answer["applied"]
        hub.apply_message("p1", report(gcode_state="RUNNING", mc_remaining_time=30, subtask_name="Benchy"))
        hub.apply_message("p1", report(mc_remaining_time=10))
        found = []
        while (event := events.get_nowait()) is not None:
            found.append(event)
        assert [e["remaining_min"] for e in found if e["kind"] == "job_ending_soon"] == [10]
        nursery.cancel_scope.cancel()


async def test_the_door_does_not_silence_a_fatal_alarm(autojump_clock: Any) -> None:
    async with box("p1") as (hub, panel):
        await finish(hub)
        hub.apply_message("p1", report(hms=[{"attr": 0x03000100, "code": 0x00010007}]))
        await trio.sleep(1)
        hub.apply_message("p1", report(home_flag=door(True)))
        await trio.sleep(1)
        assert panel.status()["pending"] == ["p1 0300_0100_0001_0007: fatal"]  # the finish seen, the alarm not
        await trio.sleep(60)
        assert panel.buzzer is not None and [p for _, p in panel.buzzer.played].count("fatal") == 3


async def test_a_long_press_shows_the_network_screen_over_a_finished_print(autojump_clock: Any) -> None:
    async with box("p1") as (hub, panel):
        await finish(hub)
        assert panel.current == ("finished", "p1")
        assert panel.factory is not None
        panel.factory.pin(BUTTON).drive_low()
        await trio.sleep(2.5)
        panel.factory.pin(BUTTON).drive_high()
        await trio.sleep(1)
        assert panel.current == ("network", None) and panel.status()["pending"] == ["p1: finished"]
        await trio.sleep(31)
        assert panel.current == ("finished", "p1")  # still waiting to be seen
