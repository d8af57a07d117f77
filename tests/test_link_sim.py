"""The printer link against the simulated printer over TLS: coalesced records, silence, drops, events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from bambupi.config import PrinterConfig
from bambupi.printer.link import PrinterLink
from bambupi.printer.tls_pins import PinStore
from bambupi.secret import Secret
from bambupi.sim.simulator import Simulator
from bambupi.state_hub import EventQueue, StateHub
from tests.support import wait_for

SERIAL = "01P00A000000009"
CODE = "24681357"
OFFLINE_AFTER_S = 6.0


@dataclass
class Rig:
    sim: Simulator
    hub: StateHub
    link: PrinterLink
    events: EventQueue

    def printer(self) -> dict[str, object]:
        return self.hub.printer("p")

    def state(self) -> dict[str, object]:
        return dict(self.hub.printer("p")["state"])


@pytest.fixture
async def rig(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    """``request.param`` (optional): the printer's HMS list, and the link's ``stale_after_s`` and ``keepalive_s``."""
    options = getattr(request, "param", {})
    stale_after_s = options.get("stale_after_s", 2.5)
    async with trio.open_nursery() as nursery:
        sim = Simulator("P1S", SERIAL, CODE, scenario="idle", time_scale=100)
        await nursery.start(sim.run)
        sim.printer.set_hms(options.get("hms", []))
        config = PrinterConfig(
            id="p", name="P", model="P1S", host="127.0.0.1", serial=SERIAL, access_code=Secret(CODE),
            mqtt_port=sim.mqtt_port, stale_after_s=stale_after_s, offline_after_s=max(OFFLINE_AFTER_S, stale_after_s),
            reconnect_max_s=0.3, connect_timeout_s=3.0,
        )
        hub = StateHub([config])
        events = hub.open_event_queue("test")
        keepalive_s = options.get("keepalive_s", 30)
        link = PrinterLink(config, hub, PinStore(tmp_path / "tls-pins.json"), keepalive_s=keepalive_s)
        await nursery.start(link.run)
        rig = Rig(sim, hub, link, events)
        await wait_for(lambda: rig.printer()["connection"] == "online" and rig.state()["gcode_state"] == "IDLE")
        yield rig
        nursery.cancel_scope.cancel()


def drain(queue: EventQueue) -> list[dict[str, object]]:
    out = []
    while (event := queue.get_nowait()) is not None:
        out.append(event)
    return out


# Nothing reaches the link but the record: a silent printer, no keepalive ping and no stale reconnect within the wait.
@pytest.mark.parametrize("rig", [{"stale_after_s": 3600.0, "keepalive_s": 3600}], indirect=True)
async def test_packets_coalesced_in_one_tls_record_are_all_delivered_at_once(rig: Rig) -> None:
    rig.sim.printer.go_silent()
    reports = [
        {"print": {"command": "push_status", "msg": 1, "layer_num": 7}},
        {"print": {"command": "push_status", "msg": 1, "mc_percent": 42}},
        {"print": {"command": "push_status", "msg": 1, "spd_lvl": 3}},
    ]
    rig.sim.printer.publish_reports(reports, coalesce=True)
    # Nothing else comes after the record: only draining the SSL object's buffer can deliver all three.
    await wait_for(lambda: rig.state()["speed_level"] == 3, what="the last report of the record")
    state = rig.state()
    assert (state["layer"], state["percent"]) == (7, 42)


async def test_a_silent_printer_is_stale_through_reconnects_then_offline_then_back(rig: Rig) -> None:
    """Defect: the link logged in again, said "online" within a second, and flapped online/stale for ever."""
    rig.sim.printer.start_print("benchy", layers=40, minutes=120)
    await wait_for(lambda: rig.state()["gcode_state"] == "RUNNING")
    drain(rig.events)
    last_report = rig.printer()["last_report_at"]
    rig.sim.printer.go_silent()  # TCP and MQTT pings stay up; no report, no answer to pushall
    await wait_for(lambda: rig.printer()["connection"] != "online")
    logins = rig.link.connects
    for n in range(1, 4):
        # Each reconnect logs in and asks for a full report that never comes: still stale (or offline once
        # the period passed), never online or connecting.
        await wait_for(lambda n=n: rig.link.connects >= logins + n)
        assert rig.printer()["connection"] in ("stale", "offline")
    await wait_for(lambda: rig.printer()["connection"] == "offline")
    printer = rig.printer()
    assert printer["connection_reason"] == f"no report from the printer for {OFFLINE_AFTER_S:g} s"
    assert printer["state"]["gcode_state"] == "RUNNING"  # the last known state, kept and marked by "offline"
    silent_since = printer["last_report_at"]
    assert silent_since is not None and last_report is not None and silent_since >= last_report
    events = drain(rig.events)
    assert [(e["kind"], e["connection"]) for e in events] == [("connection_lost", "stale")]  # once, no flapping

    rig.sim.printer.resume_talking()
    await wait_for(lambda: rig.printer()["connection"] == "online")
    assert rig.printer()["connection_reason"] is None and rig.printer()["last_report_at"] > silent_since
    assert [e["kind"] for e in drain(rig.events)] == ["connection_restored"]


async def test_dropped_connection_comes_back_and_resyncs(rig: Rig) -> None:
    drain(rig.events)
    before = rig.link.connects
    assert rig.sim.printer.drop_clients() == 1
    await wait_for(lambda: rig.link.connects == before + 1 and rig.printer()["connection"] == "online")
    kinds = [e["kind"] for e in drain(rig.events)]
    assert kinds == ["connection_lost", "connection_restored"]
    pushalls = [
        m for m in rig.hub.capture("p").messages() if m.direction == "out" and "pushall" in m.payload
    ]
    assert len(pushalls) == 2


async def test_print_lifecycle_reaches_the_event_queue(rig: Rig) -> None:
    drain(rig.events)
    rig.sim.printer.start_print("benchy", layers=10, minutes=60)
    await wait_for(lambda: rig.state()["gcode_state"] == "RUNNING")
    assert rig.sim.printer.pause()
    await wait_for(lambda: rig.state()["gcode_state"] == "PAUSE")
    assert rig.sim.printer.stop()
    # A stop reports FAILED without an error first; the end is known (cancelled) once 0300_400C follows.
    await wait_for(lambda: (rig.state()["job_result"] or {}).get("outcome") == "cancelled")
    events = drain(rig.events)
    assert [e["kind"] for e in events] == ["job_started", "job_paused", "job_cancelled"]
    assert events[0]["job"] == rig.state()["subtask_name"]


@pytest.mark.parametrize("rig", [{"hms": [(0x0C000300, 0x00030008)]}], indirect=True)
async def test_errors_active_at_start_are_standing_and_new_ones_are_raised(rig: Rig) -> None:
    hms = rig.state()["hms"]
    assert isinstance(hms, list) and [h["standing"] for h in hms] == [True]
    drain(rig.events)
    rig.sim.printer.set_hms([(0x0C000300, 0x00030008), (0x07000200, 0x00020004)])
    await wait_for(lambda: len(rig.state()["hms"]) == 2)  # type: ignore[arg-type]
    events = drain(rig.events)
    assert [(e["kind"], e["code"], e["severity"]) for e in events] == [
        ("hms_raised", "0700_0200_0002_0004", "serious")
    ]
    assert CODE not in json.dumps(rig.hub.snapshot())


async def test_a_bug_while_handling_a_report_costs_a_reconnect_not_the_service(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    original = rig.hub.apply_message
    calls = {"n": 0}

    def explode_once(printer_id: str, payload: bytes):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return original(printer_id, payload)

    rig.hub.apply_message = explode_once  # type: ignore[method-assign]
    before = rig.link.connects
    rig.sim.printer.publish_report({"print": {"command": "push_status", "msg": 1, "mc_percent": 3}})
    await wait_for(lambda: rig.link.connects == before + 1 and rig.printer()["connection"] == "online")
    assert "unexpected error in the printer link" in caplog.text
