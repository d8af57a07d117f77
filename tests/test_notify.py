"""Notifications against real local HTTP servers shaped like ntfy, Pushover, Telegram, Discord and a webhook."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
from PIL import Image

from bambupi.config import Config, NotifyConfig, PrinterConfig, WebConfig
from bambupi.notify.channels import SIGNATURE_HEADER, sign
from bambupi.notify.messages import Message, sample_message
from bambupi.notify.notifier import Delivery, Notifier
from bambupi.secret import Secret
from bambupi.service import Running, Service
from bambupi.sim.simulator import Simulator
from bambupi.state_hub import StateHub
from bambupi.web.frontdoor import FrontDoor
from tests.misbehaving_server import Misbehaving
from tests.notify_services import (
    DISCORD_PATH,
    NTFY_TOKEN,
    PUSHOVER_TOKEN,
    PUSHOVER_USER,
    TELEGRAM_TOKEN,
    WEBHOOK_SECRET,
    FakeServices,
)
from tests.support import printer_config, report, wait_for

SECRETS = (NTFY_TOKEN, PUSHOVER_TOKEN, PUSHOVER_USER, TELEGRAM_TOKEN, WEBHOOK_SECRET, "discord-webhook-secret")


@pytest.fixture
async def services() -> AsyncIterator[tuple[FakeServices, str]]:
    fake = FakeServices()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(FrontDoor(fake.app, WebConfig(host="127.0.0.1", port=0)).run)
        yield fake, f"http://127.0.0.1:{port}"
        nursery.cancel_scope.cancel()


def channels(base: str, **common: object) -> tuple[NotifyConfig, ...]:
    return (
        NotifyConfig(name="ntfy", kind="ntfy", url=base, topic="bambupi", token=Secret(NTFY_TOKEN), **common),  # type: ignore[arg-type]
        NotifyConfig(name="pushover", kind="pushover", api_url=base, token=Secret(PUSHOVER_TOKEN),
                     user_key=Secret(PUSHOVER_USER), sound="siren", **common),  # type: ignore[arg-type]
        NotifyConfig(name="telegram", kind="telegram", api_url=base, token=Secret(TELEGRAM_TOKEN), chat_id="777",
                     **common),  # type: ignore[arg-type]
        NotifyConfig(name="discord", kind="discord", url=base + DISCORD_PATH, **common),  # type: ignore[arg-type]
        NotifyConfig(name="webhook", kind="webhook", url=base + "/hook", secret=Secret(WEBHOOK_SECRET), **common),  # type: ignore[arg-type]
    )


async def send_test(notifier: Notifier, name: str) -> Delivery:
    """A test message on channel ``name``, delivered now (the page's button queues the same message)."""
    return await notifier.channels[name].deliver(sample_message(), None)


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 36), (200, 80, 20)).save(out, "JPEG")
    return out.getvalue()


async def start_notifier(
    nursery: trio.Nursery, hub: StateHub, configs: tuple[NotifyConfig, ...], **kw: object
) -> Notifier:
    settings: dict[str, object] = {"retry_delays": (0.05, 0.05, 0.05), "timeout_s": 2.0, **kw}
    notifier: Notifier = await nursery.start(Notifier(hub, configs, **settings).run)  # type: ignore[arg-type]
    return notifier


