"""The checks behind every key: each takes the TOML value and returns the checked (maybe normalised) value or
raises ValueError with a message that names what is wrong, never quoting a secret."""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from bambupi.config.model import NotifyTopic
from bambupi.passwords import parse_password_hash
from bambupi.printer_models import KNOWN_MODELS, normalise_model
from bambupi.secret import Secret

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


@dataclass(frozen=True)
class NumberRange:
    """The check of a number key, keeping its bounds: the settings page's number field offers the same range."""

    minimum: float
    maximum: float
    whole: bool  # an int key: a fraction is refused

    def __call__(self, value: Any) -> Any:
        if self.whole:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"must be a whole number, got {_kind(value)}")
            if not self.minimum <= value <= self.maximum:
                raise ValueError(f"must be between {self.minimum} and {self.maximum}, got {value}")
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be a number, got {_kind(value)}")
        if not math.isfinite(value) or not self.minimum <= value <= self.maximum:
            raise ValueError(
                f"must be between {_number(self.minimum)} and {_number(self.maximum)}, got {_number(value)}"
            )
        return float(value)


def valid_int(minimum: int, maximum: int) -> Validator:
    return NumberRange(minimum, maximum, whole=True)


def valid_float(minimum: float, maximum: float) -> Validator:
    return NumberRange(minimum, maximum, whole=False)


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


def valid_http_url_or_empty(value: Any) -> str:
    """An http(s) URL, or "" for none (an optional service left off)."""
    return "" if isinstance(value, str) and not value.strip() else valid_http_url(value)


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
    known = get_args(NotifyTopic)
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


def valid_topic_prefix(value: Any) -> str:
    """An MQTT topic prefix (``bambupi``, ``home/printers``): levels without wildcards, no leading or trailing ``/``."""
    text = valid_string(value, max_length=128)
    if "+" in text or "#" in text:
        raise ValueError(f"must not contain the MQTT wildcards + or #, got {text!r}")
    if any(not level for level in text.split("/")):
        raise ValueError(f"must not start or end with / nor hold an empty level (//), got {text!r}")
    return text


def valid_broker_ca(value: Any) -> str:
    """Which certificates a TLS broker's is checked against: ``system``, ``insecure`` (none) or a CA file's path."""
    text = valid_string(value, max_length=4096)
    if text in ("system", "insecure"):
        return text
    return str(valid_abs_path(text))


def valid_snapshot_interval(value: Any) -> float:
    """Seconds between camera pictures: 0 (none) or 1 to 86400 (more often would flood a home broker)."""
    seconds = float(valid_float(0, 86400)(value))
    if 0 < seconds < 1:
        raise ValueError(f"must be 0 (no pictures) or at least 1, got {_number(seconds)}")
    return seconds


def bridge_problems(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """An enabled bridge needs its broker; a password without a user is never sent."""
    problems = []
    if values.get("enabled") and not values.get("host"):
        problems.append(("host", "required when the bridge is enabled: the home broker's address"))
    if values.get("password") and not values.get("username"):
        problems.append(("username", "required with a password (MQTT sends a password only with a user name)"))
    return problems


def valid_facade_code(value: Any) -> Secret:
    """The printer facade's own access code: 8-32 letters and digits (8, as a printer's, suits apps that check)."""
    # A secret: never quoted back.
    text = _require_str(value)
    if not 8 <= len(text) <= 32:
        raise ValueError(f"must be 8 to 32 characters (8, as on a printer's screen, suits every app), got {len(text)}")
    if not text.isascii() or not text.isalnum():
        raise ValueError("must be letters and digits only")
    return Secret(text)


def valid_printer_ids(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError("must be a list of printer ids, e.g. [\"garage\"]")
    ids = tuple(valid_printer_id(item) for item in value)
    if len(set(ids)) != len(ids):
        raise ValueError("lists a printer twice")
    return ids


def facade_problems(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """An enabled facade needs its own code; its two ports differ."""
    problems = []
    if values.get("enabled") and not values.get("access_code"):
        problems.append(("access_code", "required when the facade is enabled: the code apps log in with (never a "
                                        "printer's own)"))
    if values.get("mqtt_port", 8883) == values.get("camera_port", 6000) != 0:  # 0: any free port (tests)
        problems.append(("camera_port", "must differ from mqtt_port"))
    return problems


def facade_printer_problems(facade: Mapping[str, Any], printers: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Across sections: the facade's code is none of the printers' (an app given it could then reach a printer
    directly, and the box's one-connection promise breaks), and it lists only printers that exist."""
    problems = []
    code = facade.get("access_code")
    if code and any(p.get("access_code") == code for p in printers):
        problems.append(("access_code", "must not be a printer's access code: give the facade a code of its own"))
    known = {p.get("id") for p in printers}
    unknown = [pid for pid in facade.get("printers", ()) if pid not in known]
    if unknown:
        problems.append(("printers", f"no printer with id {unknown[0]!r}"))
    # Each served printer's camera takes the next port up from camera_port (the facade's component).
    first = facade.get("camera_port", 6000)
    served = len(facade.get("printers") or known)
    if first and served > 1:
        last = first + served - 1
        if last > 65535:
            problems.append(("camera_port", f"the {served} printers' cameras need ports {first}-{last}: too high"))
        elif first <= facade.get("mqtt_port", 8883) <= last:
            problems.append(("camera_port", f"the {served} printers' cameras take ports {first}-{last}, which "
                                            "includes mqtt_port"))
    return problems


def system_problems(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    problems = []
    if "wifi_password" in values and "wifi_ssid" not in values:
        problems.append(("wifi_ssid", "required with wifi_password"))
    if "wifi_ssid" in values and "wifi_country" not in values:
        problems.append(("wifi_country", "required with wifi_ssid: which channels are legal depends on the country"))
    return problems
