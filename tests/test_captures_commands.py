"""Commands and their replies as real printers answer them (issue 13, items 6 and 8-11), against the simulator
over MQTT/TLS through the real link, hub and Controls.

What real printers showed (captures of current firmware): a refused command is answered
``result: failed, reason: "mqtt message verify failed"`` and leaves HMS 0500_0500_0001_0007 listed as a latch while
commands work again; H2 printers report ``chamber_light2`` beside ``chamber_light`` and a P2S answers a light it does
not have with "did not find the valid led"; replies to other clients (a slicer's ``gcode_line``, ``ledctrl``) arrive
on the same topic with their own sequence ids; a stop reports FAILED without an error before ``0300_400C``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from bambupi.config import PrinterConfig
from bambupi.printer.commands import COMMAND_REFUSED, CommandError, Controls, Outcome, build_commands
from bambupi.printer.hms import print_error_description
from bambupi.printer.link import PrinterLink
from bambupi.printer.state import apply_message, initial_state
from bambupi.printer.tls_pins import PinStore
from bambupi.secret import Secret
from bambupi.sim.printer import VERIFY_FAILED_HMS
from bambupi.sim.simulator import Simulator
from bambupi.state_hub import JOB_END_SETTLE_S, EventQueue, StateHub
from tests.capture_corpus import capture
from tests.support import wait_for

SERIAL = "01P00A000000313"
CODE = "27182818"
WAIT = 60.0  # a limit against a hang only


@dataclass
class Rig:
    sim: Simulator
    hub: StateHub
    controls: Controls
    events: EventQueue

    def printer(self) -> dict[str, Any]:
        return self.hub.printer("p")

    def state(self) -> dict[str, Any]:
        return dict(self.printer()["state"])

    def sent(self) -> list[dict[str, Any]]:
        """The commands the box published, in order (its MQTT capture)."""
        return [json.loads(m.payload) for m in self.hub.capture("p").messages() if m.direction == "out"
                and "pushing" not in m.payload]


@asynccontextmanager
async def rig(tmp_path: Path, model: str = "P1S", *, end_settle_s: float = JOB_END_SETTLE_S) -> AsyncIterator[Rig]:
    async with trio.open_nursery() as nursery:
        sim = Simulator(model, SERIAL, CODE, scenario="idle", time_scale=100)
        await nursery.start(sim.run)
        config = PrinterConfig(
            id="p", name="P", model=model, host="127.0.0.1", serial=SERIAL, access_code=Secret(CODE),
            mqtt_port=sim.mqtt_port, reconnect_max_s=0.3, connect_timeout_s=10.0,
        )
        hub = StateHub([config], end_settle_s=end_settle_s)
        await nursery.start(hub.run)
        events = hub.open_event_queue("test")
        link = await nursery.start(PrinterLink(config, hub, PinStore(tmp_path / "tls-pins.json")).run)
        controls = Controls(hub, {"p": link}, timeout_s=WAIT)
        r = Rig(sim, hub, controls, events)
        await wait_for(lambda: r.printer()["connection"] == "online" and r.state()["gcode_state"] == "IDLE", WAIT)
        yield r
        nursery.cancel_scope.cancel()


def drain(queue: EventQueue) -> list[str]:
    kinds = []
    while (event := queue.get_nowait()) is not None:
        kinds.append(event["kind"])
    return kinds


async def printing(r: Rig, name: str = "bracket") -> None:
    r.sim.printer.start_print(name, layers=40, minutes=600)
    await wait_for(lambda: r.state()["gcode_state"] == "RUNNING", WAIT)


async def send_while_silent(r: Rig, nursery: trio.Nursery, command: str, **params: Any) -> list[Outcome]:
    """Start ``command`` while the printer keeps quiet, so the test writes the replies; returns once it is sent."""
    done: list[Outcome] = []
    before = r.sim.printer.requests_seen
    r.sim.printer.go_silent()

    async def send() -> None:
        done.append(await r.controls.send("p", command, params))

    nursery.start_soon(send)
    await wait_for(lambda: r.sim.printer.requests_seen > before, WAIT)
    return done


async def reports_processed(r: Rig, mark: int) -> None:
    """Wait until a report published after the replies has reached the hub: everything before it has too. The mark
    is a light node of its own, which no report of the simulator ever changes."""
    lights = [{"node": "test_mark", "mode": str(mark)}]
    r.sim.printer.publish_report({"print": {"command": "push_status", "msg": 1, "lights_report": lights}})
    await wait_for(lambda: r.state()["lights"].get("test_mark") == str(mark), WAIT)


# -- item 10: replies are matched on sequence_id AND command ----------------------------------------------------


async def test_replies_to_other_clients_with_our_sequence_id_are_not_ours(tmp_path: Path) -> None:
    async with rig(tmp_path) as r, trio.open_nursery() as nursery:
        await printing(r)
        done = await send_while_silent(r, nursery, "pause")
        (request,) = [m for m in r.sent() if "print" in m]
        sequence_id = request["print"]["sequence_id"]
        # A slicer's and a phone app's replies, numbered their own way, arrive first on the same topic.
        r.sim.printer.publish_report({"print": {"command": "gcode_line", "sequence_id": sequence_id,
                                                "param": "M400", "result": "failed", "reason": "busy"}})
        r.sim.printer.publish_report({"system": {"command": "ledctrl", "sequence_id": sequence_id,
                                                 "led_node": "chamber_light", "result": "success"}})
        await reports_processed(r, 11)
        assert done == []  # neither answered our pause
        r.sim.printer.publish_report({"print": {"command": "pause", "sequence_id": sequence_id,
                                                "result": "success", "reason": ""}})
        await wait_for(lambda: bool(done), WAIT)
        assert (done[0].sequence_id, done[0].result) == (sequence_id, "success")


# -- item 8: a refused command is shown, never a block --------------------------------------------------------


async def test_a_refused_command_says_developer_mode_and_the_next_try_goes_through(tmp_path: Path) -> None:
    async with rig(tmp_path) as r, trio.open_nursery() as nursery:
        await printing(r)
        done = await send_while_silent(r, nursery, "speed", level=3)
        (request,) = [m for m in r.sent() if "print" in m]
        # What a printer outside Developer mode answers, then the latch it lists.
        r.sim.printer.publish_report({"print": {"command": "print_speed", "param": "3",
                                                "sequence_id": request["print"]["sequence_id"],
                                                "result": "failed", "reason": "mqtt message verify failed"}})
        await wait_for(lambda: bool(done), WAIT)
        assert (done[0].result, done[0].reason) == ("failed", COMMAND_REFUSED)
        r.sim.printer.resume_talking()
        r.sim.printer.set_hms([VERIFY_FAILED_HMS])
        await reports_processed(r, 13)  # the latch's report has reached the hub
        printer = r.printer()
        assert printer["commands_refused"] is True
        assert printer["controls_available"] is True and printer["state"]["hms"] == []  # shown, no alarm, no block

        # The owner turned Developer mode on; the latch stays listed (as on a real P2S) and the command works.
        outcome = await r.controls.send("p", "pause", {})
        assert outcome.result == "success"
        await wait_for(lambda: r.state()["gcode_state"] == "PAUSE", WAIT)
        assert r.printer()["commands_refused"] is False
        assert VERIFY_FAILED_HMS in r.sim.printer.hms


def test_fun_is_read_in_the_report_and_at_the_top_level_of_a_real_p2s_message() -> None:
    """The P2S capture's ``fun`` ("60029FD1A3FF9CB7") has 0x20000000 set: that printer wanted signed commands
    (Developer mode off). Some firmware sends ``fun`` beside ``print`` instead: the same answer."""
    report = capture("p2s-ams").messages[0]
    moved = {"fun": report["print"]["fun"], "print": {k: v for k, v in report["print"].items() if k != "fun"}}
    without = {"print": moved["print"]}
    for message, available in ((report, False), (moved, False), (without, True)):
        hub = StateHub([PrinterConfig(id="p", name="P", model="P2S", host="127.0.0.1", serial=SERIAL,
                                      access_code=Secret(CODE))])
        hub.apply_message("p", json.dumps(message).encode())
        assert hub.printer("p")["controls_available"] is available


# -- item 9: both light bars where the printer has both; an unknown light is a clear answer ---------------------


async def test_the_light_switches_both_bars_on_an_h2d(tmp_path: Path) -> None:
    async with rig(tmp_path, "H2D") as r:
        assert r.state()["lights"]["chamber_light2"] == "on"
        outcome = await r.controls.send("p", "light_off", {})
        assert outcome.result == "success"
        nodes = [m["system"]["led_node"] for m in r.sent() if "system" in m]
        assert nodes == ["chamber_light", "chamber_light2"]
        await wait_for(lambda: r.state()["lights"].get("chamber_light2") == "off", WAIT)
        assert r.state()["lights"]["chamber_light"] == "off"
        assert (r.sim.printer.state.chamber_light, r.sim.printer.state.chamber_light2) == ("off", "off")


async def test_a_p2s_switches_its_one_light_and_names_a_light_it_lacks(tmp_path: Path) -> None:
    async with rig(tmp_path, "P2S") as r:
        assert "chamber_light2" not in r.state()["lights"]
        assert (await r.controls.send("p", "light_off", {})).result == "success"
        assert [m["system"]["led_node"] for m in r.sent() if "system" in m] == ["chamber_light"]
        # A report that (wrongly) lists a second bar: the P2S answers the command for it, and that answer is the
        # outcome, in words, at once.
        r.sim.printer.publish_report({"print": {"command": "push_status", "msg": 1,
                                                "lights_report": [{"node": "chamber_light2", "mode": "off"}]}})
        await wait_for(lambda: "chamber_light2" in r.state()["lights"], WAIT)
        outcome = await r.controls.send("p", "light_on", {})
        assert outcome.result == "failed"
        assert outcome.reason is not None and "no such light" in outcome.reason
        assert "did not find the valid led" in outcome.reason


@pytest.mark.parametrize(
    "name,lights",
    [
        ("h2d-two-ams", ("chamber_light", "chamber_light2")),
        ("h2d-ams-ht", ("chamber_light", "chamber_light2")),
        ("h2dpro-ams-ht", ("chamber_light", "chamber_light2")),
        ("h2s-ams", ("chamber_light", "chamber_light2")),
        ("h2c-empty-ams", ("chamber_light", "chamber_light2")),
        ("p2s-ams", ("chamber_light",)),
        ("x1c-four-ams", ("chamber_light",)),
        ("x2d-ams", ("chamber_light",)),
        ("p1p-ams", ("chamber_light",)),
        ("a1-ams-lite", ("chamber_light",)),
    ],
)
def test_the_light_command_switches_the_bars_each_real_printer_reports(name: str, lights: tuple[str, ...]) -> None:
    """Real reports through the reducer: the light command goes to every chamber light the printer lists, and
    to no light it does not have (a P2S would answer "did not find the valid led")."""
    recorded = capture(name)
    state = initial_state()
    for index, message in enumerate(recorded.messages):
        state = apply_message(state, message, model=recorded.model, baseline=index == 0).state
    commands = build_commands("light_off", {}, state["lights"])
    assert tuple(c["system"]["led_node"] for c in commands) == lights
    assert all(c["system"]["led_mode"] == "off" and c["system"]["command"] == "ledctrl" for c in commands)


# -- item 6: a stop from the box is a cancel at once; one from the printer once it is known -------------------


async def test_a_stop_the_box_sends_is_cancelled_at_once_and_announced_once(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await printing(r)
        drain(r.events)
        assert (await r.controls.send("p", "stop", {})).result == "success"
        with trio.fail_after(WAIT):
            ended = await r.events.get()
        # Announced with the printer's first FAILED, which has no error yet: the box knows it sent the stop.
        assert (ended["kind"], ended["result"], ended["print_error"]) == ("job_cancelled", "Cancelled", None)
        await wait_for(lambda: r.state()["print_error"] == "0300_400C", WAIT)  # the printer says so later ...
        await reports_processed(r, 12)
        assert r.state()["job_result"] == {"outcome": "cancelled", "text": "Cancelled"}
        assert drain(r.events) == []  # ... and that is no second end


async def test_a_stop_on_the_printer_reads_stopping_then_cancelled(tmp_path: Path) -> None:
    # The settle only against a hang: the pending end must be seen however slow the machine (test_hub.py times it).
    async with rig(tmp_path, end_settle_s=3600) as r:
        await printing(r)
        drain(r.events)
        r.sim.printer.go_silent()  # hold the 0300_400C back so the pending end can be seen
        assert r.sim.printer.stop()
        r.sim.printer.publish_report(r.sim.printer.full_report())  # what the stop sent at once: FAILED, no error
        await wait_for(lambda: r.state()["gcode_state"] == "FAILED", WAIT)
        assert r.state()["job_result"] == {"outcome": "pending", "text": "Stopping…"}
        assert drain(r.events) == []
        r.sim.printer.resume_talking()
        await wait_for(lambda: r.state()["print_error"] == "0300_400C", WAIT)
        assert r.state()["job_result"] == {"outcome": "cancelled", "text": "Cancelled"}
        assert drain(r.events) == ["job_cancelled"]


# -- item 11: print_error texts as Bambu's published table has them -------------------------------------------


@pytest.mark.parametrize(
    "code,words",
    [
        # ha-bambulab scripts/hms_error_text/hms_en.json at 809391e7 (Bambu's table):
        # 03008001 "Printing was paused by the user. ..."
        ("0300_8001", "by the user"),
        # 03008013 "Printing paused due to the pause command added to the printing file."
        ("0300_8013", "pause command in the print file"),
        # 0500803C "The current nozzle setting does not match the slicing file. ..."
        ("0500_803C", "nozzle setting does not match the slicing file"),
    ],
)
def test_print_error_texts_match_the_published_table(code: str, words: str) -> None:
    text = print_error_description(code)
    assert text is not None and words in text


async def test_a_command_to_an_unknown_printer_or_a_bad_one_is_refused_before_sending(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        with pytest.raises(CommandError) as unknown:
            await r.controls.send("nope", "pause", {})
        assert unknown.value.status == 404
        with pytest.raises(CommandError) as bad:
            await r.controls.send("p", "light_blink", {})
        assert bad.value.status == 400
        assert r.sent() == []
