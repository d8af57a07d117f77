"""The config loader: defaults, one test row per validator, line numbers, secrets, storage fallback."""

from __future__ import annotations

import copy
import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import pytest
import tomlkit

from bambupi.config import (
    DEFAULT_STORAGE_PATH,
    EXAMPLE_CONFIG_PATH,
    SCHEMA,
    Config,
    ConfigError,
    NotifyConfig,
    PanelConfig,
    Problem,
    StorageConfig,
    WebConfig,
    check_config,
    cli_check_config,
    key_lines,
    load_config,
    parse_config,
    pins_file,
    pins_path,
    resolve_storage_path,
)
from bambupi.config.file import schema_view
from bambupi.config.model import (
    BuzzerKind,
    CameraMode,
    GpioDriver,
    HmsLanguage,
    HmsSeverity,
    LightSensorKind,
    NotifyKind,
    NotifyTopic,
    OledDriver,
    PlugKind,
)
from bambupi.config.schema import NOTIFY_KINDS, PLUG_KINDS
from bambupi.notify.messages import TOPICS
from bambupi.power import plugs
from bambupi.secret import Secret

MINIMAL = """\
[web]
listen = "0.0.0.0:8080"            # host:port

[[printer]]
id = "workshop"                    # URL slug
name = "Workshop P1S"
model = "P1S"                      # X1C, X1E, P1P, P1S, A1, A1MINI, H2D, P2S, ...
host = "192.168.1.50"
serial = "01P00A000000000"
access_code = "12345678"
# mqtt_port = 8883                 # optional; tests and the simulator use other ports
# camera = "auto"                  # auto | off
# camera_port = 6000               # P1/A1 default 6000; RTSPS models 322
# tls_fingerprint = "sha256:..."   # optional pin; otherwise the first certificate seen is pinned

[panel]
oled = "auto"                      # auto | ssd1306 | sh1106 | virtual | none
gpio = "auto"                      # auto | virtual | none (virtual = mock pins, shown on the web page)

[storage]
path = "/var/lib/bambupi/bambupi.sqlite3"   # default; falls back to the user's data dir when not writable
"""

PRINTER: dict[str, Any] = {
    "id": "workshop",
    "model": "P1S",
    "host": "192.168.1.50",
    "serial": "01P00A000000000",
    "access_code": "12345678",
}


# One valid channel of each kind a bad value needs: each kind takes only its own keys, so a bad value goes into a
# channel of a kind that takes its key, and is the only problem.
CHANNELS: dict[str, dict[str, Any]] = {
    "ntfy": {"name": "phone", "kind": "ntfy", "topic": "bambupi-test", "token": "tk_secret"},
    "pushover": {"name": "phone", "kind": "pushover", "token": "tk_secret", "user_key": "uk_secret"},
    "telegram": {"name": "phone", "kind": "telegram", "token": "tk_secret", "chat_id": "42"},
    "webhook": {"name": "phone", "kind": "webhook", "url": "https://hook.example/x"},
}
KIND_OF_KEY = {"user_key": "pushover", "api_url": "pushover", "sound": "pushover", "chat_id": "telegram",
               "secret": "webhook"}


def only_errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.level == "error"]


def with_value(section: str, key: str, value: Any) -> str:
    """A valid one-printer config, with ``section.key`` set to ``value``."""
    channel = CHANNELS[KIND_OF_KEY.get(key, "ntfy")]
    document: dict[str, Any] = {"printer": [copy.deepcopy(PRINTER)], "notify": [copy.deepcopy(channel)]}
    table = document[section][0] if section in ("printer", "notify") else document.setdefault(section, {})
    table[key] = value
    return tomlkit.dumps(document)


def test_minimal_file_loads_with_defaults() -> None:
    config, problems = parse_config(MINIMAL)
    assert problems == []
    assert config is not None
    (printer,) = config.printers
    assert (printer.id, printer.name, printer.model) == ("workshop", "Workshop P1S", "P1S")
    assert (printer.host, printer.serial) == ("192.168.1.50", "01P00A000000000")
    assert isinstance(printer.access_code, Secret)
    assert printer.access_code.reveal() == "12345678"
    assert (printer.mqtt_port, printer.camera, printer.camera_port) == (8883, "auto", None)
    assert printer.tls_fingerprint is None
    assert (printer.stale_after_s, printer.reconnect_max_s, printer.connect_timeout_s) == (60.0, 60.0, 10.0)
    assert config.web == WebConfig(host="0.0.0.0", port=8080)
    assert config.panel == PanelConfig()
    assert config.storage == StorageConfig(DEFAULT_STORAGE_PATH)
    assert "12345678" not in repr(config)


