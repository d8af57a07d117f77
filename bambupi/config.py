"""bambupi's configuration: declared once, read with tomlkit, every problem naming its key path.

The dataclasses at the top are the interface the rest of bambupi imports. Below them, :data:`SCHEMA` declares
which TOML table fills which dataclass and how each key is checked; the ``valid_*`` functions are the checks.
Defaults live in one place only: the dataclass fields (a key that is absent is simply not passed).

Adding a section is declaring it: a frozen dataclass, a field on :class:`Config`, and an entry in :data:`SCHEMA`.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import logging
import math
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, TextIO

import tomlkit
from tomlkit.exceptions import KeyAlreadyPresent, ParseError, TOMLKitError

from bambupi.panel.pins import DEFAULT_PINS
from bambupi.passwords import parse_password_hash
from bambupi.printer.models import KNOWN_MODELS, normalise_model
from bambupi.secret import Secret, redact

log = logging.getLogger("bambupi.config")

DEFAULT_CONFIG_PATH = Path("/etc/bambupi/bambupi.toml")
DEFAULT_STORAGE_PATH = Path("/var/lib/bambupi/bambupi.sqlite3")
EXAMPLE_CONFIG_PATH: Final = Path(__file__).resolve().parent / "data" / "bambupi.example.toml"
PINS_FILE_NAME: Final = "tls-pins.json"
# Beside the database: the SD-card image's first boot writes here why it rejected the bambupi.toml on the boot
# partition (one problem per line), so the OLED can say so; removed when a file is applied.
SETUP_ERRORS_FILE_NAME: Final = "setup-errors.txt"


@dataclass(frozen=True)
class PrinterConfig:
    id: str
    name: str
    model: str
    host: str
    serial: str
    access_code: Secret
    mqtt_port: int = 8883
    camera: str = "auto"  # auto | off
    camera_port: int | None = None  # None = the model's default (6000 or 322)
    tls_fingerprint: str | None = None  # "sha256:<64 hex>"
    stale_after_s: float = 60.0  # no report for this long -> stale, reconnect, pushall
    offline_after_s: float = 120.0  # no report for this long (since the last one) -> offline
    reconnect_max_s: float = 60.0  # backoff cap
    connect_timeout_s: float = 10.0
    plug: PlugConfig | None = None  # [printer.plug]: the smart plug this printer is powered from


@dataclass(frozen=True)
class PlugConfig:
    """A printer's smart plug (``[printer.plug]``): how to reach it, what energy costs, the auto-off policy."""

    kind: str  # tasmota | shelly1 | shelly2 | homeassistant
    address: str  # base URL, e.g. "http://192.168.1.60" (a bare host gets http://)
    username: str | None = None  # Tasmota/Shelly Gen1 web user; Shelly Gen2 always uses "admin"
    password: Secret | None = None
    token: Secret | None = None  # Home Assistant long-lived access token
    entity: str | None = None  # Home Assistant switch entity, e.g. "switch.printer_plug"
    power_entity: str | None = None  # Home Assistant power sensor (W), optional
    channel: int = 0  # Shelly relay/switch id
    timeout_s: float = 5.0
    price_per_kwh: float | None = None
    currency: str = ""
    printing_watts: float = 50.0  # at or above this the printer is working (cross-checks)
    auto_off: bool = False
    auto_off_after_failure: bool = False
    auto_off_nozzle_below_c: float = 50.0
    auto_off_after_min: float = 5.0
    auto_off_warning_s: float = 60.0
    auto_off_when_offline: bool = False  # switch off even when the printer's state is unknown (link down)


@dataclass(frozen=True)
class PowerConfig:
    sample_interval_s: float = 10.0  # plug readings
    flush_interval_s: float = 60.0  # buffered samples are written this often (and at every print event)


@dataclass(frozen=True)
class WebConfig:
    host: str = "0.0.0.0"
    port: int = 8080
    max_connections: int = 200
    max_body_bytes: int = 1024 * 1024
    max_header_bytes: int = 16 * 1024
    read_timeout_s: float = 15.0
    admin_password_hash: Secret | None = None  # set with `bambupi set-password` or the first-visit page
    camera_requires_login: bool = False
    session_hours: float = 24 * 7
    # One address may hold only this many: a slowloris from one machine cannot take every slot from the others.
    max_connections_per_client: int = 32


@dataclass(frozen=True)
class PanelConfig:
    oled: str = "auto"  # auto | ssd1306 | sh1106 | virtual | none
    gpio: str = "auto"  # auto | virtual | none
    i2c_port: int = DEFAULT_PINS.i2c_port
    i2c_address: int = DEFAULT_PINS.i2c_address
    rotation: int = 0  # degrees: 0 | 90 | 180 | 270 (a 128x64 picture, so 0 or 180 in practice)
    contrast: int = 255
    dim_contrast: int = 8
    led_green: str = DEFAULT_PINS.led_green  # gpiozero pin names (GPIO17, BOARD11, ...)
    led_amber: str = DEFAULT_PINS.led_amber
    led_red: str = DEFAULT_PINS.led_red
    buzzer_pin: str = DEFAULT_PINS.buzzer
    button: str = DEFAULT_PINS.button
    buzzer: str = "active"  # active (on/off) | passive (tones through PWM) | none
    rotate_s: float = 8.0  # each screen shows this long before the next
    dim_after_s: float = 300.0  # nothing changed this long: dim the screen
    off_after_s: float = 1800.0  # ...and switch it off, unless printing or alarmed
    offline_grace_s: float = 60.0  # red slow blink for an offline printer whose reports stopped this long ago


