"""Home Assistant's MQTT discovery payloads as its documentation states them, written as voluptuous schemas (the
library Home Assistant itself validates them with), for checking what the bridge publishes without a running HA
(the ``homeassistant`` package needs a newer Python than this machine has).

Sources (read 2026-12):
- https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery (topic format
  ``<discovery_prefix>/<component>/[<node_id>/]<object_id>/config``, the ``device`` and ``origin`` maps, availability)
- https://www.home-assistant.io/integrations/sensor.mqtt/ and https://www.home-assistant.io/integrations/sensor/
  (device classes and their units, ``state_class``, ``enum`` with ``options`` and neither unit nor state class)
- https://www.home-assistant.io/integrations/binary_sensor.mqtt/ and .../binary_sensor/ (device classes)
- https://www.home-assistant.io/integrations/button.mqtt/ (``command_topic`` required, device classes)
- https://www.home-assistant.io/integrations/image.mqtt/ (exactly one of ``image_topic`` and ``url_topic``)
- https://www.home-assistant.io/integrations/event.mqtt/ (``state_topic`` and ``event_types`` required; the payload
  is JSON with ``event_type``)
- https://developers.home-assistant.io/docs/core/entity/#generic-properties (``entity_category``: config or
  diagnostic; a sensor may not be ``config``)
"""

from __future__ import annotations

import re
from typing import Any

import voluptuous as vol

# After the discovery prefix (HA's own pattern, homeassistant/components/mqtt/discovery.py).
DISCOVERY_TOPIC = re.compile(
    r"^(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?(?P<object_id>[a-zA-Z0-9_-]+)/config$"
)


def discovery_topic(topic: str, prefix: str = "homeassistant") -> re.Match[str]:
    """The parts of a discovery topic; vol.Invalid for anything else."""
    match = DISCOVERY_TOPIC.match(topic.removeprefix(f"{prefix}/")) if topic.startswith(f"{prefix}/") else None
    if match is None:
        raise vol.Invalid(f"not a discovery topic under {prefix}/: {topic}")
    return match

# https://www.home-assistant.io/integrations/sensor/#device-class: each class and the units it takes (None: none).
SENSOR_UNITS: dict[str, set[str | None]] = {
    "temperature": {"°C", "°F", "K"},
    "duration": {"d", "h", "min", "s", "ms", "µs"},
    "humidity": {"%"},
    "battery": {"%"},
    "power": {"mW", "W", "kW", "MW", "GW", "TW", "BTU/h"},
    "energy": {"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh", "cal", "kcal", "Mcal", "Gcal"},
    "signal_strength": {"dB", "dBm"},
    "timestamp": {None},
    "enum": {None},
}
SENSOR_DEVICE_CLASSES = {
    *SENSOR_UNITS, "apparent_power", "aqi", "area", "atmospheric_pressure", "blood_glucose_concentration",
    "carbon_dioxide", "carbon_monoxide", "conductivity", "current", "data_rate", "data_size", "date", "distance",
    "energy_storage",
    "frequency", "gas", "illuminance", "irradiance", "moisture", "monetary", "nitrogen_dioxide", "nitrogen_monoxide",
    "nitrous_oxide", "ozone", "ph", "pm1", "pm10", "pm25", "power_factor", "precipitation", "precipitation_intensity",
    "pressure", "reactive_power", "sound_pressure", "speed", "sulphur_dioxide", "volatile_organic_compounds",
    "volatile_organic_compounds_parts", "voltage", "volume", "volume_flow_rate", "volume_storage", "water", "weight",
    "wind_direction", "wind_speed",
}
STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}
BINARY_SENSOR_DEVICE_CLASSES = {
    "battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door", "garage_door", "gas", "heat",
    "light", "lock", "moisture", "motion", "moving", "occupancy", "opening", "plug", "power", "presence", "problem",
    "running", "safety", "smoke", "sound", "tamper", "update", "vibration", "window",
}
BUTTON_DEVICE_CLASSES = {"identify", "restart", "update"}
EVENT_DEVICE_CLASSES = {"button", "doorbell", "motion"}


def subscribe_topic(value: Any) -> str:
    """A topic HA can subscribe to: a non-empty string, wildcards only as whole levels."""
    text = vol.Coerce(str)(value)
    if not text or len(text.encode()) > 65535 or "\0" in text:
        raise vol.Invalid(f"not a valid topic: {text!r}")
    for level in text.split("/"):
        if ("+" in level and level != "+") or ("#" in level and level != "#"):
            raise vol.Invalid(f"a wildcard must be a whole level: {text!r}")
    return text


def publish_topic(value: Any) -> str:
    """A topic HA can publish to: no wildcards at all."""
    text = subscribe_topic(value)
    if "+" in text or "#" in text:
        raise vol.Invalid(f"a publish topic has no wildcards: {text!r}")
    return text


def icon(value: Any) -> str:
    text = vol.Coerce(str)(value)
    if ":" not in text:
        raise vol.Invalid("an icon is prefix:name, e.g. mdi:printer")
    return text


