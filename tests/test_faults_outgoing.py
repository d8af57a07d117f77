"""Outgoing calls under attack (issue 14, items 5, 6, 7, 16): a plug or a notification service that drips its answer,
sends an endless one, hangs, or echoes the request back in an error must not stall sampling, fill the memory, hold
the web threads or leak a key. Real servers on loopback, the real service, real HTTP.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from bambupi.config import Config, NotifyConfig, PlugConfig, PowerConfig, PrinterConfig, WebConfig, parse_config
from bambupi.notify.messages import sample_message
from bambupi.notify.notifier import Notifier
from bambupi.power.plugs import PlugError, make_plug
from bambupi.secret import Secret
from bambupi.service import Running, Service
from bambupi.state_hub import StateHub
from bambupi.web.frontdoor import FrontDoor
from tests.misbehaving_server import Misbehaving
from tests.notify_services import DISCORD_PATH, FakeServices
from tests.support import printer_config, wait_for

HANG = 60  # a hang bound only: every wait below ends on a state long before it on a loaded machine


@pytest.fixture
async def nursery() -> AsyncIterator[trio.Nursery]:
    async with trio.open_nursery() as nursery:
        yield nursery
        nursery.cancel_scope.cancel()


# --- item 6: a total deadline on every outgoing request ------------------------------------------------------------


@pytest.mark.parametrize("mode", ["drip_head", "drip_body"])
async def test_a_plug_dripping_its_answer_is_given_up_at_the_deadline(nursery: trio.Nursery, mode: str) -> None:
    server = await nursery.start(Misbehaving(mode, every_s=0.1).run)
    # Each byte comes well within httpx's per-read timeout (the same 1 s): only a deadline on the whole request
    # ends this. Without one, the read goes on for as long as the server likes (here: forever).
    plug = make_plug(PlugConfig(kind="shelly2", address=server.url, timeout_s=1.0))
    with trio.fail_after(HANG), pytest.raises(PlugError, match=r"no answer within 1 s"):
        await plug.read()
    await plug.aclose()


async def test_sampling_goes_on_past_a_dripping_plug(nursery: trio.Nursery, tmp_path: Path) -> None:
    server = await nursery.start(Misbehaving("drip_body", every_s=0.1).run)
    printer = PrinterConfig(id="p", name="p", model="P1S", host="127.0.0.1", serial="01P00A000000001",
                            access_code=Secret("12345678"), mqtt_port=1, reconnect_max_s=5,
                            plug=PlugConfig(kind="shelly2", address=server.url, timeout_s=1.0))
    config = Config(printers=(printer,), web=WebConfig(host="127.0.0.1", port=0),
                    power=PowerConfig(sample_interval_s=0.05, flush_interval_s=0.5))
    running: Running = await nursery.start(Service(config, storage_folder=tmp_path).run)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.port}", timeout=HANG) as client:

        async def power() -> dict[str, object]:
            printers: dict[str, dict[str, object]] = (await client.get("/api/power")).json()["printers"]
            return printers["p"]

        with trio.fail_after(HANG):
            while "no answer within 1 s" not in str((await power())["error"]):
                await trio.sleep(0.05)
        server.mode = "ok"  # the plug behaves again: the next sample reads it
        with trio.fail_after(HANG):
            while (await power())["reading"] != {"on": True, "watts": 42.5, "total_kwh": 1.0}:
                await trio.sleep(0.05)
        assert (await power())["error"] is None
        assert (await client.get("/healthz")).status_code == 200


async def test_a_notification_service_dripping_its_answer_times_out_and_is_retried(nursery: trio.Nursery) -> None:
    server = await nursery.start(Misbehaving("drip_body", every_s=0.1).run)
    hub = StateHub([printer_config()])
    channel = NotifyConfig(name="hook", kind="webhook", url=server.url + "/hook")
    notifier = await nursery.start(Notifier(hub, (channel,), retry_delays=(0.01,), timeout_s=1.0).run)
    with trio.fail_after(HANG):
        delivery = await notifier.channels["hook"].deliver(sample_message(), None)
    assert (delivery.status, delivery.attempts, delivery.detail) == ("failed", 2, "timeout")
    assert server.requests == 2


# --- item 7: a bounded answer --------------------------------------------------------------------------------------


async def test_a_huge_notification_answer_is_not_read(nursery: trio.Nursery) -> None:
    server = await nursery.start(Misbehaving("huge").run)
    hub = StateHub([printer_config()])
    channel = NotifyConfig(name="hook", kind="webhook", url=server.url + "/hook")
    notifier = await nursery.start(Notifier(hub, (channel,), retry_delays=(), timeout_s=HANG).run)
    with trio.fail_after(HANG):
        delivery = await notifier.channels["hook"].deliver(sample_message(), None)
    assert delivery.status == "sent" and delivery.detail == "HTTP 200"
    await wait_for(lambda: server.done == 1, HANG, what="the server noticed the box hang up")
    # The box read a few KiB and hung up; what the server got out is what the socket buffers took, not 64 MiB.
    assert server.sent < 16 * 1024 * 1024


# --- item 16: no echoed key in an error --------------------------------------------------------------------------


async def test_an_error_answer_echoing_the_request_quotes_no_key(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeServices()
    fake.echo_status = 401  # a proxy's error page that repeats the request line, and the key in it
    port = await nursery.start(FrontDoor(fake.app, WebConfig(host="127.0.0.1", port=0)).run)
    base = f"http://127.0.0.1:{port}"
    hub = StateHub([printer_config()])
    discord = NotifyConfig(name="discord", kind="discord", url=base + DISCORD_PATH)
    notifier = await nursery.start(Notifier(hub, (discord,), retry_delays=(), timeout_s=HANG).run)
    delivery = await notifier.channels["discord"].deliver(sample_message(), None)
    assert fake.of("discord"), "the service was asked"
    assert delivery.status == "failed" and delivery.detail == "HTTP 401 Unauthorized"
    # The box's log: the fake service's own access log (its front door) is not the box's.
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.getMessage().startswith("127.0.0.1 "))
    shown = json.dumps(notifier.deliveries()) + logged
    assert "discord-webhook-secret" not in shown and "webhooks/42" not in shown


def test_a_plug_address_with_a_password_in_it_is_refused_without_quoting_it() -> None:
    text = """
