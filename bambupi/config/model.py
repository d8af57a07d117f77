"""The configuration as the rest of bambupi sees it: one frozen dataclass per section, defaults in their fields.

A key that is absent from the file is simply not passed, so these fields are the only place a default lives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, get_args

from bambupi.config.wiring import default_pins
from bambupi.secret import Secret

DEFAULT_STORAGE_PATH = Path("/var/lib/bambupi/bambupi.sqlite3")

# Every choice a key offers is one of these types: the validators, the settings page's schema and the code that
# acts on a value all take the list from here (typing.get_args), so a new choice is added in one place.
CameraMode = Literal["auto", "off"]
# Who sees the camera: anyone on the LAN, or logged-in people of at least this role (bambupi.web.users).
CameraAccess = Literal["anyone", "viewer", "operator", "owner"]
PlugKind = Literal["tasmota", "shelly1", "shelly2", "homeassistant"]
OledDriver = Literal["auto", "ssd1306", "sh1106", "virtual", "none"]
GpioDriver = Literal["auto", "virtual", "none"]
BuzzerKind = Literal["active", "passive", "none"]  # on/off, tones through PWM, none fitted
LightSensorKind = Literal["auto", "bh1750", "none"]  # auto: a BH1750 when one answers on the OLED's I2C bus
# The languages Bambu's HMS service publishes texts in (its ``lang`` parameter).
HmsLanguage = Literal[
    "en", "de", "fr", "es", "it", "nl", "pl", "pt", "pt-br", "sv", "da", "cs", "sk", "hu", "ru", "uk", "tr", "el",
    "ca", "ja", "ko", "th", "zh-cn",
]
NotifyKind = Literal["ntfy", "pushover", "telegram", "discord", "webhook"]
# The names a channel's ``events`` list takes (bambupi.notify.messages maps each to the events behind it).
NotifyTopic = Literal[
    "started", "finished", "failed", "cancelled", "paused", "hms", "offline", "online", "progress", "power", "filament",
    "ending_soon",
]
HmsSeverity = Literal["fatal", "serious", "common", "info"]  # most severe first

HMS_LANGUAGES: Final[tuple[HmsLanguage, ...]] = get_args(HmsLanguage)
DEFAULT_TOPICS: Final[tuple[NotifyTopic, ...]] = (
    "finished", "failed", "cancelled", "paused", "hms", "offline", "online", "power", "filament"
)


@dataclass(frozen=True)
class PrinterConfig:
    id: str
    name: str
    model: str
    host: str
    serial: str
    access_code: Secret
    mqtt_port: int = 8883
    ftps_port: int = 990  # the job's 3MF (bambupi.history); tests and the simulator use other ports
    camera: CameraMode = "auto"
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

    kind: PlugKind  # which options each kind takes: bambupi.config.schema.PLUG_KINDS
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
    camera_requires_login: bool = False  # kept for older files: true is camera_access = "viewer"
    camera_access: CameraAccess | None = None  # None: from camera_requires_login
    session_hours: float = 24 * 7
    # One address may hold only this many: a slowloris from one machine cannot take every slot from the others.
    max_connections_per_client: int = 32

    @property
    def camera_role(self) -> Literal["viewer", "operator", "owner"] | None:
        """The least role that sees the camera; None when anyone on the LAN does."""
        access = self.camera_access or ("viewer" if self.camera_requires_login else "anyone")
        return None if access == "anyone" else access


@dataclass(frozen=True)
class PanelConfig:
    oled: OledDriver = "auto"
    gpio: GpioDriver = "auto"
    # The wiring's defaults come from pins.toml, read when the first PanelConfig is made (not at import).
    i2c_port: int = field(default_factory=lambda: default_pins().i2c_port)
    i2c_address: int = field(default_factory=lambda: default_pins().i2c_address)
    rotation: int = 0  # degrees: 0 | 90 | 180 | 270 (a 128x64 picture, so 0 or 180 in practice)
    contrast: int = 255
    dim_contrast: int = 8
    led_green: str = field(default_factory=lambda: default_pins().led_green)  # gpiozero names (GPIO17, BOARD11...)
    led_amber: str = field(default_factory=lambda: default_pins().led_amber)
    led_red: str = field(default_factory=lambda: default_pins().led_red)
    buzzer_pin: str = field(default_factory=lambda: default_pins().buzzer)
    button: str = field(default_factory=lambda: default_pins().button)
    buzzer: BuzzerKind = "active"
    rotate_s: float = 8.0  # each screen shows this long before the next
    dim_after_s: float = 300.0  # nothing changed this long: dim the screen
    off_after_s: float = 1800.0  # ...and switch it off, unless printing or alarmed
    offline_grace_s: float = 60.0  # red slow blink for an offline printer whose reports stopped this long ago
    # A print's end (green blink, its screen) stays until the button, the door, the next job or this long (0: no limit)
    finished_hold_s: float = 1800.0
    door_chirp: bool = True  # the door opened during a print: a short chirp and DOOR OPEN on the screen
    door_light: bool = False  # the box may switch the chamber light on when the door opens (no print running)
    door_light_s: float = 300.0  # ...for this long at most; off again when the door closes
    # Night (alerts.quiet_hours) or a dark room (light sensor): the OLED's contrast and the LEDs' share of brightness.
    night_contrast: int = 1
    night_led_level: float = 0.1
    sleep_after_s: float = 600.0  # printers down this long while idle (or plugs off): OLED and LEDs sleep; 0 never
    light_sensor: LightSensorKind = "auto"
    light_sensor_address: int = field(default_factory=lambda: default_pins().light_sensor_address)  # BH1750: 0x23


@dataclass(frozen=True)
class AlertsConfig:
    """Shared by the panel and notifications."""

    time_zone: str | None = None  # IANA name (Europe/Berlin); None = the system's time zone
    quiet_hours: tuple[tuple[int, int], tuple[int, int]] | None = None  # ((22, 0), (7, 0)): mute all but fatal
    language: HmsLanguage = "en"  # HMS and print-error texts
    ending_soon_min: float = 5.0  # job_ending_soon (panel chirp, screen, notifications) this long before the end; 0 off
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
    kind: NotifyKind  # which options each kind takes: bambupi.config.schema.NOTIFY_KINDS
    enabled: bool = True
    url: str | None = None  # ntfy server (default https://ntfy.sh), Discord webhook URL, webhook URL
    topic: str | None = None  # ntfy
    token: Secret | None = None  # ntfy access token, Pushover app token, Telegram bot token
    user_key: Secret | None = None  # Pushover
    chat_id: str | None = None  # Telegram
    secret: Secret | None = None  # webhook: HMAC-SHA256 key for the X-Bambupi-Signature header
    api_url: str | None = None  # Pushover/Telegram API base, for self-hosted or test servers
    sound: str | None = None  # Pushover
    events: tuple[NotifyTopic, ...] = DEFAULT_TOPICS
    min_severity: HmsSeverity = "serious"  # HMS errors at or above this
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
    # The RTSPS (X1/H2/P2) decoder: JPEGs at this rate, at most this wide (0 = as the camera sends), restarted when
    # no frame came for decoder_stall_s. Defaults from docs/camera.md's measurements: what a Pi 3 carries.
    decoder_fps: float = 2.0
    decoder_width: int = 1280
    decoder_stall_s: float = 20.0

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
class HistoryConfig:
    """``[history]``: the job recorder fetches each job's 3MF from the printer for its planned grams and picture."""

    fetch_job_file: bool = True
    max_file_mb: float = 200.0  # a larger 3MF is refused with the reason (a Pi's SD card and memory are small)
    fetch_timeout_s: float = 120.0  # the whole fetch: connecting, every path tried, the download


