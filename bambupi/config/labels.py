"""What the settings page calls each key of :data:`bambupi.config.schema.SCHEMA`: a human label, a line of help, its
unit, and a hint for the control when the key's check alone does not say (a time range is text to the schema).

Keyed by the schema's own paths (``printer.plug.kind``), never a list of keys of its own:
``tests/test_settings_form.py`` fails when a schema key has no entry here or an entry names no key, so the two
cannot drift. What kind of control a key gets comes from the schema (see :func:`bambupi.config.file.schema_view`):
a switch for ``valid_bool``, a number with its bounds for ``valid_int``/``valid_float``, a choice list for a
Literal, a password field for a secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

Control = Literal["time_range", "number"]


@dataclass(frozen=True)
class Label:
    label: str
    help: str
    unit: str = ""
    control: Control | None = None  # only where the schema's check cannot say
    advanced: bool = False  # shown under "More settings": rarely changed, safe to leave at the default


@dataclass(frozen=True)
class SectionLabel:
    title: str
    help: str


# In the order the page shows them: what a person sets up first comes first.
SECTIONS: Final[Mapping[str, SectionLabel]] = {
    "printer": SectionLabel("Printers", "Each printer on the LAN: its address, serial and LAN access code."),
    "printer.plug": SectionLabel("Smart plug", "The plug the printer is powered from: power readings and auto-off."),
    "notify": SectionLabel(
        "Notifications", "Where news of your prints is sent: ntfy, Pushover, Telegram, Discord or a webhook."
    ),
    "alerts": SectionLabel("Alerts", "Quiet hours, language and the heads-up before a print ends."),
    "panel": SectionLabel("Box display, lights and buzzer", "The OLED, the three LEDs, the buzzer and the button."),
    "camera": SectionLabel("Camera", "How the box relays the printers' cameras and keeps snapshots."),
    "filament": SectionLabel("Filament", "The spool inventory and an optional Spoolman server."),
    "history": SectionLabel(
        "Print history", "Fetching each job's file from the printer for grams and the plate picture."
    ),
    "power": SectionLabel("Power log", "How often the plugs are read and stored."),
    "bridge": SectionLabel(
        "Home Assistant (MQTT bridge)", "The printers' state, events and controls on your home's MQTT broker."
    ),
    "facade": SectionLabel(
        "Printer facade for other apps",
        "Apps that talk to a printer (ha-bambulab, screens) connect to the box instead.",
    ),
    "discovery": SectionLabel("Finding printers", "Listening for printers announcing themselves on the LAN."),
    "web": SectionLabel(
        "Web page and login", "Who may see the camera, how long a login lasts, the web server's limits."
    ),
    "storage": SectionLabel("Storage", "Where the database lives."),
    "system": SectionLabel("System (SD-card image)", "Read at the image's first boot: host name, Wi-Fi and SSH."),
}

PIN_HELP = "a gpiozero pin name: GPIO17, BCM17, BOARD11 or J8:11"

LABELS: Final[Mapping[str, Label]] = {
    # [web]
    "web.listen": Label(
        "Address and port", 'Where the page and API listen, e.g. 0.0.0.0:8080; "[::]:8080" for IPv6 too.', advanced=True
    ),
    "web.max_connections": Label("Most connections", "Concurrent HTTP connections; more get 503.", advanced=True),
    "web.max_connections_per_client": Label(
        "Most connections per client",
        "Concurrent connections from one address, so one machine cannot take every slot.",
        advanced=True,
    ),
    "web.max_body_bytes": Label(
        "Largest request body", "Larger request bodies are refused (413).", unit="bytes", advanced=True
    ),
    "web.max_header_bytes": Label(
        "Largest request head", "Larger request heads are refused (431).", unit="bytes", advanced=True
    ),
    "web.read_timeout_s": Label(
        "Read time limit", "A request slower than this is cut off (408).", unit="s", advanced=True
    ),
    "web.admin_password_hash": Label(
        "Owner password", "Set on the first visit or with bambupi set-password; never here."
    ),
    "web.camera_requires_login": Label(
        "Camera needs a login", "On: the camera, snapshots and their history are behind the login too."
    ),
    "web.camera_access": Label(
        "Who sees the camera",
        "anyone on the network, or only logged-in people of at least this role (overrides Camera needs a login).",
    ),
    "web.session_hours": Label("Stay logged in for", "How long a login lasts.", unit="h"),
    # [[printer]]
    "printer.id": Label("Short name (in links)", "Lowercase letters, digits, - and _ (1-32), e.g. garage."),
    "printer.name": Label("Name", "Shown on the page and the box's screen; the short name when empty."),
    "printer.model": Label("Model", "As on the printer's label, e.g. P1S; a model newer than this box is taken too."),
    "printer.host": Label("Address", "The printer's IP address or host name (printer screen: Settings → Network)."),
    "printer.serial": Label("Serial number", "8-20 letters and digits (printer screen: Settings → Device)."),
    "printer.access_code": Label(
        "LAN access code", "8 characters, on the printer's screen: Settings → LAN Only / WLAN."
    ),
    "printer.mqtt_port": Label(
        "MQTT port", "The printer's MQTT port; 8883 on every printer (other ports are for tests).", control="number"
    ),
    "printer.ftps_port": Label(
        "FTPS port", "Where each job's file is fetched from; 990 on every printer.", advanced=True, control="number"
    ),
    "printer.camera": Label("Camera", "auto: use the printer's camera; off: never connect to it."),
    "printer.camera_port": Label(
        "Camera port", "6000 (P1/A1) or 322 (RTSPS models) by default.", advanced=True, control="number"
    ),
    "printer.tls_fingerprint": Label(
        "Certificate fingerprint",
        "sha256:<hex>; empty: the first certificate seen is trusted and pinned.",
        advanced=True,
    ),
    "printer.stale_after_s": Label(
        "Stale after", "No report for this long: reconnect and ask for a full report.", unit="s", advanced=True
    ),
    "printer.offline_after_s": Label(
        "Offline after", "No report for this long: the printer shows as offline.", unit="s", advanced=True
    ),
    "printer.reconnect_max_s": Label(
        "Longest reconnect wait", "The cap of the growing pause between reconnection attempts.", unit="s", advanced=True
    ),
    "printer.connect_timeout_s": Label(
        "Connect time limit", "Connecting and logging in must finish within this.", unit="s", advanced=True
    ),
    # [printer.plug]
    "printer.plug.kind": Label(
        "Plug type", "Tasmota, Shelly Gen1 (shelly1), Shelly Gen2+ (shelly2) or a Home Assistant switch."
    ),
    "printer.plug.address": Label(
        "Plug address", "The plug's address, or Home Assistant's URL (http://homeassistant.local:8123)."
    ),
    "printer.plug.username": Label("Plug user", "The plug's web user (admin when empty)."),
    "printer.plug.password": Label("Plug password", "The plug's web password."),
    "printer.plug.token": Label(
        "Home Assistant token", "A long-lived access token (your profile in Home Assistant → Security)."
    ),
    "printer.plug.entity": Label("Switch entity", "The Home Assistant switch, e.g. switch.printer."),
    "printer.plug.power_entity": Label(
        "Power sensor entity", "Optional: the Home Assistant sensor reading the printer's power (W or kW)."
    ),
    "printer.plug.channel": Label("Relay channel", "The Shelly relay or switch number (0-15)."),
    "printer.plug.timeout_s": Label(
        "Request time limit", "Each request to the plug, all of it.", unit="s", advanced=True
    ),
    "printer.plug.price_per_kwh": Label("Electricity price", "Per kWh, for the cost of each print.", unit="per kWh"),
    "printer.plug.currency": Label("Currency", "Shown beside the cost, e.g. EUR (up to 8 characters)."),
    "printer.plug.printing_watts": Label(
        "Printing above", "At or above this power the printer counts as working.", unit="W", advanced=True
    ),
    "printer.plug.auto_off": Label(
        "Switch off after a print", "Switch the plug off once a print finished and the nozzle cooled."
    ),
    "printer.plug.auto_off_after_failure": Label(
        "Also after a failed print", "Also after a failed or cancelled print."
    ),
    "printer.plug.auto_off_nozzle_below_c": Label(
        "Nozzle cooler than", "Switch off only once the nozzle is below this.", unit="°C"
    ),
    "printer.plug.auto_off_after_min": Label(
        "Wait after the print", "At least this long after the print ended.", unit="min"
    ),
    "printer.plug.auto_off_warning_s": Label(
        "Warning before", "The warning (with Cancel) comes this long before switching off.", unit="s"
    ),
    "printer.plug.auto_off_when_offline": Label(
        "Also when the printer is offline", "Also when the printer's link is down and its state unknown."
    ),
    # [panel]
    "panel.oled": Label("Screen", "auto: an SSD1306 when the I2C bus exists; virtual: shown on the page only; none."),
    "panel.gpio": Label(
        "LEDs, buzzer and button",
        "auto: real pins when the board has them; virtual: mock pins shown on the page; none.",
    ),
    "panel.i2c_port": Label("Screen's I2C bus", "The bus number: 1 is /dev/i2c-1.", advanced=True),
    "panel.i2c_address": Label(
        "Screen's I2C address", "As a number: 60 is 0x3C (most modules), 61 is 0x3D.", advanced=True
    ),
    "panel.rotation": Label("Screen rotation", "0, 90, 180 or 270 degrees.", unit="°", control="number"),
    "panel.contrast": Label("Screen brightness", "When on (0-255)."),
    "panel.dim_contrast": Label("Dimmed brightness", "When dimmed (0-255)."),
    "panel.led_green": Label("Green LED pin", PIN_HELP, advanced=True),
    "panel.led_amber": Label("Amber LED pin", PIN_HELP, advanced=True),
    "panel.led_red": Label("Red LED pin", PIN_HELP, advanced=True),
    "panel.buzzer_pin": Label("Buzzer pin", PIN_HELP, advanced=True),
    "panel.button": Label("Button pin", PIN_HELP, advanced=True),
    "panel.buzzer": Label("Buzzer type", "active (on/off), passive (tones through PWM) or none."),
    "panel.rotate_s": Label("Each screen shows", "How long before the next screen.", unit="s"),
    "panel.dim_after_s": Label("Dim after", "Nothing changed this long: dim the screen.", unit="s"),
    "panel.off_after_s": Label("Screen off after", "Then switch it off, unless printing or alarmed.", unit="s"),
    "panel.offline_grace_s": Label(
        "Offline warning after", "The red LED blinks for a printer offline this long.", unit="s", advanced=True
    ),
    "panel.finished_hold_s": Label(
        "Show a print's end for", "Until the button, the door, the next job or this long; 0: no limit.", unit="s"
    ),
    "panel.door_chirp": Label(
        "Chirp when the door opens", "During a print: a short chirp (not in quiet hours) and DOOR OPEN on the screen."
    ),
    "panel.door_light": Label(
        "Light on when the door opens", "Switch the chamber light on when the door opens and no print runs."
    ),
    "panel.door_light_s": Label("Door light stays on for", "Or until the door closes.", unit="s"),
    "panel.night_contrast": Label("Night brightness", "The screen in quiet hours or a dark room (0-255)."),
    "panel.night_led_level": Label("Night LED level", "The LEDs' share of their brightness then (0-1)."),
    "panel.sleep_after_s": Label(
        "Sleep when printers are off for", "Screen and LEDs sleep while every printer is off; 0: never.", unit="s"
    ),
    "panel.light_sensor": Label("Light sensor", "auto: a BH1750 if one answers; bh1750: expect one; none."),
    "panel.light_sensor_address": Label(
        "Light sensor's I2C address", "As a number: 35 is 0x23, 92 is 0x5C.", advanced=True
    ),
    # [alerts]
    "alerts.time_zone": Label("Time zone", "An IANA name such as Europe/Berlin; the system's when empty."),
    "alerts.quiet_hours": Label(
        "Quiet hours",
        "The buzzer stays silent and notifications wait, except fatal errors; both empty: none.",
        control="time_range",
    ),
    "alerts.language": Label("Language of error texts", "For the printer's HMS and print-error messages."),
    "alerts.hms_service": Label(
        "Error text service", "Where those texts are fetched from (Bambu's own service by default).", advanced=True
    ),
    "alerts.ending_soon_min": Label(
        "Heads-up before a print ends",
        "A chirp, DONE SOON and a notification this long before the end; 0: off.",
        unit="min",
    ),
    # [storage]
    "storage.path": Label(
        "Database file", "An absolute path; /var/lib/bambupi/bambupi.sqlite3 by default.", advanced=True
    ),
    # [camera]
    "camera.linger_s": Label("Keep the camera open for", "After the last viewer leaves.", unit="s"),
    "camera.keep_open_while_printing": Label(
        "Keep open while printing", "Keep the camera connection open during prints."
    ),
    "camera.write_timeout_s": Label(
        "Slow viewer limit", "A viewer blocked this long is disconnected.", unit="s", advanced=True
    ),
    "camera.history_count": Label("Snapshots per printer", "How many snapshots are kept per printer."),
    "camera.history_mb": Label("Snapshots in all", "The oldest go first.", unit="MiB"),
    "camera.decoder_fps": Label("RTSPS pictures per second", "X1, H2, P2 cameras: more costs CPU.", unit="fps"),
    "camera.decoder_width": Label(
        "RTSPS picture width", "At most this wide; 0: as the camera sends them.", unit="px", advanced=True
    ),
    "camera.decoder_stall_s": Label(
        "Restart a stalled decoder after", "No picture for this long.", unit="s", advanced=True
    ),
    # [[notify]]
    "notify.name": Label("Channel name", "Lowercase letters, digits, - and _; shown in the delivery log."),
    "notify.kind": Label("Service", "ntfy, Pushover, Telegram, Discord or a webhook of your own."),
    "notify.enabled": Label("Enabled", "Off: nothing is sent to this channel."),
    "notify.url": Label(
        "URL", "ntfy: the server (https://ntfy.sh when empty); Discord: the webhook URL; webhook: where to POST."
    ),
    "notify.topic": Label("Topic", "The ntfy topic your phone subscribes to."),
    "notify.token": Label("Token", "ntfy access token, Pushover app token or Telegram bot token."),
    "notify.user_key": Label("User key", "Your Pushover user key."),
    "notify.chat_id": Label("Chat id", "The Telegram chat the bot writes to."),
    "notify.secret": Label("Signing secret", "The HMAC-SHA256 key for the X-Bambupi-Signature header."),
    "notify.api_url": Label("API URL", "Only for a self-hosted or test server.", advanced=True),
    "notify.sound": Label("Sound", "A Pushover sound name."),
    "notify.events": Label("Events", "What you are told about; ending soon is the heads-up before a print ends."),
    "notify.min_severity": Label("Printer errors from", "HMS errors at or above this severity."),
    "notify.offline_grace_s": Label("Offline for at least", "Before you are told a printer went offline.", unit="s"),
    "notify.dedup_window_s": Label(
        "Same news once within", "Repeated news within this window is sent once.", unit="s", advanced=True
    ),
    "notify.progress": Label(
        "Progress milestones", "Percent, comma-separated, e.g. 25, 50, 75 (with progress in Events).", unit="%"
    ),
    "notify.attach_snapshot": Label(
        "Attach a snapshot", "A camera picture with the message, where the service takes one."
    ),
    # [discovery]
    "discovery.enabled": Label(
        "Find printers on the LAN", "Offers new printers here and follows a printer whose address changed."
    ),
    "discovery.port": Label("Announcement port", "The UDP port printers announce on.", advanced=True),
    # [system]
    "system.hostname": Label("Host name", "The box answers as http://<name>.local."),
    "system.wifi_country": Label("Wi-Fi country", "Two letters, e.g. DE; required with a Wi-Fi network."),
    "system.wifi_ssid": Label("Wi-Fi network", "Empty: Ethernet only."),
    "system.wifi_password": Label("Wi-Fi password", "WPA2/WPA3 passphrase, 8-63 characters."),
    "system.ssh_authorized_key": Label("SSH public key", "One public key; SSH stays off without one.", advanced=True),
    # [filament]
    "filament.low_g": Label("Low spool below", "A spool with less left is flagged and told once.", unit="g"),
    "filament.spoolman_url": Label("Spoolman server", "e.g. http://spoolman.local:7912; empty: none."),
    "filament.spoolman_sync_s": Label(
        "Spoolman sync every", "A change is sent within seconds; this catches the rest.", unit="s", advanced=True
    ),
    # [power]
    "power.sample_interval_s": Label("Read the plugs every", "How often each plug's power is read.", unit="s"),
    "power.flush_interval_s": Label(
        "Write readings every",
        "Readings are stored in one batch this often, and at every print event.",
        unit="s",
        advanced=True,
    ),
    # [bridge]
    "bridge.enabled": Label(
        "Connect to the home broker", "Publish the printers to your MQTT broker (Home Assistant's Mosquitto add-on)."
    ),
    "bridge.host": Label("Broker address", "Required when connected, e.g. homeassistant.local."),
    "bridge.port": Label("Broker port", "1883, or 8883 with TLS, when empty.", control="number"),
    "bridge.tls": Label("Use TLS", "Encrypt the connection to the broker."),
    "bridge.ca": Label(
        "Certificate check", 'With TLS: "system", a CA file\'s absolute path, or "insecure" (no check).'
    ),
    "bridge.username": Label("Broker user", "The user the box logs in as."),
    "bridge.password": Label("Broker password", "Typed again after the broker's address, port, TLS or check changes."),
    "bridge.topic_prefix": Label(
        "Topic prefix", "State under <prefix>/<printer>/...; give each box its own.", advanced=True
    ),
    "bridge.discovery_prefix": Label("Discovery prefix", "Home Assistant's MQTT discovery prefix.", advanced=True),
    "bridge.allow_control": Label(
        "Allow control from Home Assistant", "Pause, resume, stop and light buttons; off: commands are refused."
    ),
    "bridge.snapshot_interval_s": Label(
        "Camera picture every", "For Home Assistant's image entity; 0: none.", unit="s", control="number"
    ),
    "bridge.connect_timeout_s": Label("Connect time limit", "One connection attempt's limit.", unit="s", advanced=True),
    "bridge.reconnect_max_s": Label(
        "Longest reconnect wait", "Between reconnection attempts.", unit="s", advanced=True
    ),
    # [facade]
    "facade.enabled": Label(
        "Serve the facade", "Other apps connect to the box as if it were the printer; needs its own access code."
    ),
    "facade.host": Label(
        "Listen address", '0.0.0.0 for the LAN, "::" for IPv6 too, 127.0.0.1 for this machine only.', advanced=True
    ),
    "facade.mqtt_port": Label("MQTT port", "MQTT over TLS as on a printer (8883 when empty).", advanced=True),
    "facade.camera_port": Label(
        "First camera port",
        "The first printer's camera; the next one's is one higher (6000 when empty).",
        advanced=True,
    ),
    "facade.access_code": Label(
        "Facade access code", "What apps log in with: 8-32 letters and digits, never a printer's own code."
    ),
    "facade.allow_control": Label(
        "Allow apps to control", "Pause, resume, stop, speed and light; off: apps can only watch."
    ),
    "facade.printers": Label("Printers served", "Comma-separated short names; empty: all of them."),
    "facade.camera_fps": Label(
        "Camera frames per second", "Made from an RTSPS camera at most this often.", unit="fps", advanced=True
    ),
    "facade.camera_width": Label("Camera width", "RTSPS frames scaled to fit this width.", unit="px", advanced=True),
    "facade.camera_height": Label("Camera height", "...and this height, aspect kept.", unit="px", advanced=True),
    "facade.max_clients": Label("Most apps at once", "One more is refused.", advanced=True),
    # [history]
    "history.fetch_job_file": Label("Fetch each job's file", "Off: no FTPS, and the grams of a print are unknown."),
    "history.max_file_mb": Label("Largest job file", "A larger 3MF is not read whole.", unit="MiB", advanced=True),
    "history.fetch_timeout_s": Label(
        "Fetch time limit", "The whole fetch must finish within this.", unit="s", advanced=True
    ),
}
