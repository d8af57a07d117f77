"""The home broker's bridge against a real mosquitto (TLS, passwords) as the home broker, the real service and the
simulated printer (with its port-6000 camera), and paho-mqtt as Home Assistant's side: what a late subscriber finds
retained, the discovery configs checked against Home Assistant's documented schema (tests/ha_discovery_schema.py),
commands from the broker only while control is allowed, the broker going away and coming back, a wrong password,
and the last will when the box's connection dies."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
import trio
from paho.mqtt.enums import CallbackAPIVersion

from bambupi.bridge.messages import Printer, discovery_configs, state_document
from bambupi.config import load_config
from bambupi.service import Running, Service
from bambupi.sim.simulator import Simulator
from tests.ha_discovery_schema import discovery_topic, validate
from tests.mosquitto import Mosquitto, free_port
from tests.support import CODE, SERIAL, save_settings, setup_and_login, wait_for

BOX_USER, BOX_PASSWORD = "box", "broker pass 1"
HA_USER, HA_PASSWORD = "homeassistant", "ha pass 2"
PREFIX = "bambupi"
STATE = f"{PREFIX}/garage/state"
COMMAND = f"{PREFIX}/garage/command"
RESULT = f"{PREFIX}/garage/command/result"
BOX_CONFIG = """\
[web]
listen = "127.0.0.1:0"

[[printer]]
id = "garage"
name = "Garage P1S"
model = "P1S"
host = "127.0.0.1"
serial = "{serial}"
access_code = "{code}"
mqtt_port = {port}
camera_port = {camera_port}
reconnect_max_s = 0.5

[storage]
path = "{folder}/bambupi.sqlite3"