def test_absent_sections_and_keys_take_the_dataclass_defaults() -> None:
    config, problems = parse_config(tomlkit.dumps({"printer": [PRINTER]}))
    assert problems == []
    assert config is not None
    assert config.web == WebConfig()
    assert config.printers[0].name == "workshop"  # name defaults to the id
    assert config.storage.path == DEFAULT_STORAGE_PATH


def test_every_supported_key_is_applied() -> None:
    colons = ":".join(["AB"] * 32)  # as openssl prints it
    text = f"""\
[web]
listen = "[::]:0"
max_connections = 10
max_connections_per_client = 3
max_body_bytes = 2048
max_header_bytes = 4096
read_timeout_s = 2

[[printer]]
id = "a1m"
name = "Mini"
model = "a1 mini"
host = "fe80::1"
serial = "03w00x000000000"
access_code = "AbCd1234"
mqtt_port = 18883
camera = "OFF"
camera_port = 16000
tls_fingerprint = "SHA256:{colons}"
stale_after_s = 1
reconnect_max_s = 0.1
connect_timeout_s = 0.5

[panel]
oled = "SH1106"
gpio = "virtual"

[storage]
path = "/srv/box/db.sqlite3"
"""
    config, problems = parse_config(text)
    assert problems == []
    assert config is not None
    assert config.web == WebConfig("::", 0, 10, 2048, 4096, 2.0, max_connections_per_client=3)
    (p,) = config.printers
    assert (p.id, p.name, p.model, p.host, p.serial) == ("a1m", "Mini", "A1MINI", "fe80::1", "03W00X000000000")
    assert (p.mqtt_port, p.camera, p.camera_port) == (18883, "off", 16000)
    assert p.tls_fingerprint == "sha256:" + "ab" * 32
    assert (p.stale_after_s, p.reconnect_max_s, p.connect_timeout_s) == (1.0, 0.1, 0.5)
    assert config.panel == PanelConfig("sh1106", "virtual")
    assert config.storage.path == Path("/srv/box/db.sqlite3")


