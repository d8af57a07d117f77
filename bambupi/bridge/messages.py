"""What the bridge publishes and reads, as pure functions: topics, the retained state document, Home Assistant's
discovery configs, event and command-result payloads, and the commands it takes.

Topics (``<prefix>`` is ``[bridge] topic_prefix``, ``<id>`` a printer's id):

- ``<prefix>/availability``: ``online`` (retained) while the box is connected, ``offline`` as its last will;
- ``<prefix>/<id>/availability``: ``online`` while the printer reports, else ``offline`` (retained);
- ``<prefix>/<id>/state``: the state document (:func:`state_document`, retained JSON);
- ``<prefix>/<id>/event``: each event as it happens (not retained; ``event_type`` is its kind, as Home Assistant's
  MQTT event entity wants);
- ``<prefix>/<id>/camera``: the latest camera picture, JPEG bytes (retained);
- ``<prefix>/<id>/command``: what the box takes (``pause``, ``resume``, ``stop``, ``light_on``, ``light_off``), and
  ``<prefix>/<id>/command/result`` what came of each (not retained).

Discovery follows https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery: one config per entity at
``<discovery_prefix>/<component>/bambupi_<id>/<object_id>/config``, every entity of a printer in one device.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

from bambupi import __version__
from bambupi.config import BridgeConfig
from bambupi.printer.events import EVENT_KINDS
from bambupi.printer_models import model_info

ONLINE: Final = "online"
OFFLINE: Final = "offline"
COMMANDS: Final = ("pause", "resume", "stop", "light_on", "light_off")
COMMAND_MAX_BYTES: Final = 256  # a command is one word; anything longer is refused unread
PHASES: Final = ("idle", "preparing", "printing", "paused", "finished", "failed", "cancelled", "offline")
GCODE_STATES: Final = ("IDLE", "PREPARE", "RUNNING", "PAUSE", "FINISH", "FAILED", "SLICING", "INIT", "UNKNOWN")
SEVERITIES: Final = ("fatal", "serious", "common", "info", "unknown")  # most severe first, as HMS ranks them
WORST_NONE: Final = "none"
# The events published on <prefix>/<id>/event, as the event entity lists them (Home Assistant warns about a type it
# was not told of): the printer's transitions, and the box's notices about it.
EVENT_TYPES: Final = (*EVENT_KINDS, "filament_low", "power_warning", "power_off")
BUTTONS: Final = {
    "pause": ("Pause", "mdi:pause"),
    "resume": ("Resume", "mdi:play"),
    "stop": ("Stop", "mdi:stop"),
    "light_on": ("Light on", "mdi:lightbulb-on"),
    "light_off": ("Light off", "mdi:lightbulb-off"),
}


@dataclass(frozen=True)
class Topics:
    """Where one box publishes, from ``[bridge]``."""

    prefix: str
    discovery: str

    @property
    def availability(self) -> str:
        return f"{self.prefix}/availability"

    def printer(self, printer_id: str, leaf: str) -> str:
        return f"{self.prefix}/{printer_id}/{leaf}"

    @property
    def commands(self) -> str:
        """The subscription that takes every printer's commands."""
        return f"{self.prefix}/+/command"

    def command_printer(self, topic: str) -> str | None:
        """The printer id of a command topic, or None for any other topic."""
        head, _, rest = topic.partition(f"{self.prefix}/")
        if head or not rest.endswith("/command"):
            return None
        printer_id = rest.removesuffix("/command")
        return printer_id if printer_id and "/" not in printer_id else None

    def config(self, component: str, printer_id: str, object_id: str) -> str:
        return f"{self.discovery}/{component}/bambupi_{printer_id}/{object_id}/config"

    @property
    def configs(self) -> str:
        """The subscription that finds every discovery config kept on the broker (to clear this box's stale ones)."""
        return f"{self.discovery}/+/+/+/config"

    def stale_config(self, topic: str, payload: bytes, printers: Collection[str]) -> str | None:
        """The printer id of a retained discovery config this box published for a printer it no longer has, or
        None. Whose it is tells its availability list: this box's own topic (another box on the same broker has its
        own prefix, and anything else is not bambupi's)."""
        head, _, rest = topic.partition(f"{self.discovery}/")
        parts = rest.split("/")
        if head or len(parts) != 4 or parts[3] != "config" or not parts[1].startswith("bambupi_") or not payload:
            return None
        printer_id = parts[1].removeprefix("bambupi_")
        if printer_id in printers:
            return None
        try:
            config = json.loads(payload)
        except ValueError:
            return None
        entries = config.get("availability") if isinstance(config, dict) else None
        ours = isinstance(entries, list) and any(
            isinstance(entry, dict) and entry.get("topic") == self.availability for entry in entries
        )
        return printer_id if ours else None