# The languages Bambu's HMS service publishes texts in (its ``lang`` parameter).
HMS_LANGUAGES: Final = (
    "en", "de", "fr", "es", "it", "nl", "pl", "pt", "pt-br", "sv", "da", "cs", "sk", "hu", "ru", "uk", "tr", "el",
    "ca", "ja", "ko", "th", "zh-cn",
)


@dataclass(frozen=True)
class AlertsConfig:
    """Shared by the panel and notifications."""

    time_zone: str | None = None  # IANA name (Europe/Berlin); None = the system's time zone
    quiet_hours: tuple[tuple[int, int], tuple[int, int]] | None = None  # ((22, 0), (7, 0)): mute all but fatal
    language: str = "en"  # HMS and print-error texts: one of HMS_LANGUAGES
    # Where Bambu's own apps fetch the HMS texts (query.php); tests point it at a local stand-in.
    hms_service: str = "https://e.bambulab.com"


@dataclass(frozen=True)
class DiscoveryConfig:
    enabled: bool = True  # listen for printers' SSDP announcements (UDP 2021)
    port: int = 2021


@dataclass(frozen=True)
class NotifyConfig:
    """One notification channel (``[[notify]]``)."""

    name: str
    kind: str  # ntfy | pushover | telegram | discord | webhook
    enabled: bool = True
    url: str | None = None  # ntfy server (default https://ntfy.sh), Discord webhook URL, webhook URL
    topic: str | None = None  # ntfy
    token: Secret | None = None  # ntfy access token, Pushover app token, Telegram bot token
    user_key: Secret | None = None  # Pushover
    chat_id: str | None = None  # Telegram
    secret: Secret | None = None  # webhook: HMAC-SHA256 key for the X-Bambupi-Signature header
    api_url: str | None = None  # Pushover/Telegram API base, for self-hosted or test servers
    sound: str | None = None  # Pushover
    events: tuple[str, ...] = ("finished", "failed", "cancelled", "paused", "hms", "offline", "online", "power")
    min_severity: str = "serious"  # HMS errors at or above this
    offline_grace_s: float = 120.0
    dedup_window_s: float = 300.0
    progress: tuple[int, ...] = ()  # percent milestones, e.g. [25, 50, 75] (add "progress" to events)
    attach_snapshot: bool = True


@dataclass(frozen=True)
class CameraConfig:
    linger_s: float = 10.0  # the upstream stays open this long after the last viewer leaves
    keep_open_while_printing: bool = False  # hold the upstream open during every print
    write_timeout_s: float = 10.0  # a viewer that cannot take a frame for this long is closed
    history_count: int = 50  # snapshots kept per printer
    history_mb: float = 200.0  # snapshots kept in all

    @property
    def history_bytes(self) -> int:
        return int(self.history_mb * 1024 * 1024)


@dataclass(frozen=True)
class SystemConfig:
    """The appliance's own settings (``[system]``), applied by the SD-card image's first boot, not by the service."""

    hostname: str = "bambupi"  # the box answers as <hostname>.local
    wifi_country: str | None = None  # ISO 3166 code: which Wi-Fi channels and power are legal
    wifi_ssid: str | None = None
    wifi_password: Secret | None = None  # none = an open network
    ssh_authorized_key: str | None = None  # SSH stays off unless this is set


@dataclass(frozen=True)
class StorageConfig:
    path: Path = DEFAULT_STORAGE_PATH

    @property
    def folder(self) -> Path:
        return self.path.parent


