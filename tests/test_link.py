"""The printer link against a real mosquitto broker with TLS and a password file (real clock)."""

from __future__ import annotations

import json
import logging
import ssl
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import trio

from bambupi.config import PrinterConfig
from bambupi.printer.link import REASON_AUTH, PrinterLink
from bambupi.printer.tls_pins import PinStore, fingerprint
from bambupi.secret import Secret
from bambupi.state_hub import StateHub
from tests.mosquitto import Mosquitto
from tests.support import wait_for

SERIAL = "01P00A000000001"
CODE = "31415926"
REPORT = f"device/{SERIAL}/report"
REQUEST = f"device/{SERIAL}/request"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    folder = tmp_path / "broker"
    folder.mkdir()
    b = Mosquitto(folder, {"bblp": CODE})
    b.start()
    yield b
    b.stop()


class Printer:
    """Stands in for the printer's side of the broker: publishes reports, records requests (own thread).

    Like a printer it answers ``pushall`` with a full report, unless ``silent`` (a hung printer whose MQTT
    server still accepts logins).
    """

    def __init__(self, port: int) -> None:
        self.requests: list[dict[str, object]] = []
        self.silent = False
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fake-printer")
        self.client.username_pw_set("bblp", CODE)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.client.tls_set_context(ctx)
        subscribed = threading.Event()
        self.client.on_connect = lambda c, *_: c.subscribe(REQUEST, qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(5)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        request = json.loads(message.payload)
        with self._lock:
            self.requests.append(request)
        if request.get("pushing", {}).get("command") == "pushall" and not self.silent:
            full = {"print": {"command": "push_status", "msg": 0, "gcode_state": "IDLE", "wifi_signal": "-40dBm"}}
            client.publish(REPORT, json.dumps(full), qos=1)

    def pushalls(self) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.get("pushing", {}).get("command") == "pushall")  # type: ignore[attr-defined]

    def report(self, body: dict[str, object]) -> None:
        payload = json.dumps({"print": {"command": "push_status", **body}})
        self.client.publish(REPORT, payload, qos=1).wait_for_publish(5)

    async def keep_reporting(self, every_s: float = 0.2) -> None:
        """Small reports at a steady pace, as a printer sends about one a second."""
        payload = json.dumps({"print": {"command": "push_status", "msg": 1, "wifi_signal": "-41dBm"}})
        while True:
            if not self.silent:
                self.client.publish(REPORT, payload, qos=0)
            await trio.sleep(every_s)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def printer(broker: Mosquitto) -> Iterator[Printer]:
    p = Printer(broker.port)
    yield p
    p.close()


def make_config(port: int, code: str = CODE, **kw: float) -> PrinterConfig:
    settings = {"stale_after_s": 30.0, "offline_after_s": 600.0, "reconnect_max_s": 0.5, "connect_timeout_s": 3.0,
                **kw}
    return PrinterConfig(
        id="p1", name="P1", model="P1S", host="127.0.0.1", serial=SERIAL,
        access_code=Secret(code), mqtt_port=port, **settings,  # type: ignore[arg-type]
    )


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    async with trio.open_nursery() as nursery:

        async def start(config: PrinterConfig) -> tuple[StateHub, PrinterLink]:
            hub = StateHub([config])
            link = await nursery.start(PrinterLink(config, hub, PinStore(tmp_path / "tls-pins.json")).run)
            return hub, link

        yield start
        nursery.cancel_scope.cancel()


def conn(hub: StateHub) -> str:
    return str(hub.printer("p1")["connection"])


async def test_connects_pins_pushes_all_and_merges_deltas(
    broker: Mosquitto, printer: Printer, running: Callable[..., object], tmp_path: Path
) -> None:
    hub, _ = await running(make_config(broker.port))  # type: ignore[misc]
    await wait_for(lambda: conn(hub) == "online")
    await wait_for(lambda: printer.pushalls() == 1)
    pushall = printer.requests[0]["pushing"]
    assert pushall["sequence_id"] == "1" and pushall["push_target"] == 1  # type: ignore[index]

    pem = (broker.folder / "cert.pem").read_text()
    assert PinStore(tmp_path / "tls-pins.json").get("p1") == fingerprint(ssl.PEM_cert_to_DER_cert(pem))

    printer.report({"msg": 0, "gcode_state": "RUNNING", "mc_percent": 10, "nozzle_temper": 220.5, "layer_num": 3})
    await wait_for(lambda: hub.printer("p1")["state"]["percent"] == 10)
    printer.report({"msg": 1, "mc_percent": 11})
    await wait_for(lambda: hub.printer("p1")["state"]["percent"] == 11)
    state = hub.printer("p1")["state"]
    assert (state["gcode_state"], state["nozzle_temp"], state["layer"]) == ("RUNNING", 220.5, 3)
    assert hub.printer("p1")["last_report_at"] is not None

    captured = [m.to_json() for m in hub.capture("p1").messages()]
    assert [m["direction"] for m in captured][:1] == ["out"]
    assert any(m["direction"] == "in" and '"mc_percent":11' in m["payload"].replace(" ", "") for m in captured)