[bridge]
enabled = true
host = "127.0.0.1"
port = {broker_port}
tls = true
ca = "{ca}"
username = "{user}"
password = "{password}"
allow_control = {allow}
snapshot_interval_s = 1
reconnect_max_s = 0.5
"""


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    folder = tmp_path / "broker"
    folder.mkdir()
    b = Mosquitto(folder, {BOX_USER: BOX_PASSWORD, HA_USER: HA_PASSWORD})
    b.ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    b.start()
    yield b
    b.stop()


def ca_file(broker: Mosquitto) -> Path:
    return broker.folder / "ca.pem"


class Subscriber:
    """Home Assistant's side: paho-mqtt in its own network thread, subscribed to every topic, as a late joiner sees
    them (retained messages first)."""

    def __init__(self, broker: Mosquitto, topics: tuple[str, ...] = ("#",)) -> None:
        self.last: dict[str, bytes] = {}
        self.retained: set[str] = set()
        self.received: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"ha-{uuid.uuid4().hex[:8]}")
        self.client.username_pw_set(HA_USER, HA_PASSWORD)
        self.client.tls_set(ca_certs=str(ca_file(broker)))
        self.subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.last[message.topic] = bytes(message.payload)
            if message.retain:
                self.retained.add(message.topic)
            self.received.append((message.topic, bytes(message.payload)))

    def get(self, topic: str) -> bytes | None:
        with self._lock:
            return self.last.get(topic)

    def json(self, topic: str) -> Any:
        payload = self.get(topic)
        return json.loads(payload) if payload else None

    def configs(self) -> dict[str, dict[str, Any]]:
        """Every discovery config seen (an empty payload removes one, as in Home Assistant)."""
        with self._lock:
            found = {t: p for t, p in self.last.items() if t.startswith("homeassistant/")}
        return {t: json.loads(p) for t, p in found.items() if p}

    def publish(self, topic: str, payload: str) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@asynccontextmanager
async def subscriber(broker: Mosquitto, *topics: str) -> AsyncIterator[Subscriber]:
    sub = await trio.to_thread.run_sync(lambda: Subscriber(broker, topics or ("#",)))
    try:
        await wait_for(sub.subscribed.is_set, what="the broker's SUBACK")  # from here on it sees every message
        yield sub
    finally:
        await trio.to_thread.run_sync(sub.close)


@dataclass
class Box:
    sim: Simulator
    running: Running
    client: httpx.AsyncClient
    config_path: Path


def write_config(tmp_path: Path, sim: Simulator, broker: Mosquitto, *, allow: bool = False,
                 password: str = BOX_PASSWORD) -> Path:
    path = tmp_path / "bambupi.toml"
    path.write_text(BOX_CONFIG.format(
        serial=SERIAL, code=CODE, port=sim.mqtt_port, camera_port=sim.camera_port, folder=tmp_path,
        broker_port=broker.port, ca=ca_file(broker), user=BOX_USER, password=password, allow=str(allow).lower(),
    ))
    return path


@asynccontextmanager
async def box(tmp_path: Path, broker: Mosquitto, **options: Any) -> AsyncIterator[Box]:
    async with trio.open_nursery() as nursery:
        sim = Simulator("P1S", SERIAL, CODE, scenario="idle", camera_port=0, camera_fps=5.0, time_scale=50)
        await nursery.start(sim.run)
        path = write_config(tmp_path, sim, broker, **options)
        config, _ = load_config(path)
        running: Running = await nursery.start(Service(config, storage_folder=tmp_path).run)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.port}", timeout=60) as client:
            yield Box(sim, running, client, path)
        nursery.cancel_scope.cancel()


async def home_broker(client: httpx.AsyncClient) -> dict[str, Any]:
    entry: dict[str, Any] = (await client.get("/healthz")).json()["components"]["home_broker"]
    return entry


def expected_configs(b: Box) -> set[str]:
    """The discovery topics the box has configs for now (its printer's state and settings, as the bridge makes
    them): what Home Assistant must end up with."""
    bridge = b.running.bridge
    config = bridge._printers["garage"]
    printer = Printer(config.id, config.serial, config.name, config.model, config.camera != "off")
    document = state_document(b.running.hub.printer("garage"))
    raw = discovery_configs(printer, document, bridge.settings, box_url=b.running.url)
    return {topic for topic, payload in raw.items() if payload}


async def all_configs(ha: Subscriber, b: Box) -> dict[str, dict[str, Any]]:
    await wait_for(lambda: set(ha.configs()) == expected_configs(b), what="every discovery config")
    return ha.configs()


def template_keys(template: str) -> set[str]:
    return set(re.findall(r"value_json\.([a-z_]+)", template))


@pytest.mark.timeout(120)
async def test_a_late_subscriber_finds_retained_state_valid_discovery_and_pictures(
    tmp_path: Path, broker: Mosquitto
) -> None:
    async with box(tmp_path, broker) as b:
        b.sim.printer.start_print("Benchy", layers=120, minutes=600)
        await wait_for(lambda: b.running.hub.printer("garage")["state"]["gcode_state"] == "RUNNING",
                       what="the print under way on the box")

        async def connected() -> bool:
            return (await home_broker(b.client))["detail"] == f"connected to broker 127.0.0.1:{broker.port}"

        await wait_for(connected, what="/healthz: connected to the broker")
        # Home Assistant starts later: everything it needs is retained.
        async with subscriber(broker) as ha:
            await wait_for(lambda: (ha.json(STATE) or {}).get("gcode_state") == "RUNNING", what="retained state")
            await wait_for(lambda: (ha.get(f"{PREFIX}/garage/camera") or b"")[:2] == b"\xff\xd8",
                           what="a JPEG picture for the image entity")
            configs = await all_configs(ha, b)
            assert len(configs) >= 15
            assert ha.get(f"{PREFIX}/availability") == b"online"
            assert ha.get(f"{PREFIX}/garage/availability") == b"online"
            assert {STATE, f"{PREFIX}/availability", f"{PREFIX}/garage/camera"} <= ha.retained
            document = ha.json(STATE)
            assert document["job"] == "Benchy" and document["phase"] == "printing"
            assert document["hms_count"] == 0 and document["hms_worst"] == "none"
            assert document["connection"] == "online"

            retained_topics = set(ha.last)
            devices = set()
            for topic, config in configs.items():
                validate(topic, config)  # Home Assistant's documented schema
                devices.add(json.dumps(config["device"], sort_keys=True))
                assert discovery_topic(topic)["node_id"] == "bambupi_garage"
                for availability in config["availability"]:
                    assert availability["topic"] in retained_topics, availability
                for key in ("state_topic", "json_attributes_topic", "image_topic"):
                    if key in config and not config[key].endswith("/event"):  # events are never retained
                        assert config[key] in retained_topics, (topic, key)
                for key in ("value_template", "json_attributes_template"):
                    if config.get("state_topic") == STATE or config.get("json_attributes_topic") == STATE:
                        assert template_keys(config.get(key, "")) <= set(document), (topic, key)
            assert len(devices) == 1  # one device for the printer
            components = {discovery_topic(t)["component"] for t in configs}
            assert components == {"sensor", "binary_sensor", "image", "event"}  # no buttons: control is off
            remaining = configs["homeassistant/sensor/bambupi_garage/remaining/config"]
            assert (remaining["device_class"], remaining["unit_of_measurement"]) == ("duration", "min")
            assert configs["homeassistant/binary_sensor/bambupi_garage/connection/config"]["device_class"] == (
                "connectivity"
            )
            assert "homeassistant/sensor/bambupi_garage/chamber_temp/config" not in configs  # a P1S has no sensor
            assert "homeassistant/binary_sensor/bambupi_garage/door/config" not in configs  # nor a door sensor
            # The simulated P1S has an AMS: each tray is a sensor with its colour and what is left.
            trays = [t for t in configs if "/tray_" in t]
            assert trays and all(validate(t, configs[t]) for t in trays)

        # Events are not retained: a subscriber sees them as they happen, as Home Assistant's event entity does.
        async with subscriber(broker, f"{PREFIX}/garage/event") as ha:
            b.sim.printer.set_hms([(0x07002000, 0x00020001)])  # an AMS problem, serious
            await wait_for(lambda: any(json.loads(p)["event_type"] == "hms_raised" for _, p in ha.received),
                           what="hms_raised on the event topic")
            b.sim.printer.stop()
            await wait_for(lambda: any(json.loads(p)["event_type"] == "job_cancelled" for _, p in ha.received),
                           what="job_cancelled on the event topic")
            raised = next(json.loads(p) for _, p in ha.received if json.loads(p)["event_type"] == "hms_raised")
            assert raised["printer"] == "garage" and raised["severity"] == "serious"
        async with subscriber(broker, STATE) as ha:
            await wait_for(lambda: (ha.json(STATE) or {}).get("hms_worst") == "serious", what="the worst severity")
            assert ha.json(STATE)["hms_count"] == 1


def results(ha: Subscriber) -> list[dict[str, Any]]:
    return [json.loads(p) for t, p in list(ha.received) if t == RESULT]


@pytest.mark.timeout(120)
async def test_a_command_from_the_broker_pauses_the_print_only_when_the_owner_allowed_control(
    tmp_path: Path, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bambupi")
    async with box(tmp_path, broker) as b, subscriber(broker) as ha:
        b.sim.printer.start_print("Benchy", layers=120, minutes=600)
        await wait_for(lambda: (ha.json(STATE) or {}).get("gcode_state") == "RUNNING", what="the print on the broker")
        buttons = [f"homeassistant/button/bambupi_garage/{name}/config" for name in ("pause", "resume", "stop")]
        assert not any(ha.get(t) for t in buttons)  # control is off: no buttons

        ha.publish(COMMAND, "pause")
        await wait_for(lambda: results(ha), what="the refusal")
        assert results(ha)[0]["result"] == "refused" and "allow_control" in results(ha)[0]["reason"]
        # Never sent: the box's MQTT log with the printer holds no pause (its decision came before any send).
        sent = [m.payload for m in b.running.hub.capture("garage").messages() if m.direction == "out"]
        assert not any('"pause"' in payload for payload in sent), sent
        assert b.sim.printer.state.gcode_state == "RUNNING"
        assert b.running.hub.printer("garage")["state"]["gcode_state"] == "RUNNING"

        # The owner allows control on the settings page: the buttons appear, the same command pauses the print.
        csrf = await setup_and_login(b.client)
        r = await save_settings(b.client, csrf, {"bridge": {"allow_control": True}})
        assert r.status_code == 200, r.text
        await wait_for(lambda: all(ha.get(t) for t in buttons), what="the buttons' configs")
        for topic in buttons:
            validate(topic, json.loads(ha.get(topic) or b""))
        pause = json.loads(ha.get(buttons[0]) or b"")
        ha.publish(pause["command_topic"], pause["payload_press"])  # as Home Assistant presses it
        await wait_for(lambda: b.sim.printer.state.gcode_state == "PAUSE", what="the simulated print paused")
        await wait_for(lambda: (ha.json(STATE) or {}).get("phase") == "paused", what="paused on the broker")
        await wait_for(lambda: len(results(ha)) == 2, what="the pause's result")
        assert (results(ha)[1]["command"], results(ha)[1]["result"]) == ("pause", "success")
        assert "garage: pause via the home broker -> success" in caplog.text  # the page's log line, its origin

        # A command sent with the retain flag runs once; the broker's kept copy is refused at the next connection
        # (a retained "resume" would otherwise undo every later pause at each reconnect).
        ha.client.publish(COMMAND, "resume", qos=1, retain=True).wait_for_publish(10)
        await wait_for(lambda: b.sim.printer.state.gcode_state == "RUNNING", what="resumed by the live message")
        ha.publish(pause["command_topic"], pause["payload_press"])
        await wait_for(lambda: b.sim.printer.state.gcode_state == "PAUSE", what="paused again")
        sessions = b.running.bridge.sessions
        r = await save_settings(b.client, csrf, {"bridge": {"connect_timeout_s": 9, "password": BOX_PASSWORD}})
        assert r.status_code == 200, r.text  # a connection setting: the bridge reconnects, the broker hands it over
        await wait_for(lambda: b.running.bridge.sessions == sessions + 1, what="the reconnect")
        await wait_for(lambda: any("retained command" in (x["reason"] or "") for x in results(ha)),
                       what="the retained command refused")
        assert b.sim.printer.state.gcode_state == "PAUSE"
        ha.client.publish(COMMAND, b"", qos=1, retain=True).wait_for_publish(10)  # cleared, as the refusal says
        done = len(results(ha))

        # Control off again: the buttons go (an empty retained config removes them from Home Assistant).
        r = await save_settings(b.client, csrf, {"bridge": {"allow_control": False}})
        assert r.status_code == 200, r.text
        await wait_for(lambda: all(ha.get(t) == b"" for t in buttons), what="the buttons removed")
        ha.publish(COMMAND, "resume")
        await wait_for(lambda: any("allow_control" in (x["reason"] or "") for x in results(ha)[done:]),
                       what="the second refusal")
        assert b.sim.printer.state.gcode_state == "PAUSE"

        # Junk on the command topic is refused with words; the bridge goes on.
        done = len(results(ha))
        ha.publish(COMMAND, "x" * 5000)
        ha.publish(COMMAND, "explode")
        await wait_for(lambda: len(results(ha)) == done + 2, what="two more refusals")
        assert "unknown command" in results(ha)[-1]["reason"]
        ha.publish(f"{PREFIX}/nope/command", "pause")
        await wait_for(lambda: ha.json(f"{PREFIX}/nope/command/result"), what="the unknown printer's refusal")
        assert ha.json(f"{PREFIX}/nope/command/result")["reason"] == "no printer with id 'nope'"
        assert (await home_broker(b.client))["state"] == "connected"


async def connected_to(client: httpx.AsyncClient, broker: Mosquitto) -> None:
    async def check() -> bool:
        return (await home_broker(client))["detail"] == f"connected to broker 127.0.0.1:{broker.port}"

    await wait_for(check, what="/healthz: connected to the broker")


@pytest.mark.timeout(120)
async def test_the_broker_going_away_and_coming_back(tmp_path: Path, broker: Mosquitto) -> None:
    async with box(tmp_path, broker) as b:
        await connected_to(b.client, broker)
        sessions = b.running.bridge.sessions
        await trio.to_thread.run_sync(broker.stop)  # killed: the broker forgets every retained message

        async def away() -> bool:
            entry = await home_broker(b.client)
            return entry["state"] == "disconnected" and f"127.0.0.1:{broker.port}" in entry["detail"]

        await wait_for(away, what="/healthz: not connected, and where")
        health = (await b.client.get("/healthz")).json()
        assert health["status"] == "degraded" and health["components"]["home_broker"]["ok"] is False
        # The rest of the box goes on: the printer is watched, a print starts meanwhile.
        b.sim.printer.start_print("Desk organizer", layers=310, minutes=600)
        await wait_for(lambda: b.running.hub.printer("garage")["state"]["gcode_state"] == "RUNNING", what="RUNNING")

        await trio.to_thread.run_sync(broker.start)
        await connected_to(b.client, broker)
        assert b.running.bridge.sessions == sessions + 1
        async with subscriber(broker) as ha:  # all of it published again to the fresh broker
            await wait_for(lambda: (ha.json(STATE) or {}).get("job") == "Desk organizer", what="the newest state")
            await all_configs(ha, b)
            assert ha.get(f"{PREFIX}/availability") == b"online"


@pytest.mark.timeout(120)
async def test_a_wrong_password_is_a_clear_reason_in_healthz(
    tmp_path: Path, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with box(tmp_path, broker, password="not the password") as b:
        async def refused() -> bool:
            return (await home_broker(b.client))["state"] == "disconnected"

        await wait_for(refused, what="the refusal in /healthz")
        r = await b.client.get("/healthz")
        entry = r.json()["components"]["home_broker"]
        assert entry == {
            "ok": False, "state": "disconnected",
            "detail": f"the broker at 127.0.0.1:{broker.port} refused the login: check [bridge] username and password",
        }
        assert "not the password" not in r.text
        assert "not the password" not in caplog.text  # nor in any log line, paho's included
        assert "refused the login" in caplog.text  # said once, in words
        # The rest of the box works.
        await wait_for(lambda: b.running.hub.printer("garage")["connection"] == "online", what="the printer online")


@pytest.mark.timeout(120)
async def test_the_password_never_follows_a_changed_broker_and_new_settings_reconnect(
    tmp_path: Path, broker: Mosquitto
) -> None:
    async with box(tmp_path, broker) as b:
        await connected_to(b.client, broker)
        csrf = await setup_and_login(b.client)
        settings = (await b.client.get("/api/settings")).json()
        assert settings["settings"]["bridge"]["password"] == "********"
        assert BOX_PASSWORD not in json.dumps(settings)
        assert "password" in settings["schema"]["bridge"]["secret"]

        # Another host with the stored password: refused, nothing saved, the box stays on its broker.
        r = await save_settings(b.client, csrf, {"bridge": {"host": "127.0.0.2"}})
        assert r.status_code == 400, r.text
        assert r.json()["fields"] == [
            {"key": "bridge.password", "message": "type the password again: the home broker's address changed"}
        ]
        assert 'host = "127.0.0.1"' in b.config_path.read_text()
        assert (await home_broker(b.client))["state"] == "connected"

        # Typed again: saved and applied at once (the bridge connects to the new address: nothing listens there).
        r = await save_settings(b.client, csrf, {"bridge": {"host": "127.0.0.2", "password": BOX_PASSWORD}})
        assert r.status_code == 200, r.text
        assert any("home broker" in line for line in r.json()["applied"])

        async def elsewhere() -> bool:
            return "127.0.0.2" in (await home_broker(b.client))["detail"]

        await wait_for(elsewhere, what="the bridge at the new address")
        r = await save_settings(b.client, csrf, {"bridge": {"host": "127.0.0.1", "password": BOX_PASSWORD}})
        assert r.status_code == 200, r.text
        await connected_to(b.client, broker)


@pytest.mark.timeout(120)
async def test_the_last_will_says_offline_when_the_box_dies(tmp_path: Path, broker: Mosquitto) -> None:
    async with trio.open_nursery() as nursery:
        sim = Simulator("P1S", SERIAL, CODE, scenario="idle", camera_port=0)
        await nursery.start(sim.run)
        path = write_config(tmp_path, sim, broker)
        async with subscriber(broker, f"{PREFIX}/availability") as ha:
            with (tmp_path / "box.log").open("w") as log:
                box_process = subprocess.Popen(
                    [sys.executable, "-m", "bambupi", "run", "-c", str(path)], stdout=log, stderr=log
                )
            try:
                await wait_for(lambda: ha.get(f"{PREFIX}/availability") == b"online", what="online")
                box_process.send_signal(signal.SIGKILL)  # a power cut: no goodbye
                await trio.to_thread.run_sync(box_process.wait)
                await wait_for(lambda: ha.get(f"{PREFIX}/availability") == b"offline", what="the last will")
            finally:
                if box_process.poll() is None:
                    box_process.kill()
                    box_process.wait()
            assert BOX_PASSWORD not in " ".join(box_process.args)  # type: ignore[arg-type]
        nursery.cancel_scope.cancel()


@pytest.mark.timeout(120)
async def test_a_stalled_broker_never_holds_up_the_box_and_gets_the_newest_state_after(
    tmp_path: Path, broker: Mosquitto
) -> None:
    async with box(tmp_path, broker) as b, subscriber(broker, STATE, f"{PREFIX}/garage/event") as ha:
        await connected_to(b.client, broker)
        b.sim.printer.tick_s = 0.05  # a report every 50 ms: far more changes than the stalled broker takes
        b.sim.printer.start_print("Benchy", layers=2000, minutes=600)
        await wait_for(lambda: (ha.json(STATE) or {}).get("gcode_state") == "RUNNING", what="RUNNING on the broker")
        session = b.running.bridge.session
        assert session is not None and broker.proc is not None
        os.kill(broker.proc.pid, signal.SIGSTOP)  # takes nothing, acknowledges nothing
        try:
            version = b.running.hub.version
            await wait_for(lambda: b.running.hub.version >= version + 40, what="40 changes while the broker stalls")
            # The box goes on (the page answers with the newest state); the bridge holds at most one message per
            # topic waiting behind the one the broker has not acknowledged, however many changes came.
            r = await b.client.get("/api/printers/garage")
            assert r.json()["state"]["layer"] == b.running.hub.printer("garage")["state"]["layer"]
            assert set(session._waiting) <= session._busy
            assert len(session.client._out_messages) <= len(session._busy)  # paho's own queue, bounded too
            assert b.running.bridge.session is session  # a stall is not a failure (within the keepalive)
            b.sim.printer.set_hms([(0x07002000, 0x00020001)])  # an event while the broker stalls: it must arrive
            await wait_for(lambda: b.running.hub.printer("garage")["state"]["hms"], what="the HMS on the box")
        finally:
            os.kill(broker.proc.pid, signal.SIGCONT)
        b.sim.printer.pause()
        await wait_for(lambda: b.running.hub.printer("garage")["state"]["gcode_state"] == "PAUSE", what="PAUSE")
        newest = b.running.hub.printer("garage")["state"]
        await wait_for(lambda: (ha.json(STATE) or {}).get("gcode_state") == "PAUSE", what="PAUSE on the broker")
        await wait_for(lambda: ha.json(STATE)["layer"] == newest["layer"], what="the newest layer on the broker")
        events = [json.loads(p)["event_type"] for t, p in list(ha.received) if t.endswith("/event")]
        assert events.count("hms_raised") == 1 and "job_paused" in events, events


@pytest.mark.timeout(120)
async def test_new_prefixes_clear_the_old_retained_topics(tmp_path: Path, broker: Mosquitto) -> None:
    async with box(tmp_path, broker) as b, subscriber(broker) as ha:
        old = set(await all_configs(ha, b))
        csrf = await setup_and_login(b.client)
        r = await save_settings(b.client, csrf, {"bridge": {"topic_prefix": "home/printers", "discovery_prefix": "ha"}})
        assert r.status_code == 200, r.text
        await wait_for(lambda: all(ha.get(t) == b"" for t in old), what="the old configs removed")
        await wait_for(lambda: ha.get(STATE) == b"" and ha.get(f"{PREFIX}/availability") == b"",
                       what="the old state and availability removed")
        await wait_for(lambda: (ha.json("home/printers/garage/state") or {}).get("connection") == "online",
                       what="the state under the new prefix")
        await wait_for(lambda: ha.get("home/printers/availability") == b"online", what="online under the new prefix")
        new = {t: json.loads(p) for t, p in ha.last.items() if t.startswith("ha/") and p}
        assert len(new) == len(old)
        for topic, config in new.items():
            validate(topic, config, prefix="ha")
            assert config["state_topic" if "state_topic" in config else "image_topic"].startswith("home/printers/")


@pytest.mark.timeout(120)
async def test_plain_and_unchecked_tls_connections_and_an_untrusted_certificate(tmp_path: Path) -> None:
    folder = tmp_path / "broker"
    folder.mkdir()
    broker = Mosquitto(folder, {BOX_USER: BOX_PASSWORD, HA_USER: HA_PASSWORD})
    broker.ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    plain_port = free_port()
    with (folder / "mosquitto.conf").open("a") as conf:
        conf.write(f"listener {plain_port} 127.0.0.1\n")  # a second listener without TLS (same passwords)
    broker.start()
    try:
        async with box(tmp_path, broker) as b:
            await connected_to(b.client, broker)
            csrf = await setup_and_login(b.client)
            cases = [
                ({"tls": False, "port": plain_port, "ca": None}, f"connected to broker 127.0.0.1:{plain_port}"),
                ({"tls": True, "port": broker.port, "ca": "insecure"}, f"connected to broker 127.0.0.1:{broker.port}"),
                ({"ca": "system"}, "presented a certificate that [bridge] ca does not trust"),
                ({"tls": False}, "is [bridge] tls right for this port?"),  # TLS port spoken to in plain MQTT
            ]
            for change, detail in cases:
                r = await save_settings(b.client, csrf, {"bridge": {**change, "password": BOX_PASSWORD}})
                assert r.status_code == 200, r.text

                async def shown(detail: str = detail) -> bool:
                    return detail in (await home_broker(b.client))["detail"]

                await wait_for(shown, what=detail)
    finally:
        broker.stop()


@pytest.mark.timeout(120)
async def test_a_printer_removed_in_the_settings_leaves_home_assistant(tmp_path: Path, broker: Mosquitto) -> None:
    async with box(tmp_path, broker) as b, subscriber(broker) as ha:
        configs = set(await all_configs(ha, b))
        old, _ = load_config(b.config_path)
        outcome = await b.running.supervisor.reconfigure(old, dataclasses.replace(old, printers=()))
        assert outcome["restart_required"] == []
        await wait_for(lambda: all(ha.get(t) == b"" for t in configs), what="every config removed")
        await wait_for(lambda: ha.get(STATE) == b"" and ha.get(f"{PREFIX}/garage/availability") == b"",
                       what="its state and availability removed")
        assert ha.get(f"{PREFIX}/availability") == b"online"  # the box itself stays
        # A picture being taken of the printer as it went costs that picture, not the bridge.
        assert "failures" not in b.running.supervisor.health()["bridge"], b.running.supervisor.health()["bridge"]


@pytest.mark.timeout(120)
async def test_events_while_the_broker_refuses_the_box_arrive_after_unless_they_are_stale(
    tmp_path: Path, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    async with box(tmp_path, broker, password="not the password") as b, subscriber(broker, f"{PREFIX}/+/event") as ha:
        bridge = b.running.bridge
        bridge.event_max_age_s = 3.0
        await wait_for(lambda: bridge.state == "disconnected", what="the refusal")
        b.sim.printer.set_hms([(0x07002000, 0x00020001)])  # hms_raised: it will be stale by the time
        await wait_for(lambda: len(bridge._events) == 1, what="the first event kept")
        stale_since = trio.current_time()
        await wait_for(lambda: trio.current_time() - stale_since > 4, what="the first event going stale")
        b.sim.printer.set_hms([])  # hms_cleared: fresh
        await wait_for(lambda: len(bridge._events) == 2, what="the second event kept")
        csrf = await setup_and_login(b.client)
        r = await save_settings(b.client, csrf, {"bridge": {"password": BOX_PASSWORD}})
        assert r.status_code == 200, r.text
        await wait_for(lambda: any(t.endswith("/event") for t, _ in ha.received), what="an event after the login")
        await wait_for(lambda: not bridge._events, what="the kept events handled")
        kinds = [json.loads(p)["event_type"] for t, p in list(ha.received) if t.endswith("/event")]
        assert kinds == ["hms_cleared"]
        assert "1 events were not sent (older than 3 s" in caplog.text