BAD_VALUES = [
    ("web", "listen", "8080", "host:port"),
    ("web", "listen", "::1:8080", "brackets"),
    ("web", "listen", "[nope]:8080", "IPv6"),
    ("web", "listen", "0.0.0.0:70000", "65535"),
    ("web", "listen", "bad host:80", "hostname"),
    ("web", "max_connections", 0, "between 1 and"),
    ("web", "max_connections", "10", "whole number"),
    ("web", "max_connections_per_client", 0, "between 1 and"),
    ("web", "max_body_bytes", 1.5, "whole number"),
    ("web", "max_header_bytes", True, "whole number"),
    ("web", "read_timeout_s", 0, "between 0.1 and"),
    ("web", "read_timeout_s", "15", "must be a number"),
    ("web", "admin_password_hash", "plaintext-password", "not a bambupi password hash"),
    ("web", "camera_requires_login", "yes", "must be true or false"),
    ("web", "camera_access", "friends", "must be one of"),
    ("web", "session_hours", 0, "between 0.1 and"),
    ("discovery", "enabled", 1, "must be true or false"),
    ("notify", "name", "Bad Name", "lowercase"),
    ("notify", "kind", "email", "must be one of"),
    ("notify", "enabled", "no", "must be true or false"),
    ("notify", "url", "ftp://x", "http:// or https://"),
    ("notify", "topic", "", "must not be empty"),
    ("notify", "token", "", "non-empty"),
    ("notify", "user_key", "  ", "non-empty"),
    ("notify", "chat_id", 5, "must be a string"),
    ("notify", "secret", "", "non-empty"),
    ("notify", "api_url", "nope", "http:// or https://"),
    ("notify", "sound", "", "must not be empty"),
    ("notify", "events", ["finishd"], "unknown event"),
    ("notify", "min_severity", "loud", "must be one of"),
    ("notify", "offline_grace_s", -1, "between 0 and"),
    ("notify", "dedup_window_s", "5", "must be a number"),
    ("notify", "progress", [0], "between 1 and 99"),
    ("notify", "attach_snapshot", "yes", "must be true or false"),
    ("discovery", "port", 70000, "between 0 and 65535"),
    ("system", "hostname", "-bambupi", "letters, digits or '-'"),
    ("system", "hostname", "bambu.pi", "letters, digits or '-'"),
    ("system", "wifi_country", "GBR", "two-letter country code"),
    ("system", "wifi_ssid", "x" * 33, "1-32 bytes"),
    ("system", "wifi_password", "short", "8-63 characters"),
    ("system", "wifi_password", "pässwörd-long", "printable ASCII"),
    ("system", "ssh_authorized_key", "-----BEGIN OPENSSH PRIVATE KEY-----", "private key"),
    ("system", "ssh_authorized_key", "ssh-ed25519", "OpenSSH public key"),
    ("printer", "id", "Work Shop", "lowercase"),
    ("printer", "id", "a" * 33, "1-32"),
    ("printer", "id", "", "1-32"),
    ("printer", "name", "  ", "empty"),
    ("printer", "name", "x" * 65, "at most 64"),
    ("printer", "model", "", "empty"),
    ("printer", "model", 5, "string"),
    ("printer", "host", "bad host", "hostname"),
    ("printer", "ftps_port", 70000, "65535"),
    ("printer", "host", "192.168.1.300", "IP address"),
    ("printer", "host", "-printer", "hostname"),
    ("printer", "serial", "01P-00A00000", "letters and digits"),
    ("printer", "serial", "SHORT", "8-20"),
    ("printer", "access_code", "1234567", "8 characters"),
    ("printer", "access_code", "1234-678", "letters and digits"),
    ("printer", "access_code", 12345678, "string"),
    ("printer", "mqtt_port", 0, "between 1 and 65535"),
    ("printer", "mqtt_port", 70000, "between 1 and 65535"),
    ("printer", "camera", "on", "auto, off"),
    ("printer", "camera_port", "6000", "whole number"),
    ("printer", "tls_fingerprint", "sha256:abc", "64 hex"),
    ("printer", "stale_after_s", 0.5, "between 1 and"),
    ("printer", "offline_after_s", 0, "between 1 and"),
    ("printer", "reconnect_max_s", 0, "between 0.1 and"),
    ("printer", "connect_timeout_s", float("nan"), "between"),
    ("panel", "oled", "lcd", "auto, ssd1306, sh1106, virtual, none"),
    ("panel", "gpio", "yes", "auto, virtual, none"),
    ("panel", "i2c_port", -1, "between 0 and 31"),
    ("panel", "i2c_address", 0x80, "between 3 and 119"),
    ("panel", "rotation", 45, "0, 90, 180 or 270"),
    ("panel", "contrast", 256, "between 0 and 255"),
    ("panel", "dim_contrast", "low", "whole number"),
    ("panel", "led_green", "pin 17", "gpiozero pin name"),
    ("panel", "led_amber", 27, "string"),
    ("panel", "led_red", "GPIO", "gpiozero pin name"),
    ("panel", "buzzer_pin", "", "gpiozero pin name"),
    ("panel", "button", "GPIO-23", "gpiozero pin name"),
    ("panel", "buzzer", "loud", "active, passive, none"),
    ("panel", "rotate_s", 0, "between 1 and"),
    ("panel", "dim_after_s", -5, "between 1 and"),
    ("panel", "off_after_s", "1h", "must be a number"),
    ("panel", "offline_grace_s", -1, "between 0 and"),
    ("panel", "finished_hold_s", -1, "between 0 and"),
    ("panel", "door_chirp", "yes", "must be true or false"),
    ("panel", "door_light", 1, "must be true or false"),
    ("panel", "door_light_s", 5, "between 10 and"),
    ("panel", "night_contrast", 300, "between 0 and 255"),
    ("panel", "night_led_level", 1.5, "between 0 and 1"),
    ("panel", "sleep_after_s", -1, "between 0 and"),
    ("panel", "light_sensor", "tsl2561", "auto, bh1750, none"),
    ("panel", "light_sensor_address", 0x80, "between 3 and 119"),
    ("alerts", "time_zone", "Mars/Olympus", "unknown time zone"),
    ("alerts", "quiet_hours", "22-7", "HH:MM-HH:MM"),
    ("alerts", "quiet_hours", "22:00-22:00", "must differ"),
    ("alerts", "language", "klingon", "must be one of"),
    ("alerts", "hms_service", "ftp://e.bambulab.com", "http"),
    ("alerts", "ending_soon_min", -1, "between 0 and"),
    ("storage", "path", "relative/db.sqlite3", "absolute"),
    ("storage", "path", 5, "string"),
    ("camera", "linger_s", -1, "between"),
    ("camera", "keep_open_while_printing", "yes", "must be true or false"),
    ("camera", "write_timeout_s", 0, "between"),
    ("camera", "history_count", -1, "between"),
    ("camera", "history_mb", 0, "between"),
    ("camera", "decoder_fps", 0, "between"),
    ("camera", "decoder_width", -1, "between"),
    ("camera", "decoder_stall_s", 1, "between"),
    ("power", "sample_interval_s", 0, "between"),
    ("power", "flush_interval_s", "60", "must be a number"),
    ("history", "fetch_job_file", "yes", "must be true or false"),
    ("history", "max_file_mb", 0, "between"),
    ("history", "fetch_timeout_s", "120", "must be a number"),
    ("filament", "low_g", -1, "between"),
    ("filament", "spoolman_url", "ftp://spoolman.local", "http"),
    ("filament", "spoolman_sync_s", 0, "between"),
    ("facade", "enabled", "yes", "must be true or false"),
    ("facade", "host", "bad host", "hostname"),
    ("facade", "mqtt_port", -1, "between 0 and 65535"),
    ("facade", "camera_port", 70000, "between 0 and 65535"),
    ("facade", "access_code", "1234567", "8 to 32 characters"),
    ("facade", "access_code", "1234-678", "letters and digits"),
    ("facade", "allow_control", 1, "must be true or false"),
    ("facade", "printers", ["Work Shop"], "lowercase"),
    ("facade", "printers", ["a", "a"], "twice"),
    ("facade", "printers", "garage", "list of printer ids"),
    ("facade", "camera_fps", 0, "between"),
    ("facade", "camera_width", 10, "between"),
    ("facade", "camera_height", "720", "whole number"),
    ("facade", "max_clients", 0, "between"),
    ("bridge", "enabled", "yes", "must be true or false"),
    ("bridge", "host", "bad host", "hostname"),
    ("bridge", "port", 0, "between 1 and 65535"),
    ("bridge", "tls", 1, "must be true or false"),
    ("bridge", "ca", "ca.pem", "absolute"),
    ("bridge", "username", "", "empty"),
    ("bridge", "password", "", "non-empty"),
    ("bridge", "topic_prefix", "home/#", "wildcards"),
    ("bridge", "discovery_prefix", "homeassistant/", "empty level"),
    ("bridge", "allow_control", "no", "must be true or false"),
    ("bridge", "snapshot_interval_s", 0.5, "at least 1"),
    ("bridge", "connect_timeout_s", 0, "between"),
    ("bridge", "reconnect_max_s", "60", "must be a number"),
]


