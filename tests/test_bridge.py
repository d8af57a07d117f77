"""The home broker's bridge against a real mosquitto (TLS, passwords) as the home broker, the real service and the
simulated printer (with its port-6000 camera), and paho-mqtt as Home Assistant's side: what a late subscriber finds
retained, the discovery configs checked against Home Assistant's documented schema (tests/ha_discovery_schema.py),
commands from the broker only while control is allowed, the broker going away and coming back, a wrong password,
and the last will when the box's connection dies."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
import trio
from paho.mqtt.enums import CallbackAPIVersion

from bambupi.config import load_config
from bambupi.service import Running, Service
from bambupi.sim.simulator import Simulator
from tests.ha_discovery_schema import discovery_topic, validate
from tests.mosquitto import Mosquitto
from tests.support import CODE, CSRF, SERIAL, save_settings, setup_and_login, wait_for

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
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in topics])
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
            await wait_for(lambda: len(ha.configs()) >= 15, what="the discovery configs")
            assert ha.get(f"{PREFIX}/availability") == b"online"
            assert ha.get(f"{PREFIX}/garage/availability") == b"online"
            assert {STATE, f"{PREFIX}/availability", f"{PREFIX}/garage/camera"} <= ha.retained
            document = ha.json(STATE)
            assert document["job"] == "Benchy" and document["phase"] == "printing"
            assert document["hms_count"] == 0 and document["hms_worst"] == "none"
            assert document["connection"] == "online"

            configs = ha.configs()
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
            by_id = {c["unique_id"].rsplit("_", 1)[-1]: c for c in configs.values()}
            assert (by_id["remaining"]["device_class"], by_id["remaining"]["unit_of_measurement"]) == ("duration", "min")
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
            await wait_for(lambda: ha.client.is_connected(), what="the event subscriber")
            await trio.sleep(0.5)  # the subscription is acknowledged after the connection
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