def topics_of(settings: BridgeConfig) -> Topics:
    return Topics(settings.topic_prefix, settings.discovery_prefix)


# -- the state document -------------------------------------------------------------------------------------------


def state_document(printer: Mapping[str, Any]) -> dict[str, Any]:
    """The retained JSON of one printer (``<prefix>/<id>/state``): its normalised state, flattened for templates,
    with the facts every surface derives (HMS count and worst severity, the door in words, the trays by slot)."""
    state: Mapping[str, Any] = printer.get("state") or {}
    hms = [entry for entry in state.get("hms") or [] if isinstance(entry, Mapping)]
    door = state.get("door_open")
    lights = state.get("lights") or {}
    light = lights.get("chamber_light") if isinstance(lights, Mapping) else None
    return {
        "connection": printer.get("connection"),
        "connection_reason": printer.get("connection_reason"),
        "last_report_at": printer.get("last_report_at"),
        "controls_available": printer.get("controls_available"),
        "phase": printer.get("phase"),
        "gcode_state": state.get("gcode_state"),
        "job": state.get("subtask_name"),
        "percent": state.get("percent"),
        "remaining_min": state.get("remaining_min"),
        "layer": state.get("layer"),
        "total_layers": state.get("total_layers"),
        "nozzle_temp": state.get("nozzle_temp"),
        "nozzle_target": state.get("nozzle_target"),
        "bed_temp": state.get("bed_temp"),
        "bed_target": state.get("bed_target"),
        "chamber_temp": state.get("chamber_temp"),
        "print_error": state.get("print_error"),
        "print_error_text": state.get("print_error_text"),
        "hms_count": len(hms),
        "hms_worst": worst_severity(hms),
        "hms": [
            {key: entry.get(key) for key in ("code", "severity", "description", "url", "standing")} for entry in hms
        ],
        "door": None if door is None else ("open" if door else "closed"),
        "light": light if light in ("on", "off") else None,
        "speed_level": state.get("speed_level"),
        "wifi_dbm": state.get("wifi_dbm"),
        "trays": trays(state),
    }


def worst_severity(hms: list[Mapping[str, Any]]) -> str:
    """The most severe of the active HMS entries, ``none`` without any."""
    found = {entry.get("severity") for entry in hms}
    return next((severity for severity in SEVERITIES if severity in found), WORST_NONE)