async def test_wrong_access_code_is_reported_as_auth(
    broker: Mosquitto, running: Callable[..., object], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "99999999"
    hub, link = await running(make_config(broker.port, code=wrong))  # type: ignore[misc]
    await wait_for(lambda: hub.printer("p1")["connection_reason"] == REASON_AUTH)
    assert conn(hub) == "offline"
    assert link.connects == 0
    assert wrong not in caplog.text
    assert wrong not in json.dumps(hub.snapshot())


async def test_connection_refused_and_timeout_reasons(running: Callable[..., object]) -> None:
    from tests.mosquitto import free_port

    hub, _ = await running(make_config(free_port()))  # type: ignore[misc]
    await wait_for(lambda: str(hub.printer("p1")["connection_reason"]).startswith("connection refused"))
    assert conn(hub) == "offline"


async def test_a_stopped_printer_is_stale_then_offline_and_online_again_once_it_reports(
    broker: Mosquitto, printer: Printer, running: Callable[..., object]
) -> None:
    config = make_config(broker.port, stale_after_s=1.0, offline_after_s=3.0, reconnect_max_s=1.0)
    hub, _ = await running(config)  # type: ignore[misc]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(printer.keep_reporting)
        await wait_for(lambda: conn(hub) == "online")
        events = hub.open_event_queue("test")
        nursery.cancel_scope.cancel()
    printer.close()
    broker.stop()
    await wait_for(lambda: conn(hub) != "online")
    last_report = hub.printer("p1")["last_report_at"]
    await wait_for(lambda: conn(hub) == "offline")
    await wait_for(lambda: str(hub.printer("p1")["connection_reason"]).startswith("connection refused"))
    assert hub.printer("p1")["last_report_at"] == last_report

    broker.start()
    again = Printer(broker.port)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(again.keep_reporting)
            await wait_for(lambda: conn(hub) == "online")
            nursery.cancel_scope.cancel()
    finally:
        again.close()
    assert hub.printer("p1")["connection_reason"] is None
    found = []
    while (event := events.get_nowait()) is not None:
        found.append((event["kind"], event["connection"]))
    # Data stopped moments before: reconnecting ("stale"), not offline at once; one loss, one return.
    assert found == [("connection_lost", "stale"), ("connection_restored", "online")]


async def test_a_login_without_reports_is_not_online(
    broker: Mosquitto, printer: Printer, running: Callable[..., object]
) -> None:
    hub, link = await running(make_config(broker.port, stale_after_s=1.0, offline_after_s=600.0))  # type: ignore[misc]
    await wait_for(lambda: conn(hub) == "online")
    events = hub.open_event_queue("test")
    printer.silent = True  # the MQTT server still accepts logins and pings; the printer sends nothing
    await wait_for(lambda: conn(hub) == "stale")
    logins = link.connects
    for n in range(1, 4):
        await wait_for(lambda n=n: link.connects >= logins + n)  # logged in again, pushall sent, no answer
        assert conn(hub) == "stale"
    await wait_for(lambda: printer.pushalls() >= 4)
    assert conn(hub) == "stale"
    assert [e["kind"] for e in [events.get_nowait()]] == ["connection_lost"]
    assert events.get_nowait() is None  # no "restored" from a login: nothing flapped
    printer.silent = False
    await wait_for(lambda: conn(hub) == "online")
    assert [e["kind"] for e in [events.get_nowait()]] == ["connection_restored"]


async def test_changed_certificate_is_refused_until_trusted(
    broker: Mosquitto, printer: Printer, running: Callable[..., object], tmp_path: Path
) -> None:
    hub, link = await running(make_config(broker.port))  # type: ignore[misc]
    await wait_for(lambda: conn(hub) == "online")
    old_pin = PinStore(tmp_path / "tls-pins.json").get("p1")
    printer.close()
    broker.stop()
    broker.new_certificate()
    broker.start()
    await wait_for(lambda: str(hub.printer("p1")["connection_reason"]).startswith("certificate changed"))
    assert conn(hub) == "offline"  # retrying cannot mend it: offline at once, not after offline_after_s
    tried = link.attempts
    await wait_for(lambda: link.attempts >= tried + 2)
    assert conn(hub) == "offline" and link.connects == 1  # never logged in with the new certificate
    printer = Printer(broker.port)  # the printer is back (with its new certificate) and answers pushall

    # `bambupi trust` is what a user runs: same storage folder, a config naming this printer.
    config = tmp_path / "bambupi.toml"
    config.write_text(
        f'[[printer]]\nid = "p1"\nmodel = "P1S"\nhost = "127.0.0.1"\nserial = "{SERIAL}"\n'
        f'access_code = "{CODE}"\nmqtt_port = {broker.port}\n\n[storage]\npath = "{tmp_path}/bambupi.sqlite3"\n'
    )
    result = await trio.to_thread.run_sync(
        lambda: subprocess.run(
            [sys.executable, "-m", "bambupi", "trust", "-c", str(config), "p1"], capture_output=True, text=True
        )
    )
    assert result.returncode == 0, result.stderr
    new_pin = PinStore(tmp_path / "tls-pins.json").get("p1")
    assert new_pin is not None and new_pin != old_pin and new_pin in result.stdout
    assert CODE not in result.stdout + result.stderr
    try:
        await wait_for(lambda: conn(hub) == "online")
    finally:
        printer.close()
    assert link.connects == 2
