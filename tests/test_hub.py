"""StateHub: latest-value change feed, never-silently-dropping event queues, controls availability."""

from __future__ import annotations

import json
import logging
from contextlib import AsyncExitStack

import pytest
import trio

from bambupi.config import PrinterConfig
from bambupi.printer.phase import job_phase, phase
from bambupi.secret import Secret
from bambupi.state_hub import JOB_END_SETTLE_S, CameraStatus, EventQueue, StateHub
from tests.capture_corpus import capture

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
    async with hub.subscribe() as sub:
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
    async with AsyncExitStack() as stack:
        subs = [await stack.enter_async_context(hub.subscribe()) for _ in range(50)]
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


def test_controls_unavailable_only_when_the_printer_wants_signed_commands() -> None:
    hub = hub_for()
    hub.apply_message("p", report(fun="1C41"))
    assert hub.printer("p")["controls_available"] is True
    hub.apply_message("p", report(fun=hex(0x20000000)[2:].upper()))
    assert hub.printer("p")["controls_available"] is False
    hub.apply_message("p", report(fun="0"))
    assert hub.printer("p")["controls_available"] is True
    # Some firmware sends ``fun`` at the top level, beside ``print``, as real captures show.
    hub.apply_message("p", json.dumps({"fun": "60029FD1A3FF9CB7", "print": {"command": "push_status"}}).encode())
    assert hub.printer("p")["controls_available"] is False
    hub.apply_message("p", json.dumps({"fun": "0"}).encode())
    assert hub.printer("p")["controls_available"] is True


VERIFY_FAILED = {"attr": 0x05000500, "code": 0x00010007}  # 0500_0500_0001_0007, a latch


def test_a_refused_command_is_shown_and_blocks_nothing() -> None:
    """HMS 0500_0500_0001_0007 stays listed after one refused command and a P2S accepted commands meanwhile
    (real captures): the printer object says a command was refused, controls stay available, and a command that
    goes through clears the note while the latch is still listed."""
    hub = hub_for()
    hub.apply_message("p", report(hms=[]))
    assert hub.printer("p")["commands_refused"] is False
    hub.apply_message("p", report(hms=[VERIFY_FAILED]))
    printer = hub.printer("p")
    assert (printer["controls_available"], printer["commands_refused"]) == (True, True)
    assert printer["state"]["hms"] == []  # not an alarm
    hub.command_answered("p", command="pause", ok=True, refused=False)
    hub.apply_message("p", report(hms=[VERIFY_FAILED]))  # still listed: it is a latch
    assert hub.printer("p")["commands_refused"] is False
    hub.command_answered("p", command="pause", ok=False, refused=True)  # "mqtt message verify failed"
    assert hub.printer("p")["commands_refused"] is True
    hub.apply_message("p", report(hms=[]))  # the printer let go of its latch
    assert hub.printer("p")["commands_refused"] is False


# -- how a job ended: known only when it is known -----------------------------------------------------------


def replay(hub: StateHub, name: str) -> list[dict[str, object]]:
    """Each message of a capture into the hub; the job_result after each."""
    results = []
    for message in capture(name).messages:
        hub.apply_message("p", json.dumps(message).encode())
        results.append(hub.printer("p")["state"]["job_result"])
    return results


def end_kinds(queue: EventQueue) -> list[str]:
    found = []
    while (event := queue.get_nowait()) is not None:
        found.append(event["kind"])
    return found


async def test_a_real_p2s_stop_is_cancelled_when_its_code_arrives() -> None:
    hub = hub_for("P2S")
    queue = hub.open_event_queue("test")
    assert replay(hub, "p2s-user-stop") == [None, {"outcome": "pending", "text": "Stopping…"},
                                            {"outcome": "cancelled", "text": "Cancelled"}]
    assert end_kinds(queue) == ["job_joined", "job_cancelled"]  # the capture starts mid-print