def trays(state: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every AMS tray by ``<unit>_<tray>`` (``0_2``): ``{type, color, remain, empty}``; ``color`` as ``#RRGGBB``."""
    found: dict[str, dict[str, Any]] = {}
    units = (state.get("ams") or {}).get("units") or {}
    for unit_id, unit in units.items():
        if not isinstance(unit, Mapping):
            continue
        for tray_id, tray in (unit.get("trays") or {}).items():
            if not isinstance(tray, Mapping):
                continue
            empty = bool(tray.get("empty"))
            found[f"{unit_id}_{tray_id}"] = {
                "type": None if empty else tray.get("type"),
                "color": None if empty else tray.get("color"),  # the state's "#RRGGBB" already
                "remain": None if empty else tray.get("remain"),
                "empty": empty,
            }
    return found


def availability(printer: Mapping[str, Any]) -> str:
    """``<prefix>/<id>/availability``: the printer's values are current only while it reports."""
    return ONLINE if printer.get("connection") == "online" else OFFLINE


def encode(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


# -- discovery -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Printer:
    """What discovery needs of one printer beyond its state: its id, serial (the device's identity), name, model,
    and whether its camera is on."""

    id: str
    serial: str
    name: str
    model: str
    camera: bool


def discovery_configs(
    printer: Printer,
    document: Mapping[str, Any],
    settings: BridgeConfig,
    *,
    box_url: str | None = None,
) -> dict[str, bytes]:
    """Every discovery topic of ``printer`` and its retained payload: a config (JSON), or empty bytes for an entity
    that must go (buttons while control is off, so Home Assistant removes them)."""
    topics = topics_of(settings)
    pid = printer.id
    info = model_info(printer.model)
    state_topic = topics.printer(pid, "state")
    device: dict[str, Any] = {
        "identifiers": [f"bambupi_{printer.serial}"],
        "name": printer.name,
        "manufacturer": "Bambu Lab",
        "model": printer.model,
        "serial_number": printer.serial,
    }
    if box_url:
        device["configuration_url"] = box_url
    box_only = [{"topic": topics.availability}]
    both = [*box_only, {"topic": topics.printer(pid, "availability")}]

    def entity(object_id: str, name: str, *, component: str = "sensor", current: bool = True,
               **fields: Any) -> dict[str, Any]:
        return {
            "name": name,
            "unique_id": f"bambupi_{printer.serial}_{object_id}",
            # The entity's id in Home Assistant (sensor.garage_progress); "object_id" before Home Assistant 2025.10.
            "default_entity_id": f"{component}.{pid}_{object_id}",
            "device": device,
            "origin": {"name": "bambupi", "sw_version": __version__},
            # A printer's values are current only while it reports; its connection is known while the box is.
            "availability": both if current else box_only,
            "availability_mode": "all",
            **fields,
        }

    def value(key: str) -> dict[str, Any]:
        return {"state_topic": state_topic, "value_template": _jinja("{{ value_json.@ }}", key)}

    def temperature(key: str, name: str, **fields: Any) -> dict[str, Any]:
        return entity(
            key, name, **value(key), device_class="temperature", unit_of_measurement="°C",
            state_class="measurement", **fields,
        )

    configs: dict[str, dict[str, Any] | None] = {}
    sensors = [
        temperature("nozzle_temp", "Nozzle temperature"),
        temperature("nozzle_target", "Nozzle target", entity_category="diagnostic"),
        temperature("bed_temp", "Bed temperature"),
        temperature("bed_target", "Bed target", entity_category="diagnostic"),
        entity("progress", "Progress", **value("percent"), unit_of_measurement="%", state_class="measurement",
               icon="mdi:progress-clock"),
        entity("remaining", "Remaining time", **value("remaining_min"), device_class="duration",
               unit_of_measurement="min", state_class="measurement"),
        entity("layer", "Layer", **value("layer"), state_class="measurement", icon="mdi:layers-triple",
               json_attributes_topic=state_topic,
               json_attributes_template="{{ {'total_layers': value_json.total_layers} | tojson }}"),
        entity("phase", "Phase", **value("phase"), device_class="enum", options=list(PHASES),
               json_attributes_topic=state_topic,
               json_attributes_template="{{ {'job': value_json.job, 'print_error': value_json.print_error, "
               "'print_error_text': value_json.print_error_text} | tojson }}"),
        entity("gcode_state", "Printer state", **value("gcode_state"), device_class="enum",
               options=list(GCODE_STATES), entity_category="diagnostic"),
        entity("job", "Job", **value("job"), icon="mdi:file-outline"),
        entity("hms_count", "HMS errors", **value("hms_count"), state_class="measurement", icon="mdi:alert"),
        entity("hms_worst", "Worst HMS severity", **value("hms_worst"), device_class="enum",
               options=[WORST_NONE, *SEVERITIES], json_attributes_topic=state_topic,
               json_attributes_template="{{ {'hms': value_json.hms} | tojson }}"),
    ]
    if info.has_chamber_sensor:
        sensors.append(temperature("chamber_temp", "Chamber temperature"))
    for tray_key in sorted(document.get("trays") or {}):
        unit, _, tray = tray_key.partition("_")
        sensors.append(entity(
            f"tray_{tray_key}", f"AMS {_unit_name(unit)} tray {_number(tray) + 1}",
            state_topic=state_topic,
            # A tray the printer no longer lists (an AMS unplugged) reads as empty until its config is renewed.
            value_template=_jinja("{{ (value_json.trays['@'].type or 'empty') if value_json.trays['@'] is defined "
                                  "else 'empty' }}", tray_key),
            json_attributes_topic=state_topic,
            json_attributes_template=_jinja("{{ (value_json.trays['@'] if value_json.trays['@'] is defined "
                                            "else {}) | tojson }}", tray_key),
            icon="mdi:printer-3d-nozzle",
        ))
    for config in sensors:
        configs[topics.config("sensor", pid, _object(config))] = config
    connection = entity(
        "connection", "Connection", component="binary_sensor", current=False, state_topic=state_topic,
        value_template="{{ 'ON' if value_json.connection == 'online' else 'OFF' }}",
        payload_on="ON", payload_off="OFF", device_class="connectivity", entity_category="diagnostic",
        json_attributes_topic=state_topic,
        json_attributes_template="{{ {'connection': value_json.connection, "
        "'reason': value_json.connection_reason} | tojson }}",
    )
    configs[topics.config("binary_sensor", pid, "connection")] = connection
    if info.door is not None:
        door = entity(
            "door", "Door", component="binary_sensor", state_topic=state_topic,
            value_template="{{ 'ON' if value_json.door == 'open' else ('OFF' if value_json.door == 'closed' "
            "else 'None') }}",
            payload_on="ON", payload_off="OFF", device_class="door",
        )
        configs[topics.config("binary_sensor", pid, "door")] = door
    events = entity(
        "events", "Events", component="event", current=False, state_topic=topics.printer(pid, "event"),
        event_types=list(EVENT_TYPES), icon="mdi:bell-outline",
    )
    configs[topics.config("event", pid, "events")] = events
    camera_topic = topics.config("image", pid, "camera")
    if printer.camera and settings.snapshot_interval_s > 0:
        configs[camera_topic] = entity(
            "camera", "Camera", component="image", image_topic=topics.printer(pid, "camera"), content_type="image/jpeg",
        )
    else:
        configs[camera_topic] = None
    for command, (name, icon) in BUTTONS.items():
        topic = topics.config("button", pid, command)
        configs[topic] = entity(
            command, name, component="button", command_topic=topics.printer(pid, "command"), payload_press=command,
            icon=icon,
        ) if settings.allow_control else None
    return {topic: b"" if config is None else encode(config) for topic, config in configs.items()}


def _jinja(template: str, key: str) -> str:
    """A Home Assistant template with ``@`` standing for ``key`` (Jinja's braces make format strings unreadable)."""
    return template.replace("@", key)


def _object(config: Mapping[str, Any]) -> str:
    """The object id in a config's topic: its unique id less the device's part."""
    return str(config["unique_id"]).split("_", 2)[2]


def _number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def _unit_name(unit: str) -> str:
    """AMS units as the printer's screen counts them (1, 2, ...); AMS HT (ids 128+) as HT 1, HT 2, ..."""
    number = _number(unit)
    return f"HT {number - 127}" if number >= 128 else str(number + 1)


# -- events and commands ------------------------------------------------------------------------------------------


def event_payload(event: Mapping[str, Any]) -> bytes:
    """An event as ``<prefix>/<id>/event`` carries it: the hub's event with ``event_type`` (its kind) for Home
    Assistant's event entity."""
    return encode({"event_type": event.get("kind"), **event})


def parse_command(payload: bytes) -> str:
    """The command in a ``<prefix>/<id>/command`` message; ValueError with words for anything else."""
    if len(payload) > COMMAND_MAX_BYTES:
        raise ValueError(f"a command is one word; this one is {len(payload)} bytes")
    text = payload.decode("utf-8", "replace").strip().lower()
    if text.startswith("{"):  # {"command": "pause"}, as a script might send it
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        text = str(body.get("command", "")).strip().lower() if isinstance(body, dict) else ""
    if text not in COMMANDS:
        raise ValueError(f"unknown command {text[:40]!r}; use {', '.join(COMMANDS)}")
    return text


def result_payload(command: str | None, result: str, reason: str | None) -> bytes:
    """``<prefix>/<id>/command/result``: what came of a command from the broker (``success``, ``refused``,
    ``failed``, or the printer's own answer), and why."""
    return encode({"command": command, "result": result, "reason": reason})