@pytest.mark.parametrize(("section", "key", "value", "fragment"), BAD_VALUES)
def test_each_bad_value_is_one_error_naming_its_key_path(section: str, key: str, value: Any, fragment: str) -> None:
    config, problems = parse_config(with_value(section, key, value))
    assert config is None
    (error,) = only_errors(problems)
    assert error.key == (f"{section}[0]." if section in ("printer", "notify") else f"{section}.") + key
    assert fragment in error.message
    assert error.line is not None


def test_bad_value_table_covers_every_declared_key() -> None:
    tested = {f"{section}.{key}" for section, key, _, _ in BAD_VALUES}
    declared = {f"{name}.{key}" for name, section in SCHEMA.items() for key in section.options}
    assert declared == tested


@pytest.mark.parametrize("key", ["id", "model", "host", "serial", "access_code"])
def test_missing_required_printer_key_points_at_its_table(key: str) -> None:
    printer = {k: v for k, v in PRINTER.items() if k != key}
    text = "[web]\nlisten = '0.0.0.0:80'\n\n" + tomlkit.dumps({"printer": [printer]})
    config, problems = parse_config(text)
    assert config is None
    (error,) = only_errors(problems)
    assert (error.key, error.message, error.line) == (f"printer[0].{key}", "required", 4)


def test_unknown_model_is_a_warning_and_kept() -> None:
    config, problems = parse_config(with_value("printer", "model", "z9 turbo"))
    assert config is not None
    assert config.printers[0].model == "Z9TURBO"
    (warning,) = problems
    assert (warning.level, warning.key) == ("warning", "printer[0].model")