async def test_failed_without_an_error_is_cancelled_once_the_settle_passes(autojump_clock: object) -> None:
    hub = hub_for("P2S")
    queue = hub.open_event_queue("test")
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        messages = capture("p2s-user-stop").messages[:2]  # the 0300_400C never comes
        for message in messages:
            hub.apply_message("p", json.dumps(message).encode())
        ended_at = trio.current_time()
        assert hub.printer("p")["state"]["job_result"]["outcome"] == "pending"
        assert end_kinds(queue) == ["job_joined"]  # the capture starts mid-print; not a failure, not yet an end
        with trio.fail_after(JOB_END_SETTLE_S * 3):
            event = await queue.get()
        assert (event["kind"], event["result"]) == ("job_cancelled", "Cancelled")
        assert event["job"] == "Rear Dry Pod AMS 2 PRO "
        assert trio.current_time() - ended_at >= JOB_END_SETTLE_S  # the fake clock: the settle was waited for
        assert hub.printer("p")["state"]["job_result"] == {"outcome": "cancelled", "text": "Cancelled"}
        # a later report without an error keeps the verdict
        hub.apply_message("p", json.dumps(messages[1]).encode())
        assert hub.printer("p")["state"]["job_result"]["outcome"] == "cancelled"
        assert queue.get_nowait() is None
        nursery.cancel_scope.cancel()


async def test_an_error_within_the_settle_is_a_failure_and_nothing_follows(autojump_clock: object) -> None:
    hub = hub_for()
    queue = hub.open_event_queue("test")
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        hub.apply_message("p", report(gcode_state="IDLE"))
        hub.apply_message("p", report(gcode_state="RUNNING", subtask_name="hook"))
        hub.apply_message("p", report(gcode_state="FAILED", print_error=0))
        await trio.sleep(JOB_END_SETTLE_S / 2)
        hub.apply_message("p", report(print_error=0x03004006))
        await trio.sleep(JOB_END_SETTLE_S * 2)  # on the fake clock: well past the settle
        assert end_kinds(queue) == ["job_started", "job_failed"]
        failed = {"outcome": "failed", "text": "Failed: The nozzle is clogged."}
        assert hub.printer("p")["state"]["job_result"] == failed
        nursery.cancel_scope.cancel()


async def test_a_stop_the_box_sent_is_a_cancel_at_once_whatever_the_printer_says_first() -> None:
    hub = hub_for()
    queue = hub.open_event_queue("test")
    hub.apply_message("p", report(gcode_state="IDLE"))
    hub.apply_message("p", report(gcode_state="RUNNING", subtask_name="hook"))
    hub.apply_message("p", report(gcode_state="PAUSE", print_error=0x03008004))  # paused: filament ran out
    hub.stop_sent("p")
    hub.apply_message("p", report(gcode_state="FAILED"))  # the pause's reason is still there
    assert end_kinds(queue) == ["job_started", "job_paused", "job_cancelled"]
    assert hub.printer("p")["state"]["job_result"]["outcome"] == "cancelled"
    # the next job is not covered by that stop
    hub.apply_message("p", report(gcode_state="RUNNING", subtask_name="lid", print_error=0))
    hub.apply_message("p", report(gcode_state="FAILED", print_error=0x03004006))
    assert end_kinds(queue) == ["job_started", "job_failed"]


async def test_a_stop_sent_while_the_end_is_pending_settles_it_and_a_refused_stop_is_forgotten() -> None:
    hub = hub_for()
    queue = hub.open_event_queue("test")
    hub.apply_message("p", report(gcode_state="IDLE"))
    hub.apply_message("p", report(gcode_state="RUNNING", subtask_name="hook"))
    hub.apply_message("p", report(gcode_state="FAILED"))
    hub.stop_sent("p")  # the owner pressed Stop as the printer's own Stop was under way
    assert end_kinds(queue) == ["job_started", "job_cancelled"]

    hub.apply_message("p", report(gcode_state="RUNNING", subtask_name="lid"))
    hub.stop_sent("p")
    hub.command_answered("p", command="stop", ok=False, refused=True)  # the printer refused it: the job goes on
    hub.apply_message("p", report(gcode_state="FAILED", print_error=0x03004006))
    assert end_kinds(queue) == ["job_started", "job_failed"]


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
    caplog.set_level(logging.INFO, "bambupi.state_hub")
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
    # The first report after start is the baseline, not a "restore" (it only says a job is under way).
    assert [e["kind"] for e in iter(events.get_nowait, None)] == ["job_joined"]

    hub.set_connection("p", "stale", "no report from the printer for 60 s; reconnecting")
    assert hub.apply_message("p", b"{not json").rejected is not None
    assert hub.printer("p")["connection"] == "stale"  # junk is not a report

    now[0] = 1100.0
    hub.apply_message("p", report(mc_percent=25))  # nothing changed in the state: still a report
    printer = hub.printer("p")
    assert (printer["connection"], printer["connection_reason"], printer["last_report_at"]) == ("online", None, 1100.0)
    assert [e["kind"] for e in (events.get_nowait(), events.get_nowait())] == ["connection_lost", "connection_restored"]
    assert events.get_nowait() is None


