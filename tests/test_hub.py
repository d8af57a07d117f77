"""StateHub: latest-value change feed, never-silently-dropping event queues, controls availability."""

from __future__ import annotations

import json
import logging

import pytest
import trio

from bambupi.config import PrinterConfig
from bambupi.hub import StateHub
from bambupi.secret import Secret

SERIAL = "01P00A000000001"


def hub_for(model: str = "P1S") -> StateHub:
    config = PrinterConfig(
        id="p", name="P", model=model, host="127.0.0.1", serial=SERIAL, access_code=Secret("12345678")
    )
    return StateHub([config], clock=lambda: 1000.0)


def report(**fields: object) -> bytes:
    return json.dumps({"print": {"command": "push_status", **fields}}).encode()


async def test_subscriber_gets_only_the_latest_state_and_costs_nothing_while_away() -> None:
    hub = hub_for()
    sub = hub.subscribe()
    first = await sub.next()  # the initial snapshot
    assert first["p"]["state"]["percent"] is None
    for percent in range(1, 101):
        hub.apply_message("p", report(gcode_state="RUNNING", mc_percent=percent))
    latest = await sub.next()
    assert latest["p"]["state"]["percent"] == 100
    with trio.move_on_after(0.05) as waited:
        await sub.next()
    assert waited.cancelled_caught  # nothing new since the last call


async def test_wait_wakes_once_per_change_without_building_snapshots(monkeypatch: pytest.MonkeyPatch) -> None:
    hub = hub_for()
    built: list[int] = []
    real = hub.snapshot
    monkeypatch.setattr(hub, "snapshot", lambda: built.append(hub.version) or real())
    subs = [hub.subscribe() for _ in range(50)]
    for sub in subs:
        await sub.wait()
    hub.apply_message("p", report(gcode_state="RUNNING", mc_percent=5))
    for sub in subs:
        await sub.wait()
        assert sub.seen == hub.version
    with trio.move_on_after(0.05) as waited:
        await subs[0].wait()
    assert waited.cancelled_caught  # nothing new since the last call
    assert built == []  # 50 subscribers woke twice and no snapshot was built for them


async def test_events_arrive_in_order_for_every_queue() -> None:
    hub = hub_for()
    panel, notify = hub.open_event_queue("panel"), hub.open_event_queue("notify")
    hub.set_connection("p", "online")
    hub.apply_message("p", report(gcode_state="IDLE"))  # baseline
    hub.apply_message("p", report(gcode_state="RUNNING", subtask_name="benchy"))
    hub.apply_message("p", report(gcode_state="PAUSE"))
    hub.apply_message("p", report(gcode_state="RUNNING"))
    hub.apply_message("p", report(gcode_state="FINISH"))
    for queue in (panel, notify):
        kinds = [(await queue.get())["kind"] for _ in range(4)]
        assert kinds == ["job_started", "job_paused", "job_resumed", "job_finished"]
        assert queue.get_nowait() is None


async def test_a_full_event_queue_says_how_many_it_lost(caplog: pytest.LogCaptureFixture) -> None:
    hub = hub_for()
    queue = hub.open_event_queue("slow", maxlen=2)
    hub.apply_message("p", report(gcode_state="IDLE"))
    for _ in range(3):
        hub.apply_message("p", report(gcode_state="RUNNING"))
        hub.apply_message("p", report(gcode_state="FINISH"))
    assert "slow" in caplog.text and "events are being lost" in caplog.text
    lost = await queue.get()
    assert lost == {"kind": "events_lost", "count": 4, "at": lost["at"]}
    assert [(await queue.get())["kind"] for _ in range(2)] == ["job_started", "job_finished"]


def test_malformed_reports_are_counted_and_change_nothing() -> None:
    hub = hub_for()
    hub.apply_message("p", report(gcode_state="RUNNING", mc_percent=5))
    before = hub.printer("p")
    for junk in (b"{not json", b"[1,2]", b'{"print": 3}', b'{"print": {"command": "push_status", "mc_percent": NaN}}'):
        assert hub.apply_message("p", junk).rejected is not None
    assert hub.printer("p") == before
    assert hub.rejected_messages("p") == 4


def test_controls_unavailable_when_signature_needed_or_command_rejected() -> None:
    hub = hub_for()
    hub.apply_message("p", report(fun="1C41"))
    assert hub.printer("p")["controls_available"] is True
    hub.apply_message("p", report(fun=hex(0x20000000)[2:].upper()))
    assert hub.printer("p")["controls_available"] is False
    hub.apply_message("p", report(fun="0"))
    assert hub.printer("p")["controls_available"] is True
    hub.apply_message("p", report(hms=[{"attr": 0x05000500, "code": 0x00010007}]))
    printer = hub.printer("p")
    assert printer["controls_available"] is False
    assert printer["state"]["hms"] == []  # not an alarm
    hub.apply_message("p", report(hms=[]))
    assert hub.printer("p")["controls_available"] is True


def test_command_replies_reach_listeners_and_do_not_change_state() -> None:
    hub = hub_for()
    replies: list[tuple[str, dict[str, object]]] = []
    hub.on_reply(lambda pid, reply: replies.append((pid, reply)))
    hub.apply_message("p", report(gcode_state="RUNNING"))
    before = hub.printer("p")
    reply = {"print": {"command": "pause", "sequence_id": "7", "result": "SUCCESS"}}
    hub.apply_message("p", json.dumps(reply).encode())
    assert hub.printer("p") == before
    assert replies and replies[0][0] == "p"
    assert replies[0][1]["sequence_id"] == "7" and replies[0][1]["result"] == "success"


def test_connection_changes_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "bambupi.hub")
    hub = hub_for()
    for _ in range(3):
        hub.set_connection("p", "offline", "connection refused")
    assert caplog.text.count("offline") == 1


def test_a_report_not_a_login_makes_a_printer_online_and_only_a_return_is_restored() -> None:
    now = [1000.0]
    config = PrinterConfig(
        id="p", name="P", model="P1S", host="127.0.0.1", serial=SERIAL, access_code=Secret("12345678")
    )
    hub = StateHub([config], clock=lambda: now[0])
    events = hub.open_event_queue("test")
    assert (hub.printer("p")["connection"], hub.printer("p")["last_report_at"]) == ("connecting", None)
    hub.apply_message("p", report(gcode_state="RUNNING", mc_percent=25))  # the reply to pushall
    assert (hub.printer("p")["connection"], hub.printer("p")["last_report_at"]) == ("online", 1000.0)
    assert events.get_nowait() is None  # the first report after start is the baseline, not a "restore"

    hub.set_connection("p", "stale", "no report from the printer for 60 s; reconnecting")
    assert hub.apply_message("p", b"{not json").rejected is not None
    assert hub.printer("p")["connection"] == "stale"  # junk is not a report

    now[0] = 1100.0
    hub.apply_message("p", report(mc_percent=25))  # nothing changed in the state: still a report
    printer = hub.printer("p")
    assert (printer["connection"], printer["connection_reason"], printer["last_report_at"]) == ("online", None, 1100.0)
    assert [e["kind"] for e in (events.get_nowait(), events.get_nowait())] == ["connection_lost", "connection_restored"]
    assert events.get_nowait() is None