def test_line_numbers_point_at_the_offending_key() -> None:
    text = """\
# comment
[web]
lisen = "0.0.0.0:8080"

[[printer]]
id = "a"
model = "P1S"
host = "10.0.0.1"
serial = "01P00A000000001"
access_code = "aaaaaaaa"

[[printer]]
id = "a"
model = "X1C"
host = "10.0.0.2"
serial = "00M00A000000002"
access_code = "bbbbbbbb"
mqtt_port = 0

[printer.plug]
kind = "tasmota"
"""
    _, problems = parse_config(text, source="box.toml")
    found = {(p.level, p.key): p.line for p in problems}
    assert found == {
        ("warning", "web.lisen"): 3,
        ("error", "printer[1].id"): 13,
        ("error", "printer[1].mqtt_port"): 18,
        ("error", "printer[1].plug.address"): 20,  # [printer.plug] without its required address
    }
    assert [p.line for p in problems] == sorted(p.line or 0 for p in problems)  # in file order
    assert str(problems[1]) == "box.toml:13: printer[1].id: duplicate 'a': printer[0] has it too"
    assert str(problems[0]) == "box.toml:3: warning: web.lisen: unknown key, ignored (did you mean 'listen'?)"


def test_key_lines_understands_dotted_quoted_and_multiline() -> None:
    text = """\
web.listen = "x"
[ "panel" ]
'oled' = "auto"
note = \"\"\"
fake = 1
[fake]
\"\"\"
[[printer]]
[[printer]]
  id = "b"
[printer.plug]
kind = "x"
"""
    assert key_lines(text) == {
        "web.listen": 1,
        "panel": 2,
        "panel.oled": 3,
        "panel.note": 4,
        "printer[0]": 8,
        "printer[1]": 9,
        "printer[1].id": 10,
        "printer[1].plug": 11,
        "printer[1].plug.kind": 12,
    }


def test_unknown_keys_and_sections_warn_and_exit_0(tmp_path: Path) -> None:
    path = tmp_path / "bambupi.toml"
    path.write_text(
        MINIMAL.replace('listen = "0.0.0.0:8080"', 'listen = "0.0.0.0:8080"\nmax_conections = 5')
        + "\n[mqtt]\nbroker = 'home.local'\n"
    )
    out = io.StringIO()
    assert cli_check_config(path, out) == 0
    lines = out.getvalue().splitlines()
    assert lines == [
        f"{path}:3: warning: web.max_conections: unknown key, ignored (did you mean 'max_connections'?)",
        f"{path}:24: warning: mqtt: unknown section, ignored",
        "OK: 1 printer, 2 warnings",
    ]


def test_errors_exit_1_and_every_problem_is_listed(tmp_path: Path) -> None:
    path = tmp_path / "bambupi.toml"
    path.write_text(
        MINIMAL.replace('"0.0.0.0:8080"', '"0.0.0.0"')
        .replace('"P1S"', '"P1S"\nmqtt_port = -1')
        .replace('oled = "auto"', 'oled = "big"')
    )
    out = io.StringIO()
    assert cli_check_config(path, out) == 1
    text = out.getvalue()
    for key in ("web.listen", "printer[0].mqtt_port", "panel.oled"):
        assert f": {key}: " in text
    assert text.splitlines()[-1] == f"{path}: 3 errors"
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert [p.key for p in raised.value.problems] == ["web.listen", "printer[0].mqtt_port", "panel.oled"]
    assert str(raised.value).count("\n") == 2


def test_toml_syntax_error_is_one_problem_with_its_line() -> None:
    config, problems = parse_config('[web]\nlisten = "0.0.0.0:8080"\nmax_connections = = 3\n', source="s.toml")
    assert config is None
    (problem,) = problems
    assert (problem.level, problem.line) == ("error", 3)
    assert str(problem).startswith("s.toml:3: invalid TOML: ")


def test_a_single_printer_table_is_an_error_that_says_use_double_brackets() -> None:
    _, problems = parse_config(tomlkit.dumps({"printer": PRINTER}))
    (error,) = only_errors(problems)
    assert error.key == "printer"
    assert "[[printer]]" in error.message


def test_a_section_that_is_not_a_table_is_an_error() -> None:
    _, problems = parse_config('web = "0.0.0.0:8080"\n')
    (error,) = only_errors(problems)
    assert (error.key, error.line) == ("web", 1)


SECRET = "Zq7xW9pK"