DEVICE = vol.All(
    vol.Schema({
        vol.Optional("identifiers"): vol.Any(str, [str]),
        vol.Optional("connections"): [[str]],
        vol.Optional("name"): str,
        vol.Optional("manufacturer"): str,
        vol.Optional("model"): str,
        vol.Optional("model_id"): str,
        vol.Optional("serial_number"): str,
        vol.Optional("sw_version"): str,
        vol.Optional("hw_version"): str,
        vol.Optional("suggested_area"): str,
        vol.Optional("via_device"): str,
        vol.Optional("configuration_url"): vol.Match(r"^(https?|homeassistant)://"),
    }),
    vol.Any(vol.Schema({vol.Required("identifiers"): object}, extra=vol.ALLOW_EXTRA),
            vol.Schema({vol.Required("connections"): object}, extra=vol.ALLOW_EXTRA),
            msg="a device needs identifiers or connections"),
)
ORIGIN = vol.Schema({vol.Required("name"): str, vol.Optional("sw_version"): str, vol.Optional("support_url"): str})
AVAILABILITY = vol.Schema({
    vol.Required("topic"): subscribe_topic,
    vol.Optional("payload_available"): str,
    vol.Optional("payload_not_available"): str,
    vol.Optional("value_template"): str,
})

COMMON = {
    vol.Optional("name"): vol.Any(str, None),
    vol.Required("unique_id"): str,  # the bridge's entities must be editable in HA: a unique id for each
    vol.Optional("default_entity_id"): str,
    vol.Optional("object_id"): str,
    vol.Required("device"): DEVICE,  # one device per printer
    vol.Optional("origin"): ORIGIN,
    vol.Exclusive("availability", "availability"): [AVAILABILITY],
    vol.Exclusive("availability_topic", "availability"): subscribe_topic,
    vol.Optional("availability_mode"): vol.In(["all", "any", "latest"]),
    vol.Optional("payload_available"): str,
    vol.Optional("payload_not_available"): str,
    vol.Optional("icon"): icon,
    vol.Optional("entity_category"): vol.In(["config", "diagnostic"]),
    vol.Optional("enabled_by_default"): bool,
    vol.Optional("json_attributes_topic"): subscribe_topic,
    vol.Optional("json_attributes_template"): str,
    vol.Optional("qos"): vol.In([0, 1, 2]),
    vol.Optional("encoding"): str,
}


def _sensor_rules(config: dict[str, Any]) -> dict[str, Any]:
    device_class = config.get("device_class")
    unit = config.get("unit_of_measurement")
    if device_class == "enum":
        if "state_class" in config or unit is not None:
            raise vol.Invalid("an enum sensor has neither state_class nor unit_of_measurement")
        if not config.get("options"):
            raise vol.Invalid("an enum sensor lists its options")
    elif "options" in config:
        raise vol.Invalid("options only with device_class enum")
    if device_class in SENSOR_UNITS and unit not in SENSOR_UNITS[device_class]:
        raise vol.Invalid(f"unit {unit!r} is not one of device class {device_class}'s: {SENSOR_UNITS[device_class]}")
    if config.get("entity_category") == "config":
        raise vol.Invalid("a sensor cannot be a config entity")
    return config


SCHEMAS: dict[str, vol.Schema] = {
    "sensor": vol.All(vol.Schema({
        **COMMON,
        vol.Required("state_topic"): subscribe_topic,
        vol.Optional("value_template"): str,
        vol.Optional("device_class"): vol.In(SENSOR_DEVICE_CLASSES),
        vol.Optional("unit_of_measurement"): str,
        vol.Optional("state_class"): vol.In(STATE_CLASSES),
        vol.Optional("options"): [str],
        vol.Optional("expire_after"): vol.All(int, vol.Range(min=0)),
        vol.Optional("force_update"): bool,
        vol.Optional("suggested_display_precision"): vol.All(int, vol.Range(min=0)),
    }), _sensor_rules),
    "binary_sensor": vol.Schema({
        **COMMON,
        vol.Required("state_topic"): subscribe_topic,
        vol.Optional("value_template"): str,
        vol.Optional("device_class"): vol.In(BINARY_SENSOR_DEVICE_CLASSES),
        vol.Optional("payload_on"): str,
        vol.Optional("payload_off"): str,
        vol.Optional("expire_after"): vol.All(int, vol.Range(min=0)),
        vol.Optional("off_delay"): vol.All(int, vol.Range(min=0)),
    }),
    "button": vol.Schema({
        **COMMON,
        vol.Required("command_topic"): publish_topic,
        vol.Optional("command_template"): str,
        vol.Optional("payload_press"): str,
        vol.Optional("retain"): bool,
        vol.Optional("device_class"): vol.In(BUTTON_DEVICE_CLASSES),
    }),
    "image": vol.Schema({
        **COMMON,
        vol.Exclusive("image_topic", "image"): subscribe_topic,
        vol.Exclusive("url_topic", "image"): subscribe_topic,
        vol.Optional("content_type"): vol.Match(r"^image/[a-z0-9.+-]+$"),
        vol.Optional("image_encoding"): vol.In(["b64"]),
        vol.Optional("url_template"): str,
    }),
    "event": vol.Schema({
        **COMMON,
        vol.Required("state_topic"): subscribe_topic,
        vol.Required("event_types"): vol.All([str], vol.Length(min=1)),
        vol.Optional("value_template"): str,
        vol.Optional("device_class"): vol.In(EVENT_DEVICE_CLASSES),
    }),
}


def validate(topic: str, config: dict[str, Any], prefix: str = "homeassistant") -> dict[str, Any]:
    """The config checked against its component's schema (by its topic); vol.Invalid says what is wrong."""
    component = discovery_topic(topic, prefix)["component"]
    if component not in SCHEMAS:
        raise vol.Invalid(f"no schema for component {component}")
    checked: dict[str, Any] = SCHEMAS[component](config)
    if component == "image" and "image_topic" not in config and "url_topic" not in config:
        raise vol.Invalid("an image needs image_topic or url_topic")
    if "content_type" in config and "image_topic" not in config:
        raise vol.Invalid("content_type goes with image_topic")
    return checked
