"""One odd MQTT report must never end the service (issue 14, item 2).

A job name holding a JSON-escaped lone surrogate (``"\\ud800"``) used to reach ``Database.start_job`` and raise
UnicodeEncodeError there, ending the service. The reducer now makes every string field of a report safe
(:func:`bambupi.printer.state.safe_text`), so storage, logs, the page, notifications and the OLED see readable text.
The journey sends such a report from the simulated printer over TLS to the real service.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from bambupi.camera.snapshots import SnapshotStore
from bambupi.config import WebConfig
from bambupi.panel.screens import Text, View, render, status_items
from bambupi.printer.state import (
    MAX_AMS_UNITS,
    MAX_HMS_ENTRIES,
    MAX_LIGHTS,
    MAX_PAYLOAD_BYTES,
    MAX_TEXT_CHARS,
    MAX_TRAYS_PER_UNIT,
    apply_message,
    initial_state,
    safe_text,
)
from bambupi.web.frontdoor import FrontDoor
from tests.journeys.harness import PRINTER, journey
from tests.notify_services import NTFY_TOKEN, FakeServices

WAIT = 30  # generous: a busy CPU only slows the waits
# What the printer sends, byte for byte: JSON escapes for a lone surrogate, a bell, a newline, an ANSI colour
# sequence and a right-to-left override around an otherwise ordinary file name.
BAD_NAME_JSON = r"bracket\ud800_v2\u0007\n\u001b[31m\u202e.3mf"
READABLE = "bracket\ufffd_v2   [31m.3mf"


def report(**fields: object) -> bytes:
    return json.dumps({"print": {"command": "push_status", "msg": 1, **fields}}).encode()


def test_safe_text_replaces_surrogates_and_controls_and_bounds_length() -> None:
    assert safe_text(json.loads(f'"{BAD_NAME_JSON}"')) == READABLE
    assert safe_text("Benchy \U0001f600 \u00e9") == "Benchy \U0001f600 \u00e9"  # real text is untouched
    assert safe_text("x" * 10_000) == "x" * MAX_TEXT_CHARS
    assert safe_text("\u2028a\u0085b\u2066", max_chars=3) == " a "
    safe_text(json.loads('"\\udfff\\ud800"')).encode("utf-8")  # no lone surrogate survives


def test_every_string_field_of_a_report_is_made_safe() -> None:
    payload = (
        '{"print": {"command": "push_status", "subtask_name": "' + BAD_NAME_JSON + '",'
        ' "lights_report": [{"node": "chamber_light\\ud800", "mode": "on\\u0000"}],'
        ' "ams": {"ams": [{"id": "0", "tray": [{"id": "0", "tray_type": "PLA\\udc00\\n"}]}]},'
        ' "vt_tray": {"id": "254", "tray_type": "' + "P" * 500 + '"}},'
        ' "system": {"command": "ledctrl", "sequence_id": "7\\ud800", "result": "FAIL\\n", "reason": "no\\u001b"}}'
    ).encode()
    applied = apply_message(initial_state(), payload, model="P1S")
    state = applied.state
    assert state["subtask_name"] == READABLE
    assert state["lights"] == {"chamber_light\ufffd": "on "}
    assert state["ams"]["units"]["0"]["trays"]["0"]["type"] == "PLA\ufffd "
    assert state["external_spool"]["type"] == "P" * 32
    assert applied.reply == {"sequence_id": "7\ufffd", "command": "ledctrl", "result": "fail ", "reason": "no "}
    # Everything the reducer keeps can be written as UTF-8 (SQLite, a log line, a socket).
    json.dumps(state, ensure_ascii=False).encode("utf-8")
    json.dumps(applied.reply, ensure_ascii=False).encode("utf-8")


async def test_a_job_name_with_a_lone_surrogate_is_recorded_readable_and_the_service_keeps_running(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    receiver = FakeServices()
    async with trio.open_nursery() as outer:
        notify_port = await outer.start(FrontDoor(receiver.app, WebConfig(host="127.0.0.1", port=0)).run)
        channel = (
            f'[[notify]]\nname = "phone"\nkind = "ntfy"\nurl = "http://127.0.0.1:{notify_port}"\n'
            f'topic = "bambupi"\ntoken = "{NTFY_TOKEN}"\nevents = ["started", "finished"]\n'
            '[panel]\noled = "virtual"\ngpio = "virtual"\n'
        )
        async with journey(tmp_path, extra=channel) as j, httpx.AsyncClient(base_url=j.base, timeout=WAIT) as http:
            # The first report only sets the baseline: the print must start after it, as a real one does.
            with trio.fail_after(WAIT):
                while (await http.get(f"/api/printers/{PRINTER}")).json()["connection"] != "online":
                    await trio.sleep(0.05)
            j.sim.printer.publish_report(
                b'{"print": {"command": "push_status", "msg": 1, "gcode_state": "RUNNING", "mc_percent": 3,'
                b' "subtask_name": "' + BAD_NAME_JSON.encode() + b'"}}'
            )
            with trio.fail_after(WAIT):
                while not [r for r in receiver.of("ntfy") if "started" in json.dumps(r.json)]:
                    await trio.sleep(0.05)
                # The service is still here and still applies reports: a later one shows.
                j.sim.printer.publish_report(report(mc_percent=57))
                while (await http.get(f"/api/printers/{PRINTER}")).json()["state"]["percent"] != 57:
                    await trio.sleep(0.05)

            printers = (await http.get("/api/printers")).json()
            assert printers[0]["state"]["subtask_name"] == READABLE
            started = next(r.json for r in receiver.of("ntfy") if "started" in json.dumps(r.json))
            assert started["title"] == f"Garage P1S: started {READABLE}", started
            with trio.fail_after(WAIT):
                while not (jobs := (await http.get("/api/jobs")).json()["jobs"]):
                    await trio.sleep(0.05)
            assert jobs[0]["name"] == READABLE and jobs[0]["result"] is None  # recorded, running

            # The OLED draws the name as its fonts can (the status screen's bottom line), from the same state.
            items = status_items(View("status", printers[0]))
            assert any(isinstance(i, Text) and i.text.startswith("bracket?_v2") for i in items), items
            render(View("status", printers[0]))
            assert (await http.get("/api/panel.png")).status_code == 200
            # The MQTT capture shows the raw message as received (escapes and all), as JSON that reads back.
            log = (await http.get(f"/api/printers/{PRINTER}/mqtt-log")).json()["messages"]
            assert any(BAD_NAME_JSON in m["payload"] for m in log)

            # The page shows it too, and the print finishing is recorded under the same name.
            page = await j.phone()
            await page.navigate(j.base + "/")
            await page.wait_for(j.card("[data-field=job]") + "?.textContent.startsWith('bracket\ufffd_v2')", WAIT)
            j.sim.printer.publish_report(report(gcode_state="FINISH", mc_percent=100))
            with trio.fail_after(WAIT):
                while (await http.get("/api/jobs")).json()["jobs"][0]["result"] != "finished":
                    await trio.sleep(0.05)
        outer.cancel_scope.cancel()
    # Every log line can be written to the journal as UTF-8.
    for record in caplog.records:
        record.getMessage().encode("utf-8")


# -- a report that lists too much (issue 14, item 13) ---------------------------------------------------------------
# 20,000 HMS entries in one 700 KB report blocked /healthz 6.7-12.9 s, wrote 2,007 log lines, overflowed every event
# queue, and 530 snapshot saves failed on one shared temporary file name.

FLOOD = 20_000


def hms_flood(count: int = FLOOD) -> list[tuple[int, int]]:
    """``count`` distinct serious HMS codes (level 2), as (attr, code) pairs."""
    return [(0x0700_0000 + i, 0x0002_0000 + (i % 0xFFFF) + 1) for i in range(count)]


def test_a_report_listing_too_much_is_bounded_and_says_what_it_left_out() -> None:
    flood = [{"attr": attr, "code": code} for attr, code in hms_flood()]
    payload = json.dumps({"print": {
        "command": "push_status", "hms": flood,
        "ams": {"ams": [{"id": str(u), "tray": [{"id": str(t), "tray_type": "PLA"} for t in range(20)]}
                        for u in range(40)]},
        "lights_report": [{"node": f"light{i}", "mode": "on"} for i in range(500)],
    }}).encode()
    assert len(payload) < MAX_PAYLOAD_BYTES  # the message itself is accepted
    applied = apply_message(initial_state(), payload, model="P1S")
    state = applied.state
    assert len(state["hms"]) == MAX_HMS_ENTRIES
    assert [e["code"] for e in state["hms"][:2]] == ["0700_0000_0002_0001", "0700_0001_0002_0002"]
    assert len(state["ams"]["units"]) == MAX_AMS_UNITS
    assert all(len(unit["trays"]) == MAX_TRAYS_PER_UNIT for unit in state["ams"]["units"].values())
    assert len(state["lights"]) == MAX_LIGHTS
    assert applied.dropped is not None
    assert f"{FLOOD - MAX_HMS_ENTRIES} HMS entries beyond the first {MAX_HMS_ENTRIES}" in applied.dropped
    assert "AMS units" in applied.dropped and "trays" in applied.dropped and "lights" in applied.dropped
    # An ordinary report leaves nothing out and says nothing.
    assert apply_message(initial_state(), report(hms=flood[:3]), model="P1S").dropped is None


def test_two_saves_of_the_same_frame_at_once_both_succeed(tmp_path: Path) -> None:
    """Saves of one frame for one reason share a file name; each writes its own temporary file first."""
    store = SnapshotStore(tmp_path / "snapshots")
    failures: list[BaseException] = []
    start = threading.Barrier(8)

    def save() -> None:
        start.wait()
        for _ in range(100):
            try:
                store.save("p", b"\xff\xd8 a frame \xff\xd9", "hms", 1_800_000_000.25)
            except OSError as exc:
                failures.append(exc)

    threads = [threading.Thread(target=save) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sorted(p.name for p in (tmp_path / "snapshots" / "p").iterdir()) == ["20270115T080000.250Z-hms.jpg"]


async def test_the_service_takes_a_report_of_20000_hms_entries_in_its_stride(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The real simulator keeps reporting 20,000 serious HMS codes (a 700 KB report) over TLS to the real service."""
    caplog.set_level(logging.INFO)
    async with journey(tmp_path, camera=True) as j, httpx.AsyncClient(base_url=j.base, timeout=WAIT) as http:
        assert j.running is not None
        hub = j.running.hub

        async def printer() -> dict[str, Any]:
            return dict((await http.get(f"/api/printers/{PRINTER}")).json())

        with trio.fail_after(WAIT):  # online, with the baseline report applied: what comes next is new
            while (p := await printer())["connection"] != "online" or p["state"]["gcode_state"] is None:
                await trio.sleep(0.05)
        events = hub.open_event_queue("test")
        logged_before = len(caplog.records)
        j.sim.printer.set_hms(hms_flood())
        with trio.fail_after(WAIT):
            while len((await printer())["state"]["hms"]) != MAX_HMS_ENTRIES:
                await trio.sleep(0.05)
        # The service keeps answering, and a later report still applies.
        assert (await http.get("/healthz")).status_code == 200
        j.sim.printer.publish_report(report(mc_percent=61))
        with trio.fail_after(WAIT):
            while (await printer())["state"]["percent"] != 61:
                await trio.sleep(0.05)
        # One snapshot for the burst of errors, saved (not one per error, none failing on a shared file name).
        with trio.fail_after(WAIT):
            while not [s for s in (await http.get(f"/api/printers/{PRINTER}/snapshots")).json()["snapshots"]
                       if s["reason"] == "hms"]:
                await trio.sleep(0.05)
        raised = []
        while (event := events.get_nowait()) is not None:
            assert event["kind"] != "events_lost", event
            raised += [event] if event["kind"] == "hms_raised" else []
        assert len(raised) == MAX_HMS_ENTRIES
        said = [r.getMessage() for r in caplog.records[logged_before:]]
    assert not [m for m in said if "snapshot" in m and "cannot" in m], said
    assert len([m for m in said if "left out" in m]) == 1, said  # said once, though every report lists them all
    assert len(said) <= 4 * MAX_HMS_ENTRIES, f"{len(said)} log lines"