@pytest.mark.parametrize(
    "line",
    [
        f'access_code = "{SECRET[:6]}"',  # too short
        f'access_code = "{SECRET}{SECRET}"',  # too long
        f'access_code = "{SECRET[:7]}!"',  # not alphanumeric
        f"access_code = {SECRET}",  # TOML syntax error on the secret's line
        f'access_code = "{SECRET}\\q"',  # bad escape inside the secret
        f'acess_code = "{SECRET}"',  # typo: unknown key holding the secret (and access_code missing)
    ],
)
def test_secret_value_never_appears_in_any_message(tmp_path: Path, line: str) -> None:
    path = tmp_path / "bambupi.toml"
    path.write_text(MINIMAL.replace('access_code = "12345678"', line))
    out = io.StringIO()
    assert cli_check_config(path, out) == 1
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    shown = [out.getvalue(), str(raised.value), repr(raised.value.problems)]
    for text in shown:
        assert SECRET[:6].encode() not in text.encode()
    # A syntax error must not quote the offending character either: it is part of the secret.
    assert not re.search(r"'[A-Za-z0-9]'", out.getvalue())


def test_duplicate_ids_and_serials_are_errors_on_the_later_printer() -> None:
    second = dict(PRINTER, serial=PRINTER["serial"].lower(), access_code="abcdefgh")
    third = dict(PRINTER, serial="01S00C000000003")
    config, problems = parse_config(tomlkit.dumps({"printer": [PRINTER, second, third]}))
    assert config is None
    assert {(p.key, p.message) for p in problems} == {
        ("printer[1].id", "duplicate 'workshop': printer[0] has it too"),
        ("printer[1].serial", "duplicate '01P00A000000000': printer[0] has it too"),
        ("printer[2].id", "duplicate 'workshop': printer[0] has it too"),
    }


def test_no_printers_is_valid_with_a_warning() -> None:
    config, problems = parse_config('[web]\nlisten = "127.0.0.1:9000"\n')
    assert config == Config(web=WebConfig(host="127.0.0.1", port=9000))
    (warning,) = problems
    assert (warning.level, warning.key) == ("warning", "printer")


def test_load_config_keeps_its_source_and_returns_warnings(tmp_path: Path) -> None:
    path = tmp_path / "box.toml"
    path.write_text(MINIMAL + "extra = 1\n")
    config, problems = load_config(path)
    assert config.source == path
    assert [(p.level, p.key) for p in problems] == [("warning", "storage.extra")]


def test_missing_or_undecodable_file_is_an_error_problem(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    (problem,) = check_config(missing)
    assert problem.level == "error"
    assert str(problem) == f"{missing}: cannot read: No such file or directory"
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"[web]\nlisten = '\xff'\n")
    (problem,) = check_config(binary)
    assert "UTF-8" in problem.message
    with pytest.raises(ConfigError):
        load_config(missing)


def test_shipped_example_config_is_valid_and_documents_every_key() -> None:
    config, problems = load_config(EXAMPLE_CONFIG_PATH)
    assert problems == []
    assert len(config.printers) == 1
    text = EXAMPLE_CONFIG_PATH.read_text()
    for name, section in SCHEMA.items():
        assert re.search(rf"^\[\[?{name}\]\]?", text, re.MULTILINE), name
        for key in section.options:
            assert re.search(rf"^#? ?{key} = ", text, re.MULTILINE), f"{name}.{key} not in the example"


# --- storage ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home


def test_writable_storage_path_is_kept_and_its_folder_created(tmp_path: Path, data_home: Path) -> None:
    wanted = tmp_path / "lib" / "bambupi" / "bambupi.sqlite3"
    assert resolve_storage_path(wanted, explicit=True) == wanted
    assert wanted.parent.is_dir()


