"""The whole service against the simulator over TLS: the HTTP API end to end, and secrets kept out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trio

from bambupi.config import Config, PrinterConfig, WebConfig
from bambupi.secret import Secret
from bambupi.service import Running, Service
from bambupi.sim.simulator import Simulator

SERIAL = "01S00C000000002"
CODE = "86753090"


@dataclass
class Box:
    sim: Simulator
    running: Running
    base: str


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Box]:
    async with trio.open_nursery() as nursery:
        sim = Simulator("X1C", SERIAL, CODE, mqtt_port=0, scenario="idle")
        await nursery.start(sim.run)
        printer = PrinterConfig(
            id="x1", name="Lab X1C", model="X1C", host="127.0.0.1", serial=SERIAL,
            access_code=Secret(CODE), mqtt_port=sim.mqtt_port, reconnect_max_s=0.5,
        )
        config = Config(printers=(printer,), web=WebConfig(host="127.0.0.1", port=0))
        running = await nursery.start(Service(config, storage_folder=tmp_path).run)
        yield Box(sim, running, f"http://127.0.0.1:{running.port}")
        nursery.cancel_scope.cancel()


async def wait_online(client: httpx.AsyncClient) -> dict[str, object]:
    with trio.fail_after(30):
        while True:
            body = (await client.get("/api/printers/x1")).json()
            if body["connection"] == "online" and body["state"]["gcode_state"] is not None:
                return dict(body)
            await trio.sleep(0.05)


async def test_every_route_and_error_status(box: Box, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    bodies: list[bytes] = []
    async with httpx.AsyncClient(base_url=box.base) as client:
        printer = await wait_online(client)
        assert printer["id"] == "x1" and printer["model"] == "X1C" and printer["controls_available"] is True
        assert set(printer) == {
            "id", "name", "model", "connection", "connection_reason", "last_report_at",
            "controls_available", "commands_refused", "camera", "phase", "state", "job_file",
        }

        r = await client.get("/healthz")
        bodies.append(r.content)
        assert r.status_code == 200
        assert r.json()["components"]["printers"]["x1"]["connection"] == "online"
        assert r.json()["status"] == "ok"

        r = await client.get("/api/printers")
        bodies.append(r.content)
        assert r.status_code == 200 and [p["id"] for p in r.json()] == ["x1"]

        box.sim.printer.start_print("cube.3mf", layers=50, minutes=30)
        with trio.fail_after(30):
            while (await client.get("/api/printers/x1")).json()["state"]["gcode_state"] not in ("PREPARE", "RUNNING"):
                await trio.sleep(0.05)
        r = await client.get("/api/printers/x1")
        bodies.append(r.content)
        assert r.json()["state"]["subtask_name"] == "cube"  or r.json()["state"]["subtask_name"].startswith("cube")

        r = await client.get("/api/printers/x1/mqtt-log")
        bodies.append(r.content)
        messages = r.json()["messages"]
        assert {m["direction"] for m in messages} == {"in", "out"}
        assert any('"pushall"' in m["payload"] for m in messages if m["direction"] == "out")
        last = messages[-1]["seq"]
        r = await client.get(f"/api/printers/x1/mqtt-log?since={last}")
        assert all(m["seq"] > last for m in r.json()["messages"])

        for path, status in [
            ("/api/printers/nope", 404),
            ("/api/printers/nope/mqtt-log", 404),
            ("/api/printers/x1/mqtt-log?since=abc", 400),
            ("/no/such/route", 404),
        ]:
            r = await client.get(path)
            bodies.append(r.content)
            assert r.status_code == status, path
            assert r.headers["content-type"].startswith("application/json")
            assert r.json()["status"] == status

        r = await client.post("/api/printers/x1", content=b"{}")
        assert r.status_code == 405 and r.json()["status"] == 405

    everything = b"".join(bodies)
    assert CODE.encode() not in everything
    assert CODE not in caplog.text


async def test_a_static_path_outside_the_folder_is_a_json_403(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        config = Config(web=WebConfig(host="127.0.0.1", port=0))
        running = await nursery.start(Service(config, storage_folder=tmp_path).run)
        async with httpx.AsyncClient(base_url=running.url) as client:
            for path in ("/static/%2e%2e/api.py", "/static/..%2fapi.py"):
                r = await client.get(path)
                assert r.status_code == 403 and r.json() == {"error": "Access denied.", "status": 403}, path
            assert (await client.get("/static/app.js")).status_code == 200
        nursery.cancel_scope.cancel()
