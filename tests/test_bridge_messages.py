"""What the bridge publishes, as pure functions, on reports real printers sent (tests/captures/): the state document,
Home Assistant's discovery configs checked against its documented schema (tests/ha_discovery_schema.py), the commands
it takes and the topics it uses."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import pytest
import voluptuous as vol

from bambupi.bridge.messages import (
    COMMANDS,
    EVENT_TYPES,
    Printer,
    Topics,
    discovery_configs,
    event_payload,
    parse_command,
    state_document,
    worst_severity,
)
from bambupi.config import BridgeConfig
from bambupi.printer.events import EVENT_KINDS
from bambupi.printer_models import model_info
from bambupi.state_hub import StateHub
from tests.capture_corpus import Capture, all_captures
from tests.ha_discovery_schema import discovery_topic, validate
from tests.support import printer_config

SETTINGS = BridgeConfig(enabled=True, host="broker.lan")


def printer_object(item: Capture) -> dict[str, Any]:
    """The printer object the box makes of a real capture."""
    hub = StateHub([printer_config("p", model=item.model)])
    for message in item.messages:
        hub.apply_message("p", json.dumps(message).encode())
    return dict(hub.printer("p"))


def printer(model: str, *, camera: bool = True) -> Printer:
    return Printer("p", "01P00A000000001", "Garage", model, camera)


def configs_of(raw: dict[str, bytes]) -> dict[str, dict[str, Any]]:
    return {topic: json.loads(payload) for topic, payload in raw.items() if payload}


@pytest.mark.parametrize("item", all_captures(), ids=lambda item: item.name)
async def test_every_config_of_every_captured_printer_is_valid_and_reads_keys_the_state_has(item: Capture) -> None:
    obj = printer_object(item)
    document = state_document(obj)
    raw = discovery_configs(printer(item.model), document, dataclasses.replace(SETTINGS, allow_control=True))
    configs = configs_of(raw)
    assert len(configs) == len(raw)  # with control allowed and a camera, every topic has a config
    for topic, config in configs.items():
        validate(topic, config)
        for key in ("value_template", "json_attributes_template"):
            assert set(re.findall(r"value_json\.([a-z_]+)", config.get(key, ""))) <= set(document), (topic, key)
    unique = [c["unique_id"] for c in configs.values()]
    assert len(unique) == len(set(unique))
    assert len({json.dumps(c["device"], sort_keys=True) for c in configs.values()}) == 1
    info = model_info(item.model)
    assert ("homeassistant/sensor/bambupi_p/chamber_temp/config" in configs) == info.has_chamber_sensor
    assert ("homeassistant/binary_sensor/bambupi_p/door/config" in configs) == (info.door is not None)
    # Each AMS slot the printer lists is a sensor (type, with colour and what is left as attributes).
    slots = sum(len(unit["trays"]) for unit in obj["state"]["ams"]["units"].values())
    assert len([t for t in configs if "/tray_" in t]) == slots == len(document["trays"])


async def test_the_state_document_of_an_h2d_with_an_ams_ht() -> None:
    item = next(c for c in all_captures() if c.name == "h2d-ams-ht")
    document = state_document(printer_object(item))
    assert document["connection"] == "online"
    assert document["door"] in ("open", "closed")  # an H2D reports its door
    assert {key.split("_")[0] for key in document["trays"]} == {"0", "128"}
    names = [c["name"] for c in configs_of(discovery_configs(printer("H2D"), document, SETTINGS)).values()]
    assert "AMS 1 tray 1" in names and "AMS HT 1 tray 1" in names
    for tray in document["trays"].values():
        assert tray["color"] is None or re.fullmatch(r"#[0-9A-Fa-f]{6}", tray["color"])


async def test_a_printer_before_its_first_report() -> None:
    hub = StateHub([printer_config("p")])
    document = state_document(hub.printer("p"))
    assert document["connection"] == "connecting" and document["gcode_state"] is None
    assert document["hms_count"] == 0 and document["hms_worst"] == "none"
    assert document["trays"] == {} and document["door"] is None
    for topic, config in configs_of(discovery_configs(printer("P1S"), document, SETTINGS)).items():
        validate(topic, config)


def test_buttons_only_with_control_and_the_image_only_with_a_camera_and_pictures() -> None:
    document = state_document({"connection": "online", "state": {}})
    off = discovery_configs(printer("P1S"), document, SETTINGS)
    on = discovery_configs(printer("P1S"), document, dataclasses.replace(SETTINGS, allow_control=True))
    buttons = [t for t in on if "/button/" in t]
    assert sorted(discovery_topic(t)["object_id"] for t in buttons) == sorted(COMMANDS)
    assert all(off[t] == b"" for t in buttons)  # an empty retained config: Home Assistant removes the entity
    assert all(json.loads(on[t])["payload_press"] in COMMANDS for t in buttons)
    assert {json.loads(on[t])["command_topic"] for t in buttons} == {"bambupi/p/command"}
    image = "homeassistant/image/bambupi_p/camera/config"
    assert json.loads(off[image])["image_topic"] == "bambupi/p/camera"
    assert discovery_configs(printer("P1S", camera=False), document, SETTINGS)[image] == b""
    no_pictures = dataclasses.replace(SETTINGS, snapshot_interval_s=0)
    assert discovery_configs(printer("P1S"), document, no_pictures)[image] == b""


def test_other_prefixes_and_the_box_url() -> None:
    settings = dataclasses.replace(SETTINGS, topic_prefix="home/printers", discovery_prefix="ha")
    raw = discovery_configs(printer("X1C"), state_document({"state": {}}), settings, box_url="http://bambupi.local/")
    for topic, config in configs_of(raw).items():
        validate(topic, config, prefix="ha")
        assert config["device"]["configuration_url"] == "http://bambupi.local/"
        assert {a["topic"] for a in config["availability"]} <= {"home/printers/availability",
                                                                 "home/printers/p/availability"}


def test_the_schema_check_catches_what_home_assistant_refuses() -> None:
    raw = discovery_configs(printer("P1S"), state_document({"state": {}}), SETTINGS)
    remaining = json.loads(raw["homeassistant/sensor/bambupi_p/remaining/config"])
    with pytest.raises(vol.Invalid):
        validate("homeassistant/sensor/bambupi_p/remaining/config", {**remaining, "unit_of_measurement": "minutes"})
    phase = json.loads(raw["homeassistant/sensor/bambupi_p/phase/config"])
    with pytest.raises(vol.Invalid):
        validate("homeassistant/sensor/bambupi_p/phase/config", {**phase, "state_class": "measurement"})
    with pytest.raises(vol.Invalid):
        validate("homeassistant/sensor/bambupi_p/phase/config", {k: v for k, v in phase.items() if k != "state_topic"})
    with pytest.raises(vol.Invalid):
        validate("homeassistant/sensor/bambupi_p/phase/config", {**phase, "availability_topic": "x"})


@pytest.mark.parametrize(
    ("payload", "command"),
    [(b"pause", "pause"), (b" Resume\n", "resume"), (b'{"command": "stop"}', "stop"), (b"light_on", "light_on")],
)
def test_commands_it_takes(payload: bytes, command: str) -> None:
    assert parse_command(payload) == command


@pytest.mark.parametrize(
    ("payload", "words"),
    [(b"speed", "unknown command"), (b"", "unknown command"), (b"{not json", "unknown command"),
     (b"\xff\xfe", "unknown command"), (b"x" * 300, "one word"), (b'{"command": 5}', "unknown command")],
)
def test_commands_it_refuses_with_words(payload: bytes, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_command(payload)


def test_command_topics() -> None:
    topics = Topics("bambupi", "homeassistant")
    assert topics.command_printer("bambupi/garage/command") == "garage"
    assert topics.command_printer("bambupi/garage/command/result") is None
    assert topics.command_printer("bambupi/a/b/command") is None
    assert topics.command_printer("other/garage/command") is None
    assert topics.command_printer("bambupi//command") is None


def test_the_event_entity_knows_every_kind_the_box_sends() -> None:
    raw = discovery_configs(printer("P1S"), state_document({"state": {}}), SETTINGS)
    events = json.loads(raw["homeassistant/event/bambupi_p/events/config"])
    assert set(events["event_types"]) == set(EVENT_TYPES) >= set(EVENT_KINDS)
    assert events["state_topic"] == "bambupi/p/event"


def test_worst_severity_and_events() -> None:
    assert worst_severity([]) == "none"
    assert worst_severity([{"severity": "info"}, {"severity": "serious"}, {"severity": "common"}]) == "serious"
    assert worst_severity([{"severity": "unknown"}]) == "unknown"
    payload = json.loads(event_payload({"kind": "job_finished", "printer": "p", "job": "Benchy", "at": 1.0}))
    assert payload == {"event_type": "job_finished", "kind": "job_finished", "printer": "p", "job": "Benchy", "at": 1.0}