def test_storage_falls_back_to_user_data_dir_and_warns_once(
    tmp_path: Path, data_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A folder under a regular file can never be created, even by root (chmod does not stop root).
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    wanted = blocker / "bambupi.sqlite3"
    with caplog.at_level(logging.WARNING, logger="bambupi.config"):
        assert resolve_storage_path(wanted, explicit=True) == data_home / "bambupi" / "bambupi.sqlite3"
        assert resolve_storage_path(wanted, explicit=True) == data_home / "bambupi" / "bambupi.sqlite3"
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert f"storage.path {wanted}" in record.getMessage()
    assert (data_home / "bambupi").is_dir()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; the test above covers root")
def test_storage_falls_back_when_folder_is_read_only(tmp_path: Path, data_home: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    try:
        assert resolve_storage_path(folder / "db.sqlite3", explicit=False) == data_home / "bambupi" / "db.sqlite3"
    finally:
        folder.chmod(0o755)


def test_a_database_already_there_stays_when_its_folder_turns_read_only(
    tmp_path: Path, data_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An SD card the kernel remounted read-only: the box's database, pins and facade certificate are there. A
    # fresh folder elsewhere would trust the next printer certificate afresh and hide the history.
    folder = tmp_path / "lib"
    folder.mkdir()
    (folder / "bambupi.sqlite3").write_bytes(b"")
    monkeypatch.setattr("bambupi.config.paths._unwritable", lambda path: "Read-only file system")
    assert resolve_storage_path(folder / "bambupi.sqlite3", explicit=True) == folder / "bambupi.sqlite3"
    # Nothing there yet (a developer's machine without /var/lib/bambupi): the fallback as before.
    assert resolve_storage_path(folder / "other.sqlite3", explicit=True) == data_home / "bambupi" / "other.sqlite3"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; the test above covers root")
def test_a_database_in_a_read_only_folder_is_kept(tmp_path: Path, data_home: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "db.sqlite3").write_bytes(b"")
    folder.chmod(0o555)
    try:
        assert resolve_storage_path(folder / "db.sqlite3", explicit=False) == folder / "db.sqlite3"
    finally:
        folder.chmod(0o755)


def test_user_data_dir_defaults_to_local_share(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    blocker = tmp_path / "f"
    blocker.write_text("")
    assert resolve_storage_path(blocker / "x.sqlite3", explicit=False) == tmp_path / ".local/share/bambupi/x.sqlite3"


def test_pins_live_beside_the_database(tmp_path: Path, data_home: Path) -> None:
    kept = Config(storage=StorageConfig(tmp_path / "db" / "bambupi.sqlite3"))
    assert pins_path(kept) == tmp_path / "db" / "tls-pins.json"
    blocker = tmp_path / "file"
    blocker.write_text("")
    moved = Config(storage=StorageConfig(blocker / "bambupi.sqlite3"))
    assert pins_path(moved) == data_home / "bambupi" / "tls-pins.json"


def test_the_service_and_the_trust_command_share_one_pins_file(tmp_path: Path, data_home: Path) -> None:
    kept = Config(storage=StorageConfig(tmp_path / "db" / "bambupi.sqlite3"))
    assert pins_path(kept) == pins_file(tmp_path / "db")  # Service(storage_folder=...) uses pins_file


# --- each kind of plug and channel takes its own options -------------------------------------------------------------

PLUG = {"kind": "tasmota", "address": "192.168.1.60"}
HOME_ASSISTANT = {"kind": "homeassistant", "address": "http://ha.local:8123", "token": "ey_secret_1",
                  "entity": "switch.printer"}


def with_plug(plug: dict[str, Any]) -> str:
    return tomlkit.dumps({"printer": [{**PRINTER, "plug": plug}]})


@pytest.mark.parametrize(
    ("plug", "key", "message"),
    [
        ({**PLUG, "token": "ey_secret_1"}, "token",
         "not used by a tasmota plug (a tasmota plug takes: password, username)"),
        ({**PLUG, "entity": "switch.printer"}, "entity", "not used by a tasmota plug"),
        ({**PLUG, "channel": 1}, "channel", "not used by a tasmota plug"),
        ({**PLUG, "kind": "shelly2", "username": "me"}, "username", "a Shelly Gen2 plug always uses admin"),
        ({**HOME_ASSISTANT, "password": "pw_secret_1"}, "password", "Home Assistant uses a token, not a password"),
        ({**HOME_ASSISTANT, "channel": 0}, "channel", "not used by a homeassistant plug"),
    ],
)
def test_an_option_of_another_kind_of_plug_is_an_error_naming_it(plug: dict[str, Any], key: str, message: str) -> None:
    config, problems = parse_config(with_plug(plug), source="box.toml")
    assert config is None
    (error,) = only_errors(problems)
    assert error.key == f"printer[0].plug.{key}"
    assert message in error.message
    assert "_secret_" not in str(error)
    assert error.line == 9 + list(plug).index(key)  # the key's own line ([printer.plug] is on line 8)


@pytest.mark.parametrize(
    ("channel", "key", "kind"),
    [
        ({**CHANNELS["ntfy"], "user_key": "uk_secret"}, "user_key", "ntfy"),
        ({**CHANNELS["telegram"], "secret": "hmac_secret"}, "secret", "telegram"),
        ({**CHANNELS["telegram"], "sound": "siren"}, "sound", "telegram"),
        ({**CHANNELS["webhook"], "chat_id": "42"}, "chat_id", "webhook"),
        ({"name": "d", "kind": "discord", "url": "https://discord.example/api/webhooks/1/x", "topic": "t"}, "topic",
         "discord"),
    ],
)
def test_an_option_of_another_kind_of_channel_is_an_error_naming_it(
    channel: dict[str, Any], key: str, kind: str
) -> None:
    config, problems = parse_config(tomlkit.dumps({"printer": [PRINTER], "notify": [channel]}))
    assert config is None
    (error,) = only_errors(problems)
    assert (error.key, error.message.split(" (")[0]) == (f"notify[0].{key}", f"not used by a {kind} channel")
    assert "secret" not in error.message.split(" (")[0]


def test_each_kind_is_told_what_it_requires_and_a_wrong_kind_is_named_once() -> None:
    _, problems = parse_config(with_plug({**PLUG, "kind": "homeassistant", "channel": 1}))
    assert {(p.key, p.message) for p in only_errors(problems)} == {
        ("printer[0].plug.channel", "not used by a homeassistant plug (a homeassistant plug takes: entity, "
         "power_entity, token)"),
        ("printer[0].plug.token", "required for a homeassistant plug"),
        ("printer[0].plug.entity", "required for a homeassistant plug"),
    }
    # A kind that does not exist is the one error: nothing is said about the keys of kinds it is not.
    _, problems = parse_config(with_plug({**PLUG, "kind": "kasa", "entity": "switch.x"}))
    assert [(p.key, p.message.split(";")[0]) for p in only_errors(problems)] == [
        ("printer[0].plug.kind", "must be one of tasmota, shelly1, shelly2, homeassistant")
    ]


# --- choices come from the Literal types ------------------------------------------------------------------------------

CHOICES = [
    ("printer", "camera", CameraMode),
    ("panel", "oled", OledDriver),
    ("panel", "gpio", GpioDriver),
    ("panel", "buzzer", BuzzerKind),
    ("panel", "light_sensor", LightSensorKind),
    ("alerts", "language", HmsLanguage),
    ("notify", "kind", NotifyKind),
    ("notify", "min_severity", HmsSeverity),
]


@pytest.mark.parametrize(("section", "key", "literal"), CHOICES)
def test_every_choice_of_a_key_is_its_literal_type(section: str, key: str, literal: Any) -> None:
    values = get_args(literal)
    assert SCHEMA[section].options[key].choices == values
    assert schema_view()[section]["choices"][key] == list(values)
    for value in values:  # each one is read as itself ...
        document = tomlkit.parse(with_value(section, key, value))
        if section == "notify" and key == "kind":  # a channel of that kind, with what that kind requires
            document["notify"] = [{"name": "c", "kind": value, **{k: "https://x.example/k" if k == "url" else "x1"
                                                               for k in NOTIFY_KINDS[value].requires}}]
        config, problems = parse_config(tomlkit.dumps(document))
        assert config is not None, only_errors(problems)
        table = {"printer": config.printers[0], "notify": config.notify[-1]}[section] if section in (
            "printer", "notify") else getattr(config, section)
        assert getattr(table, key) == value
    # ... and anything else is refused with the list, in the type's order.
    _, problems = parse_config(with_value(section, key, "nonesuch"))
    (error,) = only_errors(problems)
    assert f"must be one of {', '.join(values)};" in error.message


def test_plug_kinds_channel_kinds_and_topics_each_exist_in_one_place() -> None:
    assert SCHEMA["printer"].tables["plug"].options["kind"].choices == get_args(PlugKind) == tuple(PLUG_KINDS)
    assert tuple(NOTIFY_KINDS) == get_args(NotifyKind)
    assert tuple(plugs._DRIVERS) == get_args(PlugKind)  # a driver for every kind the config accepts
    assert tuple(TOPICS) == get_args(NotifyTopic)  # every topic a channel may name means some events
    assert set(NotifyConfig("c", "ntfy").events) < set(get_args(NotifyTopic))
    _, problems = parse_config(with_value("notify", "events", ["finishd"]))
    assert only_errors(problems)[0].message.endswith("use: " + ", ".join(get_args(NotifyTopic)))


def test_importing_the_config_reads_no_file() -> None:
    # A fresh interpreter: pins.toml is read when the first PanelConfig is made, not when bambupi.config is imported.
    code = """
import sys
opened = []
sys.addaudithook(lambda event, args: event == "open" and "pins.toml" in str(args[0]) and opened.append(1))
import bambupi.config
assert opened == [], "imported"
bambupi.config.PanelConfig()
bambupi.config.PanelConfig()
assert opened == [1], opened
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