async def test_each_service_gets_its_exact_request_shape(
    services: tuple[FakeServices, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake, base = services
    image = jpeg()
    hub = StateHub([printer_config()])

    async def snapshot(printer: str) -> bytes | None:
        return image

    async with trio.open_nursery() as nursery:
        notifier = await start_notifier(nursery, hub, channels(base), snapshot=snapshot)
        for name in notifier.channels:
            delivery = await send_test(notifier, name)
            assert delivery.status == "sent", (name, delivery)
        message = Message("hms_raised", "p", "Garage: Nozzle clog", "fatal error 0300_…", "urgent", ("warning",),
                          url="https://wiki.bambulab.com/en/x")
        for channel in notifier.channels.values():
            assert (await channel.deliver(message, "p")).status == "sent"
        nursery.cancel_scope.cancel()

    ntfy_json, ntfy_put = fake.of("ntfy")
    assert ntfy_json.method == "POST" and ntfy_json.headers["Authorization"] == f"Bearer {NTFY_TOKEN}"
    assert ntfy_json.json["topic"] == "bambupi" and ntfy_json.json["title"] == "bambupi test notification"
    assert ntfy_put.method == "PUT" and ntfy_put.path == "/bambupi" and ntfy_put.body == image
    assert ntfy_put.headers["X-Priority"] == "5" and ntfy_put.headers["X-Click"] == "https://wiki.bambulab.com/en/x"
    assert ntfy_put.headers["X-Message"].startswith("=?UTF-8?B?")  # "…" is not Latin-1

    plain, photo = fake.of("pushover")
    assert plain.form["token"] == PUSHOVER_TOKEN and plain.form["user"] == PUSHOVER_USER
    assert plain.form["sound"] == "siren" and plain.form["priority"] == "0"
    assert photo.files["attachment"] == image and photo.form["priority"] == "1"

    text, picture = fake.of("telegram")
    assert text.path == f"/bot{TELEGRAM_TOKEN}/sendMessage" and text.json["chat_id"] == "777"
    assert picture.path.endswith("/sendPhoto") and picture.files["photo"] == image
    assert "https://wiki.bambulab.com/en/x" in picture.form["caption"]

    hook_text, hook_file = fake.of("discord")
    assert hook_text.json == {"content": "bambupi test notification\nIf you can read this, this channel works."}
    assert hook_file.files["files[0]"] == image and json.loads(hook_file.form["payload_json"])["content"]

    first, second = fake.of("webhook")
    assert first.headers[SIGNATURE_HEADER] == sign(WEBHOOK_SECRET, first.body)
    assert json.loads(second.body)["event"] == "hms_raised" and json.loads(second.body)["priority"] == "urgent"
    # The fake services' own access log (bambupi.web, in this process) shows their paths; everything else must not.
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name != "bambupi.web")
    assert not any(s in ours for s in SECRETS)


async def test_retries_5xx_not_4xx_and_gives_up_on_timeouts(services: tuple[FakeServices, str]) -> None:
    fake, base = services
    hub = StateHub([printer_config()])
    async with trio.open_nursery() as nursery:
        # A timeout a loaded machine's local answers stay well inside, and a delay well beyond it.
        notifier = await start_notifier(nursery, hub, channels(base), timeout_s=1.0)
        fake.fail_next["ntfy"] = [500, 503]
        delivery = await send_test(notifier, "ntfy")
        assert (delivery.status, delivery.attempts) == ("sent", 3)
        fake.fail_next["webhook"] = [400]
        delivery = await send_test(notifier, "webhook")
        assert (delivery.status, delivery.attempts) == ("failed", 1) and "HTTP 400" in delivery.detail
        fake.delay_s = 2.5
        delivery = await send_test(notifier, "telegram")
        assert (delivery.status, delivery.attempts, delivery.detail) == ("failed", 4, "timeout")
        fake.delay_s = 0
        nursery.cancel_scope.cancel()
    log_text = json.dumps(notifier.deliveries())
    assert not any(s in log_text for s in SECRETS)


async def test_unreachable_service_error_names_no_token(caplog: pytest.LogCaptureFixture) -> None:
    hub = StateHub([printer_config()])
    broken = NotifyConfig(name="tg", kind="telegram", api_url="http://127.0.0.1:1", token=Secret(TELEGRAM_TOKEN),
                          chat_id="1")
    async with trio.open_nursery() as nursery:
        notifier = await start_notifier(nursery, hub, (broken,))
        delivery = await send_test(notifier, "tg")
        nursery.cancel_scope.cancel()
    assert delivery.status == "failed" and delivery.detail
    assert TELEGRAM_TOKEN not in delivery.detail and TELEGRAM_TOKEN not in caplog.text


async def test_a_channel_whose_token_cannot_be_sent_fails_alone_and_the_box_keeps_running(
    services: tuple[FakeServices, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, base = services
    hub = StateHub([printer_config()])
    (webhook,) = [c for c in channels(base) if c.name == "webhook"]
    # Tokens the config file now refuses, as an older file or code may still hand them over: one with a character
    # httpx cannot put in a header (it raises UnicodeEncodeError, not an httpx error), one with a line break (h11
    # refuses it, quoting the header with the line break escaped).
    odd = NotifyConfig(name="odd", kind="ntfy", url=base, topic="t", token=Secret("tk_pasted\u200b_secret"))
    broken = NotifyConfig(name="broken", kind="ntfy", url=base, topic="t", token=Secret("tk_two\nlines_secret"))
    async with trio.open_nursery() as nursery:
        notifier = await start_notifier(nursery, hub, (odd, broken, webhook))
        hub.set_connection("p", "online")
        hub.apply_message("p", report(gcode_state="IDLE", hms=[]))
        hub.apply_message("p", report(gcode_state="RUNNING", subtask_name="cube"))
        hub.apply_message("p", report(gcode_state="FINISH"))
        await wait_for(lambda: len(notifier.deliveries()) == 3)
        by_channel = {d["channel"]: d for d in notifier.deliveries()}
        assert by_channel["webhook"]["status"] == "sent"
        assert by_channel["odd"]["status"] == "failed" and "UnicodeEncodeError" in by_channel["odd"]["detail"]
        assert by_channel["broken"]["status"] == "failed"
        # Still delivering afterwards: the failure cost one message, not the notifier (nor the box).
        assert (await send_test(notifier, "webhook")).status == "sent"
        assert (await send_test(notifier, "odd")).status == "failed"
        nursery.cancel_scope.cancel()
    everything = json.dumps(notifier.deliveries()) + caplog.text
    assert "_secret" not in everything and "tk_two" not in everything and "tk_pasted" not in everything
    assert not fake.of("ntfy")


async def test_offline_grace_dedup_and_quiet_hours(autojump_clock: trio.testing.MockClock) -> None:
    """On trio's fake clock, against a receiver that runs no thread: the grace period is timed exactly."""
    hub = StateHub([printer_config()])
    quiet = [False]

    def sent() -> list[str]:
        return [json.loads(body)["event"] for body in receiver.bodies]

    def told_offline() -> int:
        return sum(d["kind"] == "printer_offline" for d in notifier.deliveries())

    async with trio.open_nursery() as nursery:
        receiver = await nursery.start(Misbehaving("ok").run)
        webhook = NotifyConfig(name="webhook", kind="webhook", url=receiver.url + "/hook", offline_grace_s=1.0,
                               dedup_window_s=60)
        notifier = await start_notifier(nursery, hub, (webhook,), quiet=lambda: quiet[0], quiet_poll_s=0.1,
                                        clock=trio.current_time)
        hub.set_connection("p", "online")
        hub.apply_message("p", report(gcode_state="IDLE", hms=[]))
        hub.set_connection("p", "offline", "connection refused")
        await trio.sleep(0.1)  # a blip (its grace timer has started)
        hub.set_connection("p", "online")  # back within the grace period (1 s): nobody is bothered
        hub.set_connection("p", "offline", "connection refused")
        lost_at = trio.current_time()
        # The service has it, and the notifier has logged its answer (the log entry comes after the reply).
        await wait_for(lambda: sent() == ["printer_offline"] and told_offline() == 1)
        (told,) = [d for d in notifier.deliveries() if d["kind"] == "printer_offline"]
        assert told["at"] >= lost_at + 1.0  # this loss's, after its grace; the blip's would be 0.1 s earlier
        hub.set_connection("p", "online")
        await wait_for(lambda: sent() == ["printer_offline", "printer_online"])

        for _ in range(2):  # the same finish twice: sent once
            hub.apply_message("p", report(gcode_state="RUNNING", subtask_name="cube"))
            hub.apply_message("p", report(gcode_state="FINISH"))
        await wait_for(lambda: sent().count("job_finished") == 1)

        quiet[0] = True
        hub.apply_message("p", report(gcode_state="RUNNING", subtask_name="gear"))
        hub.apply_message("p", report(gcode_state="PAUSE"))  # not urgent: held
        hub.apply_message("p", report(hms=[{"attr": 0x03000200, "code": 0x00010001}]))  # fatal: sent now
        await wait_for(lambda: "hms_raised" in sent())
        await wait_for(lambda: any(d["status"] == "held" for d in notifier.deliveries()))
        assert "job_paused" not in sent()
        quiet[0] = False
        await wait_for(lambda: "job_paused" in sent())
        nursery.cancel_scope.cancel()
    assert sent().count("job_finished") == 1


async def test_end_to_end_with_the_simulator(services: tuple[FakeServices, str], tmp_path: Path) -> None:
    fake, base = services
    serial, code = "01P00A000000555", "90807060"
    async with trio.open_nursery() as nursery:
        sim = Simulator("P1S", serial, code, scenario="idle", time_scale=600, camera_port=0)
        await nursery.start(sim.run)
        sim.printer.set_hms([(0x07000200, 0x00020004)])  # active before bambupi connects: standing
        printer = PrinterConfig(id="p", name="Garage", model="P1S", host="127.0.0.1", serial=serial,
                                access_code=Secret(code), mqtt_port=sim.mqtt_port, camera_port=sim.camera_port)
        config = Config(printers=(printer,), web=WebConfig(host="127.0.0.1", port=0), notify=channels(base))
        running: Running = await nursery.start(Service(config, storage_folder=tmp_path).run)
        await wait_for(lambda: running.hub.printer("p")["state"]["gcode_state"] == "IDLE")
        assert running.hub.printer("p")["state"]["hms"][0]["standing"] is True

        sim.printer.start_print("benchy", layers=5, minutes=2)
        await wait_for(lambda: len(fake.of("webhook")) >= 1, timeout=20)
        for service in ("ntfy", "pushover", "telegram", "discord", "webhook"):
            await wait_for(lambda s=service: len(fake.of(s)) == 1)  # type: ignore[misc]
        assert json.loads(fake.of("webhook")[0].body)["event"] == "job_finished"
        finished = fake.of("ntfy")[0]  # with the camera's snapshot: a PUT of the JPEG, the text in headers
        assert finished.method == "PUT" and "benchy" in finished.headers["X-Title"]
        assert Image.open(io.BytesIO(finished.body)).size == (1280, 720)
        assert fake.of("telegram")[0].path.endswith("/sendPhoto")

        sim.printer.set_hms([(0x07000200, 0x00020004), (0x03000200, 0x00010001)])  # a new fatal error
        await wait_for(lambda: len(fake.of("webhook")) == 2)
        fatal = json.loads(fake.of("webhook")[1].body)
        assert fatal["event"] == "hms_raised" and fatal["url"].startswith("https://wiki.bambulab.com/")
        assert fatal["priority"] == "urgent"
        nursery.cancel_scope.cancel()
    everything = b"".join(r.body for r in fake.requests)
    assert code.encode() not in everything



def test_finished_message_names_printer_job_duration_energy_and_cost() -> None:
    from bambupi.notify.messages import message_for

    event = {"kind": "job_finished", "printer": "p", "job": "benchy", "at": 1000.0 + 83 * 60,
             "energy_kwh": 0.4234, "cost": 0.1271, "currency": "EUR"}
    message = message_for(event, "Garage", started_at=1000.0)
    assert message is not None
    assert message.title == "Garage: benchy finished"
    assert message.body == "Took 1 h 23 min. 0.42 kWh, 0.13 EUR."
    without_plug = message_for({**event, "energy_kwh": None, "cost": None}, "Garage", started_at=1000.0)
    assert without_plug is not None and without_plug.body == "Took 1 h 23 min."


@pytest.mark.parametrize(
    "gcode_state,print_error,expected",
    [
        ("FAILED", "0300_400C", {"outcome": "cancelled", "text": "Cancelled"}),
        ("FAILED", "0500_400E", {"outcome": "cancelled", "text": "Cancelled"}),
        ("FAILED", "0300_4006", {"outcome": "failed", "text": "Failed: The nozzle is clogged."}),
        ("FAILED", "0C00_8009",
         {"outcome": "failed", "text": "Failed: Build plate localization marker was not found."}),
        ("FAILED", "7700_0001", {"outcome": "failed", "text": "Failed: Printer error 7700_0001"}),
        # No error and the end not seen happen: long settled, a cancel (a just-ended job waits: test_events.py)
        ("FAILED", None, {"outcome": "cancelled", "text": "Cancelled"}),
        ("RUNNING", "0300_8004", None),
        ("FINISH", None, None),
    ],
)
def test_one_wording_for_how_a_job_ended(gcode_state: str, print_error: str | None, expected: object) -> None:
    from bambupi.printer.hms import job_result

    assert job_result(gcode_state, print_error) == expected


def test_a_stop_is_announced_as_cancelled_and_an_error_with_its_text() -> None:
    from bambupi.notify.messages import message_for

    cancelled = message_for({"kind": "job_cancelled", "printer": "p", "job": "benchy",
                             "print_error": "0300_400C"}, "Garage")
    assert cancelled is not None
    assert cancelled.title == "Garage: benchy — Cancelled" and cancelled.priority == "default"
    assert "fail" not in cancelled.text().lower() and "0300_400C" not in cancelled.text()
    failed = message_for({"kind": "job_failed", "printer": "p", "job": "benchy", "print_error": "0C00_8009"},
                         "Garage")
    assert failed is not None and failed.priority == "high"
    assert failed.title == "Garage: benchy — Failed: Build plate localization marker was not found."