@dataclass(frozen=True)
class Config:
    printers: tuple[PrinterConfig, ...] = ()
    web: WebConfig = field(default_factory=WebConfig)
    panel: PanelConfig = field(default_factory=PanelConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)
    notify: tuple[NotifyConfig, ...] = ()
    power: PowerConfig = field(default_factory=PowerConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    system: SystemConfig = field(default_factory=SystemConfig)
    source: Path | None = None  # the file this was loaded from; None when built in code (demo, tests)


def config_secrets(config: Config) -> list[Secret]:
    """Every secret in ``config``: what the log masks wherever it turns up (a Discord or webhook URL holds its key)."""
    plugs = [p.plug for p in config.printers if p.plug is not None]
    found: list[Secret | None] = [
        *(p.access_code for p in config.printers),
        *(s for plug in plugs for s in (plug.password, plug.token)),
        *(s for channel in config.notify for s in (channel.token, channel.user_key, channel.secret)),
        *(Secret(channel.url) for channel in config.notify if channel.url and channel.kind in ("discord", "webhook")),
        config.system.wifi_password,
        config.web.admin_password_hash,
    ]
    return [s for s in found if s]


# --- problems ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong (``error``: the service will not start) or odd (``warning``) in a config file.

    ``key`` is the exact key path (``printer[0].access_code``); ``line`` is 1-based and best effort.
    """

    level: Literal["error", "warning"]
    key: str
    message: str
    line: int | None = None
    source: str = "bambupi.toml"

    def __str__(self) -> str:
        parts = [self.source if self.line is None else f"{self.source}:{self.line}"]
        if self.level == "warning":
            parts.append("warning")
        if self.key:
            parts.append(self.key)
        parts.append(self.message)
        return ": ".join(parts)


class ConfigError(Exception):
    """The config has errors; ``str()`` lists every problem, one per line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def errors(problems: Sequence[Problem]) -> list[Problem]:
    return [p for p in problems if p.level == "error"]


# --- validators: take the TOML value, return the checked (maybe normalised) value or raise ValueError ------------

Validator = Callable[[Any], Any]


@dataclass(frozen=True)
class Warned:
    """What a validator returns to accept a value but tell the user (e.g. a model this version does not know)."""

    value: Any
    message: str


def _kind(value: object) -> str:
    # Names the TOML type only: a message must never echo a value that might be a secret.
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return "a date/time"


def _require_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string in quotes, got {_kind(value)}")
    return value


def _number(value: float) -> str:
    return f"{value:g}"


def valid_string(value: Any, *, max_length: int = 64) -> str:
    text = _require_str(value).strip()
    if not text:
        raise ValueError("must not be empty")
    if len(text) > max_length:
        raise ValueError(f"must be at most {max_length} characters, got {len(text)}")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise ValueError("must not contain control characters")
    return text


def valid_int(minimum: int, maximum: int) -> Validator:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be a whole number, got {_kind(value)}")
        if not minimum <= value <= maximum:
            raise ValueError(f"must be between {minimum} and {maximum}, got {value}")
        return value

    return check


def valid_float(minimum: float, maximum: float) -> Validator:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be a number, got {_kind(value)}")
        if not math.isfinite(value) or not minimum <= value <= maximum:
            raise ValueError(f"must be between {_number(minimum)} and {_number(maximum)}, got {_number(value)}")
        return float(value)

    return check


def valid_choice(*choices: str) -> Validator:
    def check(value: Any) -> str:
        text = _require_str(value).strip().lower()
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}; got {value!r}")
        return text

    return check


def valid_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {_kind(value)}")
    return value


def valid_password_hash(value: Any) -> Secret:
    text = _require_str(value)
    parse_password_hash(text)  # its messages never quote the value
    return Secret(text)


def valid_http_url(value: Any) -> str:
    text = _require_str(value).strip()
    if not re.match(r"^https?://[^\s/]+", text) or len(text) > 2048:
        raise ValueError("must be an http:// or https:// URL")
    return text.rstrip("/")


def valid_token(value: Any) -> Secret:
    # A secret: never quoted back.
    text = _require_str(value)
    if not text.strip() or len(text) > 4096:
        raise ValueError("must be a non-empty string")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text.strip()):
        # A line break pasted into the middle: no service issues such a secret, and a header with one is refused.
        raise ValueError("must not contain control characters (a line break pasted with it?)")
    return Secret(text.strip())


def valid_api_token(value: Any) -> Secret:
    """An API token or key sent in an HTTP header or URL (Bearer tokens, bot tokens, Pushover keys): services issue
    them as printable ASCII without spaces, and a character outside that cannot be sent in a header at all."""
    secret = valid_token(value)
    if not all(33 <= ord(ch) < 127 for ch in secret.reveal()):
        raise ValueError("must be printable ASCII without spaces, as the service issued it (a character pasted too?)")
    return secret


def valid_notify_events(value: Any) -> tuple[str, ...]:
    known = ("started", "finished", "failed", "cancelled", "paused", "hms", "offline", "online", "progress", "power")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"must be a list of event names from: {', '.join(known)}")
    unknown = [v for v in value if v not in known]
    if unknown:
        raise ValueError(f"unknown event {unknown[0]!r}; use: {', '.join(known)}")
    return tuple(value)


