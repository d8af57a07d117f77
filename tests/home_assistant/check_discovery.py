"""Home Assistant itself reads what the bridge publishes: its MQTT integration (with its test harness,
pytest-homeassistant-custom-component, and a mocked MQTT client) takes the bridge's discovery configs, availability
and state document, and the entities it makes must show the printer's values; a button press must publish the command
the bridge takes. Run by tests/test_bridge_home_assistant.py under a Python that has Home Assistant; the payloads
(made by bambupi's own code from a real capture) come in the file named by BAMBUPI_BRIDGE_PAYLOADS.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import async_fire_mqtt_message

DATA: dict[str, Any] = json.loads(Path(os.environ["BAMBUPI_BRIDGE_PAYLOADS"]).read_text())
PREFIX = "homeassistant/"
JPEG = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffd9")  # the smallest frame: SOI, JFIF APP0, EOI


def entity_id(hass: HomeAssistant, topic: str) -> str:
    config = DATA["configs"][topic]
    component = topic.removeprefix(PREFIX).split("/")[0]
    found = er.async_get(hass).async_get_entity_id(component, "mqtt", config["unique_id"])
    assert found is not None, f"Home Assistant made no entity of {topic}"
    return found


def shown(value: Any) -> str:
    """How Home Assistant shows a sensor's value from the template (None is unknown)."""
    if value is None:
        return "unknown"
    return str(value)


# The MQTT integration's keepalive timer outlives the test harness's setup (it is not unloaded): not ours to fix.
@pytest.mark.parametrize("expected_lingering_timers", [True])
async def test_home_assistant_makes_the_printer_from_the_bridge(
    hass: HomeAssistant, mqtt_mock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    for topic, config in DATA["configs"].items():
        async_fire_mqtt_message(hass, topic, json.dumps(config), retain=True)
    await hass.async_block_till_done()
    for topic, payload in DATA["retained"].items():
        async_fire_mqtt_message(hass, topic, payload, retain=True)
    await hass.async_block_till_done()

    devices = [d for d in dr.async_get(hass).devices.values() if any(i[0] == "mqtt" for i in d.identifiers)]
    assert len(devices) == 1, devices
    assert devices[0].manufacturer == "Bambu Lab" and devices[0].model == DATA["model"]

    document = DATA["document"]
    for topic, config in DATA["configs"].items():
        state = hass.states.get(entity_id(hass, topic))
        assert state is not None, topic
        assert state.state != "unavailable", (topic, state)
        plain = re.fullmatch(r"\{\{ value_json\.([a-z_]+) \}\}", config.get("value_template", ""))
        if topic.startswith(PREFIX + "sensor/") and plain:  # a sensor that shows one value of the document as it is
            assert state.state == shown(document[plain[1]]), (topic, state.state, document[plain[1]])
    progress = hass.states.get(entity_id(hass, f"{PREFIX}sensor/bambupi_p/progress/config"))
    assert progress is not None and progress.attributes["unit_of_measurement"] == "%"
    remaining = hass.states.get(entity_id(hass, f"{PREFIX}sensor/bambupi_p/remaining/config"))
    assert remaining is not None and remaining.attributes["device_class"] == "duration"
    connection = hass.states.get(entity_id(hass, f"{PREFIX}binary_sensor/bambupi_p/connection/config"))
    assert connection is not None and connection.state == "on"
    door = hass.states.get(entity_id(hass, f"{PREFIX}binary_sensor/bambupi_p/door/config"))
    assert door is not None and door.state == {"open": "on", "closed": "off"}[document["door"]]
    worst = hass.states.get(entity_id(hass, f"{PREFIX}sensor/bambupi_p/hms_worst/config"))
    assert worst is not None and worst.attributes["hms"] == document["hms"]
    for key, tray in document["trays"].items():
        sensor = hass.states.get(entity_id(hass, f"{PREFIX}sensor/bambupi_p/tray_{key}/config"))
        assert sensor is not None and sensor.state == (tray["type"] or "empty"), (key, sensor)
        assert sensor.attributes.get("remain") == tray["remain"] and sensor.attributes.get("color") == tray["color"]

    # The printer stops reporting: its values become unavailable, its connection stays readable (and says off).
    # (Live messages: a broker hands a retained message to a subscriber that is already there without the flag.)
    async_fire_mqtt_message(hass, "bambupi/p/availability", "offline")
    async_fire_mqtt_message(hass, "bambupi/p/state", json.dumps({**document, "connection": "offline"}))
    await hass.async_block_till_done()
    assert hass.states.get(progress.entity_id).state == "unavailable"
    assert hass.states.get(connection.entity_id).state == "off"

    # An event, as the bridge sends it, reaches the event entity with its type.
    events = entity_id(hass, f"{PREFIX}event/bambupi_p/events/config")
    async_fire_mqtt_message(hass, "bambupi/p/event", DATA["event"])
    await hass.async_block_till_done()
    assert hass.states.get(events).attributes["event_type"] == "job_finished"

    # Reporting again: available again.
    async_fire_mqtt_message(hass, "bambupi/p/availability", "online")
    await hass.async_block_till_done()
    assert hass.states.get(progress.entity_id).state == shown(document["percent"])

    # A camera picture, as the bridge publishes it (JPEG bytes), becomes the image entity's picture.
    image = entity_id(hass, f"{PREFIX}image/bambupi_p/camera/config")
    assert hass.states.get(image).state == "unknown"
    async_fire_mqtt_message(hass, "bambupi/p/camera", JPEG)
    await hass.async_block_till_done()
    assert hass.states.get(image).state not in ("unknown", "unavailable")  # the time of the newest picture

    # A button press publishes what the bridge takes on its command topic.
    mqtt_mock.async_publish.reset_mock()
    await hass.services.async_call(
        "button", "press", {"entity_id": entity_id(hass, f"{PREFIX}button/bambupi_p/pause/config")}, blocking=True
    )
    mqtt_mock.async_publish.assert_called_once_with("bambupi/p/command", "pause", 0, False)

    # Home Assistant removes a button whose config is emptied (control turned off on the box).
    pause = entity_id(hass, f"{PREFIX}button/bambupi_p/pause/config")
    async_fire_mqtt_message(hass, f"{PREFIX}button/bambupi_p/pause/config", "")
    await hass.async_block_till_done()
    assert er.async_get(hass).async_get(pause) is None

    # Nothing the bridge sent made the MQTT integration complain (a bad template, an unknown event type, a value
    # that does not fit its device class...).
    complaints = [r.getMessage() for r in caplog.records
                  if r.name.startswith("homeassistant.components.") and r.levelno >= logging.WARNING]
    assert complaints == []
