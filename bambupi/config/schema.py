"""Which TOML table fills which dataclass, and how each of its keys is checked: :data:`SCHEMA`.

Adding a section is declaring it: a frozen dataclass in :mod:`bambupi.config.model`, a field on ``Config``, and an
entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar, get_args

from bambupi.config.model import (
    AlertsConfig,
    BridgeConfig,
    BuzzerKind,
    CameraAccess,
    CameraConfig,
    CameraMode,
    DiscoveryConfig,
    FacadeConfig,
    FilamentConfig,
    GpioDriver,
    HistoryConfig,
    HmsLanguage,
    HmsSeverity,
    LightSensorKind,
    NotifyConfig,
    NotifyKind,
    NotifyTopic,
    OledDriver,
    PanelConfig,
    PlugConfig,
    PlugKind,
    PowerConfig,
    PrinterConfig,
    StorageConfig,
    SystemConfig,
    WebConfig,
)
from bambupi.config.validators import (
    Validator,
    bridge_problems,
    facade_problems,
    system_problems,
    valid_abs_path,
    valid_access_code,
    valid_api_token,
    valid_bool,
    valid_broker_ca,
    valid_choice,
    valid_entity_id,
    valid_facade_code,
    valid_fingerprint,
    valid_float,
    valid_host,
    valid_host_port,
    valid_hostname,
    valid_http_url,
    valid_http_url_or_empty,
    valid_int,
    valid_model,
    valid_notify_events,
    valid_password_hash,
    valid_percent_list,
    valid_pin,
    valid_plug_address,
    valid_port,
    valid_printer_id,
    valid_printer_ids,
    valid_quiet_hours,
    valid_rotation,
    valid_serial,
    valid_snapshot_interval,
    valid_ssh_key,
    valid_string,
    valid_time_zone,
    valid_token,
    valid_topic_prefix,
    valid_wifi_country,
    valid_wifi_password,
    valid_wifi_ssid,
)


@dataclass(frozen=True)
class Option:
    validator: Validator
    required: bool = False
    default_from: str | None = None  # when absent, take this sibling key's value (printer.name <- printer.id)
    into: tuple[str, ...] = ()  # dataclass fields filled from the validated tuple; default: the key's name
    secret: bool = False
    is_list: bool = False  # the value is a TOML array (the settings page edits it as a comma-separated list)
    choices: tuple[str, ...] = ()  # the values it takes, when it is a choice (see one_of)


def one_of(choices: Any, *, required: bool = False) -> Option:
    """The option whose values are the Literal type ``choices`` (e.g. ``PlugKind``): its check and the list the
    settings page offers both come from the type."""
    values: tuple[str, ...] = get_args(choices)
    return Option(valid_choice(*values), required=required, choices=values)


@dataclass(frozen=True)
class Kind:
    """What one kind of a table (a plug's, a channel's ``kind``) takes beyond the keys every kind takes.

    A key that some other kind takes is an error on this one, naming the key: a Home Assistant token on a Tasmota
    plug would otherwise be ignored without a word (as Moonraker's power devices declare their options per type).
    """

    takes: tuple[str, ...] = ()  # optional keys of this kind
    requires: tuple[str, ...] = ()  # keys it cannot work without
    # Keys another kind takes, refused here with this reason instead of the plain "not used by" (likely mix-ups).
    refuses: Mapping[str, str] = field(default_factory=dict)
    # Secret keys that are no secret for this kind: shown, not masked (ntfy's server URL; a Discord URL is a token).
    shown: tuple[str, ...] = ()


KindName = TypeVar("KindName", bound=str)


@dataclass(frozen=True)
class Kinds(Generic[KindName]):
    """The kinds of one section's tables, by the value of their ``kind`` key."""

    noun: str  # what one table is called in a message: "plug", "channel"
    of: Mapping[KindName, Kind]

    @property
    def specific(self) -> frozenset[str]:
        """The keys only some kinds take: every other key of the section belongs to every kind."""
        return frozenset(key for kind in self.of.values() for key in (*kind.takes, *kind.requires))

    def problems(self, table: Mapping[str, Any], values: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(key, message) for each key of ``table`` its kind does not take, and each one it requires that is
        missing from the valid ``values`` (a key that failed its own check has its own error)."""
        name = values.get("kind")
        kind = next((k for n, k in self.of.items() if n == name), None)
        if kind is None:  # no kind, or a wrong one: that is the error to fix first
            return []
        own = {*kind.takes, *kind.requires}
        problems = []
        for key in table:
            if key in self.specific and key not in own:
                also = f" (a {name} {self.noun} takes: {', '.join(sorted(own))})" if own else ""
                problems.append((key, kind.refuses.get(key) or f"not used by a {name} {self.noun}{also}"))
        return problems + [
            (key, f"required for a {name} {self.noun}") for key in kind.requires if key not in table
        ]


@dataclass(frozen=True)
class Section:
    cls: Callable[..., Any]  # the frozen dataclass built from the section's keys
    attr: str  # the Config field it fills
    options: Mapping[str, Option]
    many: bool = False  # [[name]]: an array of tables, Config field is a tuple
    unique: tuple[str, ...] = ()  # keys whose values must differ between the tables of a [[name]] array
    # Rules across the keys of one table: (key, message) for each problem, given the validated values.
    check: Callable[[Mapping[str, Any]], list[tuple[str, str]]] | None = None
    # Sub-tables inside each table, e.g. [printer.plug] under every [[printer]]; built into the field of that name.
    tables: Mapping[str, Section] = field(default_factory=dict)
    kinds: Kinds[Any] | None = None  # the section's tables come in kinds (their "kind" key) that take different keys


# What each kind of plug takes (the drivers in bambupi.power.plugs use exactly these).
PLUG_KINDS: Final[Mapping[PlugKind, Kind]] = {
    "tasmota": Kind(takes=("username", "password")),
    "shelly1": Kind(takes=("username", "password", "channel")),
    "shelly2": Kind(takes=("password", "channel"), refuses={"username": "a Shelly Gen2 plug always uses admin"}),
    "homeassistant": Kind(
        takes=("power_entity",),
        requires=("token", "entity"),
        refuses={"password": "Home Assistant uses a token, not a password"},
    ),
}

# What each kind of notification channel takes (bambupi.notify.channels builds each one's requests from these).
NOTIFY_KINDS: Final[Mapping[NotifyKind, Kind]] = {
    "ntfy": Kind(takes=("url", "token"), requires=("topic",), shown=("url",)),
    "pushover": Kind(takes=("api_url", "sound"), requires=("token", "user_key")),
    "telegram": Kind(takes=("api_url",), requires=("token", "chat_id")),
    "discord": Kind(requires=("url",)),
    "webhook": Kind(takes=("secret",), requires=("url",)),
}

PLUG_SECTION: Final = Section(
    PlugConfig,
    "plug",
    {
        "kind": one_of(PlugKind, required=True),
        "address": Option(valid_plug_address, required=True),
        "username": Option(valid_string),
        "password": Option(valid_token, secret=True),
        "token": Option(valid_api_token, secret=True),
        "entity": Option(valid_entity_id),
        "power_entity": Option(valid_entity_id),
        "channel": Option(valid_int(0, 15)),
        "timeout_s": Option(valid_float(0.1, 60)),
        "price_per_kwh": Option(valid_float(0, 100)),
        "currency": Option(lambda v: valid_string(v, max_length=8)),
        "printing_watts": Option(valid_float(1, 5000)),
        "auto_off": Option(valid_bool),
        "auto_off_after_failure": Option(valid_bool),
        "auto_off_nozzle_below_c": Option(valid_float(20, 300)),
        "auto_off_after_min": Option(valid_float(0, 24 * 60)),
        "auto_off_warning_s": Option(valid_float(0, 3600)),
        "auto_off_when_offline": Option(valid_bool),
    },
    kinds=Kinds("plug", PLUG_KINDS),
)

SCHEMA: Final[Mapping[str, Section]] = {
    "web": Section(
        WebConfig,
        "web",
        {
            "listen": Option(valid_host_port, into=("host", "port")),
            "max_connections": Option(valid_int(1, 100_000)),
            "max_connections_per_client": Option(valid_int(1, 100_000)),
            "max_body_bytes": Option(valid_int(1024, 1 << 30)),
            "max_header_bytes": Option(valid_int(1024, 1 << 20)),
            "read_timeout_s": Option(valid_float(0.1, 3600)),
            "admin_password_hash": Option(valid_password_hash, secret=True),
            "camera_requires_login": Option(valid_bool),
            "camera_access": one_of(CameraAccess),
            "session_hours": Option(valid_float(0.1, 24 * 365)),
        },
    ),
    "printer": Section(
        PrinterConfig,
        "printers",
        {
            "id": Option(valid_printer_id, required=True),
            "name": Option(valid_string, default_from="id"),
            "model": Option(valid_model, required=True),
            "host": Option(valid_host, required=True),
            "serial": Option(valid_serial, required=True),
            "access_code": Option(valid_access_code, required=True, secret=True),
            "mqtt_port": Option(valid_port),
            "ftps_port": Option(valid_port),
            "camera": one_of(CameraMode),
            "camera_port": Option(valid_port),
            "tls_fingerprint": Option(valid_fingerprint),
            "stale_after_s": Option(valid_float(1, 86400)),
            "offline_after_s": Option(valid_float(1, 86400)),
            "reconnect_max_s": Option(valid_float(0.1, 86400)),
            "connect_timeout_s": Option(valid_float(0.1, 600)),
        },
        many=True,
        unique=("id", "serial"),
        tables={"plug": PLUG_SECTION},
    ),
    "panel": Section(
        PanelConfig,
        "panel",
        {
            "oled": one_of(OledDriver),
            "gpio": one_of(GpioDriver),
            "i2c_port": Option(valid_int(0, 31)),
            "i2c_address": Option(valid_int(0x03, 0x77)),
            "rotation": Option(valid_rotation),
            "contrast": Option(valid_int(0, 255)),
            "dim_contrast": Option(valid_int(0, 255)),
            "led_green": Option(valid_pin),
            "led_amber": Option(valid_pin),
            "led_red": Option(valid_pin),
            "buzzer_pin": Option(valid_pin),
            "button": Option(valid_pin),
            "buzzer": one_of(BuzzerKind),
            "rotate_s": Option(valid_float(1, 3600)),
            "dim_after_s": Option(valid_float(1, 86400 * 7)),
            "off_after_s": Option(valid_float(1, 86400 * 7)),
            "offline_grace_s": Option(valid_float(0, 86400)),
            "finished_hold_s": Option(valid_float(0, 86400 * 7)),
            "door_chirp": Option(valid_bool),
            "door_light": Option(valid_bool),
            "door_light_s": Option(valid_float(10, 86400)),
            "night_contrast": Option(valid_int(0, 255)),
            "night_led_level": Option(valid_float(0, 1)),
            "sleep_after_s": Option(valid_float(0, 86400 * 7)),
            "light_sensor": one_of(LightSensorKind),
            "light_sensor_address": Option(valid_int(0x03, 0x77)),
        },
    ),
    "alerts": Section(
        AlertsConfig,
        "alerts",
        {
            "time_zone": Option(valid_time_zone),
            "quiet_hours": Option(valid_quiet_hours),
            "language": one_of(HmsLanguage),
            "hms_service": Option(valid_http_url),
            "ending_soon_min": Option(valid_float(0, 600)),
        },
    ),
    "storage": Section(StorageConfig, "storage", {"path": Option(valid_abs_path)}),
    "camera": Section(
        CameraConfig,
        "camera",
        {
            "linger_s": Option(valid_float(0, 3600)),
            "keep_open_while_printing": Option(valid_bool),
            "write_timeout_s": Option(valid_float(0.5, 600)),
            "history_count": Option(valid_int(0, 10_000)),
            "history_mb": Option(valid_float(1, 100_000)),
            "decoder_fps": Option(valid_float(0.1, 30)),
            "decoder_width": Option(valid_int(0, 3840)),
            "decoder_stall_s": Option(valid_float(2, 600)),
        },
    ),
    "notify": Section(
        NotifyConfig,
        "notify",
        {
            "name": Option(valid_printer_id, required=True),
            "kind": one_of(NotifyKind, required=True),
            "enabled": Option(valid_bool),
            "url": Option(valid_http_url, secret=True),  # a Discord webhook URL carries its token
            "topic": Option(valid_string),
            "token": Option(valid_api_token, secret=True),
            "user_key": Option(valid_api_token, secret=True),
            "chat_id": Option(valid_string),
            "secret": Option(valid_token, secret=True),
            "api_url": Option(valid_http_url),
            "sound": Option(valid_string),
            "events": Option(valid_notify_events, is_list=True, choices=get_args(NotifyTopic)),
            "min_severity": one_of(HmsSeverity),
            "offline_grace_s": Option(valid_float(0, 86400)),
            "dedup_window_s": Option(valid_float(0, 86400)),
            "progress": Option(valid_percent_list, is_list=True),
            "attach_snapshot": Option(valid_bool),
        },
        many=True,
        unique=("name",),
        kinds=Kinds("channel", NOTIFY_KINDS),
    ),
    "discovery": Section(
        DiscoveryConfig, "discovery", {"enabled": Option(valid_bool), "port": Option(valid_int(0, 65535))}
    ),
    "system": Section(
        SystemConfig,
        "system",
        {
            "hostname": Option(valid_hostname),
            "wifi_country": Option(valid_wifi_country),
            "wifi_ssid": Option(valid_wifi_ssid),
            "wifi_password": Option(valid_wifi_password, secret=True),
            "ssh_authorized_key": Option(valid_ssh_key),
        },
        check=system_problems,
    ),
    "filament": Section(
        FilamentConfig,
        "filament",
        {
            "low_g": Option(valid_float(0, 100_000)),
            # Secret: a URL may carry the credentials of a proxy in front of the server.
            "spoolman_url": Option(valid_http_url_or_empty, secret=True),
            "spoolman_sync_s": Option(valid_float(5, 86400)),
        },
    ),
    "power": Section(
        PowerConfig,
        "power",
        {"sample_interval_s": Option(valid_float(0.05, 3600)), "flush_interval_s": Option(valid_float(0.05, 3600))},
    ),
    "bridge": Section(
        BridgeConfig,
        "bridge",
        {
            "enabled": Option(valid_bool),
            "host": Option(valid_host),
            "port": Option(valid_port),
            "tls": Option(valid_bool),
            "ca": Option(valid_broker_ca),
            "username": Option(lambda v: valid_string(v, max_length=256)),
            "password": Option(valid_token, secret=True),
            "topic_prefix": Option(valid_topic_prefix),
            "discovery_prefix": Option(valid_topic_prefix),
            "allow_control": Option(valid_bool),
            "snapshot_interval_s": Option(valid_snapshot_interval),
            "connect_timeout_s": Option(valid_float(0.1, 600)),
            "reconnect_max_s": Option(valid_float(0.1, 86400)),
        },
        check=bridge_problems,
    ),
    "facade": Section(
        FacadeConfig,
        "facade",
        {
            "enabled": Option(valid_bool),
            "host": Option(valid_host),
            "mqtt_port": Option(valid_int(0, 65535)),  # 0: any free port (tests)
            "camera_port": Option(valid_int(0, 65535)),
            "access_code": Option(valid_facade_code, secret=True),
            "allow_control": Option(valid_bool),
            "printers": Option(valid_printer_ids, is_list=True),
            "camera_fps": Option(valid_float(0.1, 30)),
            "camera_width": Option(valid_int(64, 3840)),
            "camera_height": Option(valid_int(64, 2160)),
            "max_clients": Option(valid_int(1, 1000)),
        },
        check=facade_problems,
    ),
    "history": Section(
        HistoryConfig,
        "history",
        {
            "fetch_job_file": Option(valid_bool),
            "max_file_mb": Option(valid_float(1, 4096)),
            "fetch_timeout_s": Option(valid_float(1, 3600)),
        },
    ),
}

SECRET_KEYS: Final = frozenset(
    key
    for s in [*SCHEMA.values(), *(t for s in SCHEMA.values() for t in s.tables.values())]
    for key, o in s.options.items()
    if o.secret
)