[[printer]]
id = "p"
model = "P1S"
host = "192.168.1.50"
serial = "01P00A000000001"
access_code = "12345678"

[printer.plug]
kind = "shelly1"
address = "http://admin:hunter2-pw@192.168.1.60"
"""
    config, problems = parse_config(text)
    assert config is None
    (problem,) = problems
    assert problem.key == "printer[0].plug.address" and problem.line == 11
    assert "user name or password" in problem.message
    assert "hunter2" not in str(problem) and "admin:" not in str(problem)
    for address in ("admin@192.168.1.60", "http://:pw-only@192.168.1.60:8080"):
        _, problems = parse_config(text.replace("http://admin:hunter2-pw@192.168.1.60", address))
        assert [p.message for p in problems] == [problem.message], address


# --- item 5: no web thread waits for an outgoing call ----------------------------------------------------------


async def test_test_notifications_to_a_hanging_service_leave_the_page_answering(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    hanging = await nursery.start(Misbehaving("hang").run)
    config = Config(web=WebConfig(host="127.0.0.1", port=0),
                    notify=(NotifyConfig(name="hook", kind="webhook", url=hanging.url + "/hook"),))
    running: Running = await nursery.start(Service(config, storage_folder=tmp_path).run)
    base = f"http://127.0.0.1:{running.port}"
    async with httpx.AsyncClient(base_url=base, timeout=HANG) as client:
        csrf = (await client.post("/api/setup", json={"password": "correct horse battery"})).json()["csrf"]
        answers: list[httpx.Response] = []

        async def click() -> None:
            answers.append(await client.post("/api/notify/hook/test", headers={"X-CSRF-Token": csrf}))

        # More clicks than the front door has web threads (8), all at once.
        with trio.fail_after(HANG):
            async with trio.open_nursery() as clicks:
                for _ in range(12):
                    clicks.start_soon(click)
        assert [a.status_code for a in answers] == [202] * 12
        assert all(a.json()["status"] == "queued" and a.json()["channel"] == "hook" for a in answers)
        await wait_for(lambda: hanging.holding == 1, HANG, what="the test message is on its way, and held there")
        # While the service holds it: the pages and the health check answer.
        with trio.fail_after(HANG):
            for path in ("/", "/login", "/healthz", "/api/printers"):
                assert (await client.get(path)).status_code == 200, path
            log = (await client.get("/api/notify")).json()["log"]
        assert log == [], "nothing delivered yet: the outcome comes when the service answers"
        assert hanging.requests == 1, "twelve clicks, one test on its way"
        hanging.release.set()

        def outcome() -> list[dict[str, object]]:
            return [d for d in running.notifier.deliveries() if d["kind"] == "test"]

        await wait_for(outcome, HANG, what="delivered")
        assert [(d["status"], d["channel"]) for d in outcome()] == [("sent", "hook")]
        # A click after the first one is done sends a new test.
        again = await client.post("/api/notify/hook/test", headers={"X-CSRF-Token": csrf})
        assert again.status_code == 202
        await wait_for(lambda: len(outcome()) == 2, HANG, what="the second test delivered")
        assert (await client.post("/api/notify/nope/test", headers={"X-CSRF-Token": csrf})).status_code == 404


async def test_plug_switches_to_a_hanging_plug_leave_the_page_answering(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    plug = await nursery.start(Misbehaving("ok").run)
    printer = PrinterConfig(id="p", name="p", model="P1S", host="127.0.0.1", serial="01P00A000000001",
                            access_code=Secret("12345678"), mqtt_port=1, reconnect_max_s=5,
                            plug=PlugConfig(kind="shelly2", address=plug.url, timeout_s=HANG * 2))
    config = Config(printers=(printer,), web=WebConfig(host="127.0.0.1", port=0),
                    power=PowerConfig(sample_interval_s=3600, flush_interval_s=3600))
    running: Running = await nursery.start(Service(config, storage_folder=tmp_path).run)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.port}", timeout=HANG * 3) as client:
        csrf = (await client.post("/api/setup", json={"password": "correct horse battery"})).json()["csrf"]
        await wait_for(lambda: plug.requests >= 1, HANG, what="the first sample")
        plug.mode = "hang"
        answers: list[httpx.Response] = []

        async def click() -> None:
            answers.append(await client.post("/api/printers/p/plug", json={"on": True},
                                             headers={"X-CSRF-Token": csrf}))

        async with trio.open_nursery() as clicks:
            for _ in range(12):
                clicks.start_soon(click)
            # One switch goes to the plug (and waits there); the other clicks are told at once that one is under way.
            await wait_for(
                lambda: len(answers) == 11 and plug.holding == 1, HANG, what="eleven refused, one at the plug"
            )
            assert {a.status_code for a in answers} == {409}
            assert "already" in answers[0].json()["error"]
            with trio.fail_after(HANG):
                for path in ("/", "/healthz", "/api/power"):
                    assert (await client.get(path)).status_code == 200, path
            plug.release.set()
        assert answers[-1].status_code == 200 and answers[-1].json()["reading"]["on"] is True



async def test_trust_clicks_for_a_printer_that_never_finishes_tls_leave_the_page_answering(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # Accepts the connection and never answers the TLS hello (no HTTP head ever comes): the certificate probe waits.
    silent = await nursery.start(Misbehaving("hang").run)
    printer = PrinterConfig(id="p", name="p", model="P1S", host="127.0.0.1", serial="01P00A000000001",
                            access_code=Secret("12345678"), mqtt_port=silent.port, reconnect_max_s=5,
                            connect_timeout_s=HANG * 2)
    config = Config(printers=(printer,), web=WebConfig(host="127.0.0.1", port=0))
    running: Running = await nursery.start(Service(config, storage_folder=tmp_path).run)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.port}", timeout=HANG * 3) as client:
        csrf = (await client.post("/api/setup", json={"password": "correct horse battery"})).json()["csrf"]
        await wait_for(lambda: silent.connections >= 1, HANG, what="the link's own connection")
        links = silent.connections
        answers: list[httpx.Response] = []

        async def click() -> None:
            answers.append(await client.post("/api/printers/p/trust", headers={"X-CSRF-Token": csrf}))

        async with trio.open_nursery() as clicks:
            for _ in range(12):
                clicks.start_soon(click)
            await wait_for(
                lambda: len(answers) == 11 and silent.connections >= links + 1, HANG, what="one probe, eleven refused"
            )
            assert {a.status_code for a in answers} == {409}
            assert "already" in answers[0].json()["error"]
            with trio.fail_after(HANG):
                for path in ("/", "/healthz", "/api/printers"):
                    assert (await client.get(path)).status_code == 200, path
            clicks.cancel_scope.cancel()  # the probe would wait out its own limit (connect_timeout_s)