@pytest.mark.parametrize(
    ("gcode_state", "job_result", "expected"),
    [
        (None, None, "idle"),
        ("IDLE", None, "idle"),
        ("INIT", None, "idle"),
        ("UNKNOWN", None, "idle"),
        ("SLICING", None, "preparing"),  # an X1 slicing a job it was sent: the job exists (printer/phase.py)
        ("PREPARE", None, "preparing"),
        ("RUNNING", None, "printing"),
        ("PAUSE", None, "paused"),  # a paused job is still a job
        ("FINISH", None, "finished"),
        ("FAILED", {"outcome": "pending", "text": "Stopping…"}, "cancelled"),
        ("FAILED", {"outcome": "cancelled", "text": "Cancelled"}, "cancelled"),
        ("FAILED", {"outcome": "failed", "text": "Nozzle clog"}, "failed"),
    ],
)
def test_phase_of_every_reported_state(gcode_state: str | None, job_result: object, expected: str) -> None:
    state = {"gcode_state": gcode_state, "job_result": job_result}
    assert job_phase(state) == expected
    assert phase("online", state) == phase("stale", state) == expected  # stale: reports paused, the job goes on
    assert phase("offline", state) == phase("connecting", state) == "offline"


def test_the_hub_puts_the_phase_in_every_printer_object() -> None:
    hub = hub_for()
    assert hub.printer("p")["phase"] == "offline"  # nothing heard yet
    hub.apply_message("p", report(gcode_state="PAUSE"))
    assert hub.printer("p")["phase"] == "paused"
    hub.set_connection("p", "stale", "timeout")
    assert hub.printer("p")["phase"] == "paused"
    hub.set_connection("p", "offline", "timeout")
    assert hub.printer("p")["phase"] == "offline"
    assert hub.printer("p")["state"]["gcode_state"] == "PAUSE"  # the last report is kept beside it


def test_one_snapshot_per_version_and_unchanged_printers_keep_their_object() -> None:
    configs = [
        PrinterConfig(id=pid, name=pid, model="P1S", host="127.0.0.1", serial=SERIAL, access_code=Secret("12345678"))
        for pid in ("a", "b")
    ]
    hub = StateHub(configs, clock=lambda: 1000.0)
    first = hub.snapshot()
    assert hub.snapshot() is first  # built once per version, whoever asks
    hub.apply_message("a", report(gcode_state="RUNNING"))
    second = hub.snapshot()
    assert second is not first
    assert second["b"] is first["b"]  # b did not change: nobody rebuilds (or diffs) it
    assert second["a"]["phase"] == "printing"
    assert hub.printer_version("a") == hub.version > hub.printer_version("b")


async def test_camera_status_is_its_own_stream_and_wakes_no_printer_subscriber() -> None:
    hub = hub_for()
    hub.apply_message("p", report(gcode_state="RUNNING"))
    version = hub.version
    async with hub.subscribe() as updates:
        await updates.wait()
        for n in range(1, 31):  # a minute of a live camera's 2-second figures
            hub.set_camera("p", CameraStatus(kind="tls6000", status="live", reason=None, fps=float(n % 7)))
        assert hub.version == version
        assert hub.camera_version >= 30
        assert hub.printer("p")["camera"]["fps"] == 30 % 7  # the public object still shows it
        assert hub.snapshot()["p"]["camera"]["fps"] == 30 % 7
        with trio.move_on_after(0.05) as waited:
            await updates.wait()
        assert waited.cancelled_caught  # the printer subscriber slept through all of it
        with trio.fail_after(1):
            await hub.wait_for_news(version, hub.camera_version - 1)  # the WebSocket's watcher does wake


async def test_an_event_queue_lives_as_long_as_its_block() -> None:
    hub = hub_for()
    async with hub.events("test") as queue:
        hub.publish_event({"kind": "power_check", "printer": "p", "message": "m"})
        assert (await queue.get())["kind"] == "power_check"
    hub.publish_event({"kind": "power_check", "printer": "p", "message": "again"})
    assert len(queue) == 0  # closed with the block: nothing piles up for a consumer that left
