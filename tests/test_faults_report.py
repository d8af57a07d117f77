"""One odd MQTT report must never end the service (issue 14, item 2).

A job name holding a JSON-escaped lone surrogate (``"\\ud800"``) used to reach ``PowerStore.start_job`` and raise
UnicodeEncodeError there, ending the service. The reducer now makes every string field of a report safe
(:func:`bambupi.printer.state.safe_text`), so storage, logs, the page, notifications and the OLED see readable text.
The journey sends such a report from the simulated printer over TLS to the real service.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest
import trio

from bambupi.config import WebConfig
from bambupi.panel.screens import Text, View, render, status_items
from bambupi.printer.state import MAX_TEXT_CHARS, apply_message, initial_state, safe_text
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