def valid_percent_list(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ValueError("must be a list of whole percentages, e.g. [25, 50, 75]")
    if any(not 1 <= v <= 99 for v in value):
        raise ValueError("percentages must be between 1 and 99")
    return tuple(sorted(set(value)))


def notify_problems(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Keys each kind of channel needs."""
    needs = {
        "ntfy": ("topic",),
        "pushover": ("token", "user_key"),
        "telegram": ("token", "chat_id"),
        "discord": ("url",),
        "webhook": ("url",),
    }.get(values.get("kind", ""), ())
    return [(key, f"required for a {values['kind']} channel") for key in needs if key not in values]


def valid_rotation(value: Any) -> int:
    degrees: int = valid_int(0, 270)(value)
    if degrees % 90:
        raise ValueError(f"must be 0, 90, 180 or 270, got {degrees}")
    return degrees


_PIN = re.compile(r"^(GPIO|BCM|BOARD|WPI|J8:|P1:)?[0-9]{1,2}$")


def valid_pin(value: Any) -> str:
    """A gpiozero pin name: GPIO17, BCM17, BOARD11, J8:11 or a plain BCM number as a string."""
    text = _require_str(value).strip().upper()
    if not _PIN.match(text):
        raise ValueError(f"must be a gpiozero pin name like GPIO17 or BOARD11; got {text!r}")
    return text


def valid_time_zone(value: Any) -> str:
    import zoneinfo

    text = _require_str(value).strip()
    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {text!r}; use an IANA name like Europe/Berlin") from None
    return text


_HHMM = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")


def valid_quiet_hours(value: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    """``"22:00-07:00"``: from, to (across midnight when to < from)."""
    text = _require_str(value).strip()
    start, dash, end = text.partition("-")
    times = [_HHMM.match(part.strip()) for part in (start, end)]
    if not dash or not times[0] or not times[1]:
        raise ValueError(f"must be HH:MM-HH:MM, like 22:00-07:00; got {text!r}")
    (h1, m1), (h2, m2) = ((int(t.group(1)), int(t.group(2))) for t in times if t)
    if (h1, m1) == (h2, m2):
        raise ValueError("start and end must differ")
    return (h1, m1), (h2, m2)


def valid_port(value: Any) -> int:
    port: int = valid_int(1, 65535)(value)
    return port


_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def valid_host(value: Any) -> str:
    """A hostname (``printer.local``), an IPv4 or an IPv6 address."""
    text = _require_str(value).strip()
    if not text:
        raise ValueError("must not be empty")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    labels = text.removesuffix(".").split(".")
    if len(text) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"must be a hostname or an IP address, got {text!r}")
    if labels[-1].isdigit():
        # All-numeric names are IPv4 attempts (192.168.1.300), never real hostnames.
        raise ValueError(f"not a valid IP address: {text!r}")
    return text


def valid_host_port(value: Any) -> tuple[str, int]:
    """``host:port`` or ``[ipv6]:port``; port 0 asks for any free port (tests)."""
    text = _require_str(value).strip()
    host, colon, port_text = text.rpartition(":")
    if not colon or not host or not port_text.isdigit():
        raise ValueError(f"must be host:port, like 0.0.0.0:8080; got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        try:
            host = str(ipaddress.IPv6Address(host[1:-1]))
        except ValueError:
            raise ValueError(f"not a valid IPv6 address: {host!r}") from None
    elif ":" in host:
        raise ValueError(f"put an IPv6 address in brackets, like [::]:8080; got {text!r}")
    else:
        host = valid_host(host)
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port must be between 0 and 65535, got {port}")
    return host, port


_PRINTER_ID = re.compile(r"^[a-z0-9_-]{1,32}$")


def valid_printer_id(value: Any) -> str:
    """A URL slug: it appears in /api/printers/<id>."""
    text = _require_str(value)
    if not _PRINTER_ID.match(text):
        raise ValueError(f"must be 1-32 lowercase letters, digits, '-' or '_' (it is used in URLs); got {text!r}")
    return text


def valid_access_code(value: Any) -> Secret:
    # Never put the value (or any part of it) into a message.
    text = _require_str(value)
    if len(text) != 8:
        raise ValueError(f"must be 8 characters (as shown on the printer's screen), got {len(text)}")
    if not text.isascii() or not text.isalnum():
        raise ValueError("must be letters and digits only")
    return Secret(text)


_SERIAL = re.compile(r"^[A-Z0-9]{8,20}$")


def valid_serial(value: Any) -> str:
    """The printer's serial (``01P00A000000000``), upper-cased: it is part of the MQTT topic."""
    text = _require_str(value).strip().upper()
    if not _SERIAL.match(text):
        raise ValueError(f"must be 8-20 letters and digits, like 01P00A000000000; got {text!r}")
    return text


def valid_model(value: Any) -> str | Warned:
    """Upper case without spaces or dashes ("a1 mini" -> "A1MINI"); an unknown model is only a warning."""
    model = normalise_model(_require_str(value))
    if not model:
        raise ValueError("must not be empty")
    if model not in KNOWN_MODELS:
        known = ", ".join(sorted(KNOWN_MODELS))
        return Warned(model, f"unknown model {model!r} (known: {known}); treating it as a newer model")
    return model


_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def valid_fingerprint(value: Any) -> str:
    """``sha256:`` and 64 hex digits; colons and upper case (as openssl prints it) are accepted and normalised."""
    text = _require_str(value).strip().lower()
    digits = text.removeprefix("sha256:").removeprefix("sha256 fingerprint=").replace(":", "")
    if not _HEX64.match(digits):
        raise ValueError("must be sha256: followed by 64 hex digits (colons allowed)")
    return "sha256:" + digits


def valid_abs_path(value: Any) -> Path:
    path = Path(valid_string(value, max_length=4096)).expanduser()
    if not path.is_absolute():
        raise ValueError(f"must be an absolute path, got {str(path)!r}")
    return path


def valid_plug_address(value: Any) -> str:
    """A plug's base URL: ``http://host[:port]`` (a bare host or host:port gets ``http://``), no path."""
    text = _require_str(value).strip().rstrip("/")
    if "://" not in text:
        text = "http://" + text
    if "@" in text.split("://", 1)[1].split("/", 1)[0]:
        # "user:password@host": a password typed into the address. Never quoted back: the message goes to
        # check-config's output, the settings page and the log.
        raise ValueError("must not hold a user name or password (put them in username and password)")
    match = re.match(r"^(https?)://(\[[0-9a-fA-F:]+\]|[^\s/:@\[\]]+)(?::(\d{1,5}))?(/[^\s]*)?$", text)
    if not match or (match.group(3) and not 1 <= int(match.group(3)) <= 65535):
        raise ValueError(f"must be an address like 192.168.1.60 or http://192.168.1.60:8123; got {text!r}")
    if not match.group(2).startswith("["):
        valid_host(match.group(2))
    return text


def valid_entity_id(value: Any) -> str:
    text = _require_str(value).strip()
    if not re.match(r"^[a-z_]+\.[a-z0-9_]+$", text):
        raise ValueError(f"must be a Home Assistant entity id like switch.printer_plug; got {text!r}")
    return text


def plug_problems(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Keys each kind of plug needs."""
    needs = {"homeassistant": ("token", "entity")}.get(values.get("kind", ""), ())
    problems = [(key, f"required for a {values['kind']} plug") for key in needs if key not in values]
    if "password" in values and values.get("kind") == "homeassistant":
        problems.append(("password", "Home Assistant uses a token, not a password"))
    return problems


_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def valid_hostname(value: Any) -> str:
    """One DNS label, lower case: the name the box announces as ``<name>.local``."""
    text = _require_str(value).strip().lower()
    if not _HOSTNAME.match(text):
        raise ValueError(f"must be 1-63 letters, digits or '-' (not first or last), like bambupi; got {text!r}")
    return text


def valid_wifi_country(value: Any) -> str:
    text = _require_str(value).strip().upper()
    if not re.match(r"^[A-Z]{2}$", text):
        raise ValueError(f"must be a two-letter country code like GB, US or DE; got {text!r}")
    return text


def valid_wifi_ssid(value: Any) -> str:
    text = _require_str(value)
    if not text or len(text.encode()) > 32:
        raise ValueError(f"must be 1-32 bytes (the network's name), got {len(text.encode())}")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise ValueError("must not contain control characters")
    return text


def valid_wifi_password(value: Any) -> Secret:
    # WPA2/WPA3-Personal: 8-63 printable ASCII characters, or the 64-hex-digit key itself. Never quoted back.
    text = _require_str(value)
    if re.match(r"^[0-9a-fA-F]{64}$", text):
        return Secret(text)
    if not 8 <= len(text) <= 63:
        raise ValueError(f"must be 8-63 characters (WPA2/WPA3), got {len(text)}")
    if not all(32 <= ord(ch) < 127 for ch in text):
        raise ValueError("must be printable ASCII characters only (WPA2/WPA3)")
    return Secret(text)


_SSH_KEY = re.compile(
    r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)"
    r"|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)"
    r" [A-Za-z0-9+/]{16,}={0,2}( [^\r\n]*)?$"
)


def valid_ssh_key(value: Any) -> str:
    """One OpenSSH public key line (the contents of ``id_ed25519.pub``)."""
    text = _require_str(value).strip()
    if "PRIVATE KEY" in text:
        raise ValueError("this is a private key: put the public key here (the .pub file), never the private one")
    if not _SSH_KEY.match(text):
        raise ValueError("must be one OpenSSH public key line, like 'ssh-ed25519 AAAA... you@laptop'")
    return text


def system_problems(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    problems = []
    if "wifi_password" in values and "wifi_ssid" not in values:
        problems.append(("wifi_ssid", "required with wifi_password"))
    if "wifi_ssid" in values and "wifi_country" not in values:
        problems.append(("wifi_country", "required with wifi_ssid: which channels are legal depends on the country"))
    return problems


# --- the schema -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    validator: Validator
    required: bool = False
    default_from: str | None = None  # when absent, take this sibling key's value (printer.name <- printer.id)
    into: tuple[str, ...] = ()  # dataclass fields filled from the validated tuple; default: the key's name
    secret: bool = False
    is_list: bool = False  # the value is a TOML array (the settings page edits it as a comma-separated list)


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


PLUG_SECTION: Final = Section(
    PlugConfig,
    "plug",
    {
        "kind": Option(valid_choice("tasmota", "shelly1", "shelly2", "homeassistant"), required=True),
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
    check=plug_problems,
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
            "camera": Option(valid_choice("auto", "off")),
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
            "oled": Option(valid_choice("auto", "ssd1306", "sh1106", "virtual", "none")),
            "gpio": Option(valid_choice("auto", "virtual", "none")),
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
            "buzzer": Option(valid_choice("active", "passive", "none")),
            "rotate_s": Option(valid_float(1, 3600)),
            "dim_after_s": Option(valid_float(1, 86400 * 7)),
            "off_after_s": Option(valid_float(1, 86400 * 7)),
            "offline_grace_s": Option(valid_float(0, 86400)),
        },
    ),
    "alerts": Section(
        AlertsConfig,
        "alerts",
        {
            "time_zone": Option(valid_time_zone),
            "quiet_hours": Option(valid_quiet_hours),
            "language": Option(valid_choice(*HMS_LANGUAGES)),
            "hms_service": Option(valid_http_url),
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
        },
    ),
    "notify": Section(
        NotifyConfig,
        "notify",
        {
            "name": Option(valid_printer_id, required=True),
            "kind": Option(valid_choice("ntfy", "pushover", "telegram", "discord", "webhook"), required=True),
            "enabled": Option(valid_bool),
            "url": Option(valid_http_url, secret=True),  # a Discord webhook URL carries its token
            "topic": Option(valid_string),
            "token": Option(valid_api_token, secret=True),
            "user_key": Option(valid_api_token, secret=True),
            "chat_id": Option(valid_string),
            "secret": Option(valid_token, secret=True),
            "api_url": Option(valid_http_url),
            "sound": Option(valid_string),
            "events": Option(valid_notify_events, is_list=True),
            "min_severity": Option(valid_choice("fatal", "serious", "common", "info")),
            "offline_grace_s": Option(valid_float(0, 86400)),
            "dedup_window_s": Option(valid_float(0, 86400)),
            "progress": Option(valid_percent_list, is_list=True),
            "attach_snapshot": Option(valid_bool),
        },
        many=True,
        unique=("name",),
        check=lambda values: notify_problems(values),
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
    "power": Section(
        PowerConfig,
        "power",
        {"sample_interval_s": Option(valid_float(0.05, 3600)), "flush_interval_s": Option(valid_float(0.05, 3600))},
    ),
}

SECRET_KEYS: Final = frozenset(
    key
    for s in [*SCHEMA.values(), *(t for s in SCHEMA.values() for t in s.tables.values())]
    for key, o in s.options.items()
    if o.secret
)


# --- finding lines ---------------------------------------------------------------------------------------------------

_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_KEY_LINE = re.compile(rf"^\s*({_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*=")
_HEADER_LINE = re.compile(rf"^\s*(\[\[?)\s*({_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*\]")


def _key_parts(dotted: str) -> list[str]:
    return [part.strip().strip("\"'") for part in re.findall(_KEY_PART, dotted)]


def key_lines(text: str) -> dict[str, int]:
    """Map key paths (``web.listen``, ``printer[1]``, ``printer[1].id``) to the 1-based line that defines them.

    A light scan of the source rather than a second parser: tomlkit keeps no line numbers, and an approximate line
    beside an exact key path is all a message needs.
    """
    return _scan_keys(text)[0]


def _duplicate_problem(exc: TOMLKitError, text: str, source: str) -> Problem:
    """A key or table written twice, by its path and the line of its second definition. tomlkit reports a
    duplicate inside a table without any position (``KeyAlreadyPresent``), so the scan finds it."""
    duplicates = _scan_keys(text)[1]
    if duplicates:
        path, line, first = duplicates[0]
        return Problem("error", path, f"duplicate key: already set on line {first}", line, source)
    # The scan missed it (an unusual way of writing keys): tomlkit's message names only the key.
    name = re.search(r'Key "(.*)" already exists', str(exc))
    return Problem("error", "", f"duplicate key {name.group(1) if name else ''}".rstrip(), None, source)


def _scan_keys(text: str) -> tuple[dict[str, int], list[tuple[str, int, int]]]:
    """The first line of every key path, and each path defined again: ``(path, line, first line)``."""
    lines: dict[str, int] = {}
    duplicates: list[tuple[str, int, int]] = []
    arrays: dict[str, int] = {}  # path of each [[array]] -> index of its latest table
    table = ""
    in_multiline = False

    def resolve(parts: list[str]) -> str:
        path = ""
        for part in parts:
            path = f"{path}.{part}" if path else part
            if path in arrays:
                path = f"{path}[{arrays[path]}]"
        return path

    for number, line in enumerate(text.splitlines(), start=1):
        quotes = line.count('"""') + line.count("'''")
        if in_multiline:
            in_multiline = quotes % 2 == 0
            continue
        if header := _HEADER_LINE.match(line):
            parts = _key_parts(header.group(2))
            if header.group(1) == "[[":
                name = ".".join(filter(None, [resolve(parts[:-1]), parts[-1]]))
                arrays[name] = arrays.get(name, -1) + 1
                table = f"{name}[{arrays[name]}]"
            else:
                table = resolve(parts)
                if table in lines:
                    duplicates.append((table, number, lines[table]))
            lines.setdefault(table, number)
        elif key := _KEY_LINE.match(line):
            path = ".".join(filter(None, [table, *_key_parts(key.group(1))]))
            if path in lines:
                duplicates.append((path, number, lines[path]))
            lines.setdefault(path, number)
        in_multiline = quotes % 2 == 1
    return lines, duplicates


def _line_of(lines: Mapping[str, int], key: str) -> int | None:
    # The key itself, else the nearest enclosing table that is in the file (a missing key points at its table).
    while key:
        if key in lines:
            return lines[key]
        key = re.sub(r"(\[\d+\]|\.?[^.\[]+)$", "", key)
    return None


# --- parsing ---------------------------------------------------------------------------------------------------------


class _Collector:
    def __init__(self, source: str, lines: Mapping[str, int]) -> None:
        self.source = source
        self.lines = lines
        self.problems: list[Problem] = []

    def add(self, level: Literal["error", "warning"], key: str, message: str) -> None:
        self.problems.append(Problem(level, key, message, _line_of(self.lines, key), self.source))

    def in_file_order(self) -> list[Problem]:
        return sorted(self.problems, key=lambda p: (p.line is None, p.line or 0))

    def error_count(self) -> int:
        return len(errors(self.problems))

    def unknown(self, key: str, name: str, candidates: Sequence[str], what: str = "key") -> None:
        close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        self.add("warning", key, f"unknown {what}, ignored{hint}")


def _syntax_problem(exc: ParseError, text: str, source: str) -> Problem:
    message = re.sub(r"\s*at line \d+ col \d+$", "", str(exc)).rstrip(".")
    source_lines = text.splitlines()
    line_text = source_lines[exc.line - 1] if 0 < exc.line <= len(source_lines) else ""
    key = _KEY_LINE.match(line_text)
    if key and set(_key_parts(key.group(1))) & SECRET_KEYS:
        # tomlkit quotes the offending character, which would be part of the secret.
        message = "cannot read this secret value (details hidden): write it in double quotes, nothing after it"
    return Problem("error", "", f"invalid TOML: {message} (column {exc.col})", exc.line, source)


def _validate_table(section: Section, table: Mapping[str, Any], path: str, out: _Collector) -> dict[str, Any]:
    """The table's validated values by key (keys that failed are left out; their problems are in ``out``)."""
    values: dict[str, Any] = {}
    errors_before = out.error_count()
    for key, raw in table.items():
        if key in section.tables:
            sub = section.tables[key]
            if not isinstance(raw, dict):
                out.add("error", f"{path}.{key}", f"must be a table: a [{path.split('[')[0]}.{key}] line and its keys")
                continue
            before = out.error_count()
            sub_values = _validate_table(sub, raw, f"{path}.{key}", out)
            if out.error_count() == before:  # built only when whole: a table with an error may lack a field
                values[key] = _build(sub, sub_values)
            continue
        option = section.options.get(key)
        if option is None:
            what = "table" if isinstance(raw, dict) else "key"
            out.unknown(f"{path}.{key}", key, [*section.options, *section.tables], what)
            continue
        try:
            value = option.validator(raw)
        except ValueError as exc:
            message = str(exc)
            if option.secret and isinstance(raw, str):
                message = redact(message, raw)  # belt and braces: validators of secrets never quote them anyway
            out.add("error", f"{path}.{key}", message)
            continue
        if isinstance(value, Warned):
            out.add("warning", f"{path}.{key}", value.message)
            value = value.value
        values[key] = value
    for key, option in section.options.items():
        if key in table:
            continue
        if option.default_from is not None and option.default_from in values:
            values[key] = values[option.default_from]
        elif option.required:
            out.add("error", f"{path}.{key}", "required")
    if section.check is not None and out.error_count() == errors_before:
        for key, message in section.check(values):
            out.add("error", f"{path}.{key}", message)
    return values


def _build(section: Section, values: Mapping[str, Any]) -> Any:
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key in section.tables:
            kwargs[key] = value  # already built by _validate_table
            continue
        into = section.options[key].into
        if into:
            kwargs.update(zip(into, value, strict=True))
        else:
            kwargs[key] = value
    return section.cls(**kwargs)


def _check_unique(name: str, section: Section, tables: Sequence[Mapping[str, Any]], out: _Collector) -> None:
    for key in section.unique:
        first: dict[Any, int] = {}
        for index, values in enumerate(tables):
            if key not in values:
                continue
            value = values[key]
            if value in first:
                shown = "" if section.options[key].secret else f" {value!r}"
                out.add("error", f"{name}[{index}].{key}", f"duplicate{shown}: {name}[{first[value]}] has it too")
            else:
                first[value] = index


def _array_of_tables(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def parse_config(text: str, *, source: str = "bambupi.toml") -> tuple[Config | None, list[Problem]]:
    """Check ``text`` against :data:`SCHEMA`: the Config (None when there is any error) and every problem found."""
    text = text.removeprefix("\ufeff")  # Notepad's byte-order mark is no key
    try:
        document: dict[str, Any] = tomlkit.parse(text).unwrap()
    except KeyAlreadyPresent as exc:
        return None, [_duplicate_problem(exc, text, source)]
    except ParseError as exc:
        if "already exists" in str(exc):
            return None, [_duplicate_problem(exc, text, source)]
        return None, [_syntax_problem(exc, text, source)]
    except TOMLKitError as exc:
        # Anything else tomlkit refuses: named without its message, which may quote a value.
        return None, [Problem("error", "", f"invalid TOML ({type(exc).__name__})", None, source)]
    out = _Collector(source, key_lines(text))
    found: dict[str, list[dict[str, Any]]] = {}  # section name -> validated values of each of its tables
    for name, value in document.items():
        section = SCHEMA.get(name)
        if section is None:
            candidates = [*SCHEMA, *(f"{s}.{k}" for s, sec in SCHEMA.items() for k in sec.options)]
            out.unknown(name, name, candidates, "section" if isinstance(value, dict | list) else "key")
        elif section.many:
            if not _array_of_tables(value):
                out.add("error", name, f"must be written as [[{name}]] tables (double brackets, one per {name})")
                continue
            found[name] = [_validate_table(section, table, f"{name}[{i}]", out) for i, table in enumerate(value)]
            _check_unique(name, section, found[name], out)
        elif not isinstance(value, dict):
            out.add("error", name, f"must be a table: a [{name}] line followed by its keys")
        else:
            found[name] = [_validate_table(section, value, name, out)]
    if not found.get("printer") and "printer" not in out.lines:
        out.add("warning", "printer", "no printers configured: the box shows only its network screen")
    if out.error_count():
        # Objects are built only from fully valid tables: a table with an error may lack a required field.
        return None, out.in_file_order()
    kwargs: dict[str, Any] = {}
    for name, tables in found.items():
        section = SCHEMA[name]
        built = tuple(_build(section, values) for values in tables)
        kwargs[section.attr] = built if section.many else built[0]
    return Config(**kwargs), out.in_file_order()


# --- files -----------------------------------------------------------------------------------------------------------


def _read(path: Path) -> tuple[Config | None, list[Problem]]:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return None, [Problem("error", "", f"not UTF-8 text (byte {exc.start})", None, source)]
    except OSError as exc:
        return None, [Problem("error", "", f"cannot read: {exc.strerror or exc}", None, source)]
    config, problems = parse_config(text, source=source)
    return (None if config is None else dataclasses.replace(config, source=path)), problems


def load_config(path: Path) -> tuple[Config, list[Problem]]:
    """The config in ``path`` and its warnings; raises :class:`ConfigError` (listing every problem) on any error."""
    config, problems = _read(path)
    if config is None:
        raise ConfigError(problems)
    return config, problems


def check_config(path: Path) -> list[Problem]:
    """Every problem in ``path``; never raises for bad content (an unreadable file is an error problem)."""
    return _read(path)[1]


def cli_check_config(path: Path, out: TextIO) -> int:
    """``bambupi check-config``: print every problem, then a summary; 1 when there are errors."""
    config, problems = _read(path)
    for problem in problems:
        print(problem, file=out)
    warnings = len(problems) - len(errors(problems))
    also = f", {_count(warnings, 'warning')}" if warnings else ""
    if config is None:
        print(f"{path}: {_count(len(errors(problems)), 'error')}{also}", file=out)
        return 1
    print(f"OK: {_count(len(config.printers), 'printer')}{also}", file=out)
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


# --- storage ---------------------------------------------------------------------------------------------------------


def user_data_dir() -> Path:
    """``$XDG_DATA_HOME/bambupi``, or ``~/.local/share/bambupi``."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "bambupi"


def _unwritable(folder: Path) -> str | None:
    """Why files cannot be created in ``folder`` (creating it if needed), or None when they can.

    Creating a real file is the only honest test: access() says yes to root on a read-only mount, and a parent
    that is a regular file fails only on creation.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


_fallbacks_logged: set[Path] = set()


def resolve_storage_path(configured: Path, *, explicit: bool) -> Path:
    """Where the database really lives: ``configured``, or the same file name in :func:`user_data_dir` when
    ``configured``'s folder cannot be created or written (a developer's machine has no /var/lib/bambupi).

    ``explicit`` says the path came from the config file (the warning then names ``storage.path``).
    The fallback is logged once per path.
    """
    why = _unwritable(configured.parent)
    if why is None:
        return configured
    fallback = user_data_dir() / configured.name
    if configured not in _fallbacks_logged:
        _fallbacks_logged.add(configured)
        what = f"storage.path {configured}" if explicit else f"default storage path {configured}"
        also = _unwritable(fallback.parent)
        log.warning(
            "%s: cannot write to its folder (%s); using %s instead%s",
            what,
            why,
            fallback,
            f" (which is not writable either: {also})" if also else "",
        )
    return fallback


def pins_path(config: Config) -> Path:
    """The printer link's certificate pins, kept beside the database."""
    explicit = config.storage.path != DEFAULT_STORAGE_PATH
    return resolve_storage_path(config.storage.path, explicit=explicit).parent / PINS_FILE_NAME