@dataclass(frozen=True)
class FilamentConfig:
    """``[filament]``: the spool inventory (bambupi.filament)."""

    low_g: float = 100.0  # a spool with less left is low: flagged on the page, told once per crossing
    spoolman_url: str = ""  # a Spoolman server the spools are copied to ("" = none)
    spoolman_sync_s: float = 300.0  # how often the copy is brought up to date (and soon after each change)


BridgeCa = str  # "system" (the system's CAs), "insecure" (no check of the broker's certificate) or a CA file's path


@dataclass(frozen=True)
class BridgeConfig:
    """``[bridge]``: the home MQTT broker the box publishes each printer's state and Home Assistant's discovery to
    (bambupi.bridge, docs/home-assistant.md)."""

    enabled: bool = False
    host: str | None = None  # the broker (e.g. Home Assistant's Mosquitto add-on); required when enabled
    port: int | None = None  # None = 8883 with TLS, 1883 without
    tls: bool = False
    ca: BridgeCa = "system"  # with tls: which certificates the broker's is checked against
    username: str | None = None
    password: Secret | None = None
    topic_prefix: str = "bambupi"  # state under <prefix>/<printer id>/..., the box's availability <prefix>/availability
    discovery_prefix: str = "homeassistant"  # Home Assistant's MQTT discovery prefix
    allow_control: bool = False  # buttons and <prefix>/<id>/command: pause, resume, stop, lights
    snapshot_interval_s: float = 30.0  # a camera picture for Home Assistant's image entity this often (0 = none)
    connect_timeout_s: float = 10.0
    reconnect_max_s: float = 60.0  # backoff cap

    @property
    def broker_port(self) -> int:
        return self.port if self.port is not None else (8883 if self.tls else 1883)


@dataclass(frozen=True)
class FacadeConfig:
    """``[facade]``: the printer facade, an MQTT + camera endpoint that speaks the printer's own protocol, so other
    apps (Home Assistant's ha-bambulab, ESP32 screens, scripts) use the box instead of the printer (bambupi.facade,
    docs/facade.md)."""

    enabled: bool = False
    host: str = "0.0.0.0"  # the address it listens on ("::" for IPv6 too, "127.0.0.1" for this machine only)
    mqtt_port: int = 8883  # as on a printer: many apps cannot be told another port
    camera_port: int = 6000  # the first printer's camera; the next printer's is camera_port + 1, and so on
    access_code: Secret | None = None  # the facade's own code, which apps log in with; never a printer's
    allow_control: bool = False  # apps may pause, resume, stop, set the speed and switch the chamber light
    printers: tuple[str, ...] = ()  # the printer ids it serves, in camera-port order; empty = every printer
    camera_fps: float = 2.0  # frames made from an RTSPS camera (X1, H2, P2S): this rate at most...
    camera_width: int = 1280  # ...scaled to fit this size (P1/A1 frames are passed on as the printer sends them)
    camera_height: int = 720
    max_clients: int = 16  # MQTT clients at once (a printer takes about 3)


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
    history: HistoryConfig = field(default_factory=HistoryConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    filament: FilamentConfig = field(default_factory=FilamentConfig)
    system: SystemConfig = field(default_factory=SystemConfig)
    facade: FacadeConfig = field(default_factory=FacadeConfig)
    bridge: BridgeConfig = field(default_factory=BridgeConfig)
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
        config.facade.access_code,
        config.bridge.password,
    ]
    return [s for s in found if s]
