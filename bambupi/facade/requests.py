"""What the facade does with a request an app publishes on ``device/<serial>/request`` (pure rules).

A printer answers a request on its report topic. The facade answers from the box instead of asking the printer:

- ``pushing.pushall``: the box's merged report of the printer, as one full report (``msg: 0``); P1 printers lag when
  asked often, and the box already knows everything a full report carries (bambupi.printer.raw_report).
- ``info.get_version``: the printer's last answer the box saw, if it saw one (otherwise no answer, as a busy printer).
- ``print.pause`` / ``resume`` / ``stop``, ``print.print_speed``, ``system.ledctrl`` of the chamber light: sent
  through the box's own command path (bambupi.printer.commands.Controls, "via the facade") only when the owner
  allowed control (``[facade] allow_control``); otherwise answered ``failed`` with the reason, and not sent.
- Anything else (``gcode_line``, ``project_file``, AMS and calibration commands, file and upgrade commands, other
  lights or flashing modes): answered ``failed``, never sent. These can move the toolhead, heat, start a file or
  change the printer's settings: an app that needs them should talk to the printer itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from bambupi.printer.commands import CHAMBER_LIGHTS, SPEED_LEVELS

MAX_REQUEST_BYTES: Final = 64 * 1024  # a real request is a few hundred bytes
CONTROL_OFF: Final = (
    "control through the bambupi facade is off (the box's owner can allow it: [facade] allow_control)"
)
NOT_ALLOWED: Final = "bambupi facade: this command is not passed on to the printer"


@dataclass(frozen=True)
class Request:
    """One request as the facade decided it. ``kind``: ``pushall``, ``get_version``, ``control`` (send ``name``
    with ``params`` through the box's command path), ``refuse`` (answer ``failed``) or ``ignore`` (not a request
    a printer would answer: no JSON object, no command)."""

    kind: Literal["pushall", "get_version", "control", "refuse", "ignore"]
    section: str = ""  # the message's root key: "print", "system", "pushing", "info"
    command: str = ""
    sequence_id: str = "0"
    name: str = ""  # Controls.send's command name
    params: Mapping[str, Any] | None = None
    reason: str = ""


def decide(payload: bytes, *, allow_control: bool) -> list[Request]:
    """What to do with ``payload`` (an app's PUBLISH on the request topic): one :class:`Request` per section that
    holds a command (bambulabs_api asks ``pushall``, ``get_version`` and ``get_history`` in one message)."""
    if len(payload) > MAX_REQUEST_BYTES:
        return [Request("ignore", reason="request too large")]
    try:
        root = json.loads(payload)
    except (ValueError, RecursionError):
        return [Request("ignore", reason="not JSON")]
    if not isinstance(root, dict):
        return [Request("ignore", reason="not a JSON object")]
    found = [
        _decide(section, body, allow_control=allow_control)
        for section, body in root.items()
        if isinstance(body, dict) and isinstance(body.get("command"), str)
    ]
    return found or [Request("ignore", reason="no command")]


def _decide(section: str, body: Mapping[str, Any], *, allow_control: bool) -> Request:
    command = str(body["command"])[:64]
    sequence_id = _sequence(body.get("sequence_id"))
    if (section, command) == ("pushing", "pushall"):
        return Request("pushall", section, command, sequence_id)
    if (section, command) == ("info", "get_version"):
        return Request("get_version", section, command, sequence_id)
    control = _control(section, command, body)
    if control is None:
        return Request("refuse", section[:32], command, sequence_id, reason=NOT_ALLOWED)
    name, params = control
    if not allow_control:
        return Request("refuse", section, command, sequence_id, reason=CONTROL_OFF)
    return Request("control", section, command, sequence_id, name=name, params=params)


def _control(section: str, command: str, body: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The box's command for a control request it passes on, or None."""
    if section == "print" and command in ("pause", "resume", "stop"):
        return command, {}
    if section == "print" and command == "print_speed":
        try:
            level = int(str(body.get("param", "")).strip())
        except ValueError:
            return None
        return ("speed", {"level": level}) if level in SPEED_LEVELS else None
    # Only the chamber light on or off: the box switches every chamber light the printer has (as the page does).
    light = body.get("led_node") in CHAMBER_LIGHTS and body.get("led_mode") in ("on", "off")
    if section == "system" and command == "ledctrl" and light:
        return f"light_{body['led_mode']}", {}
    return None


def _sequence(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return "0"
    return str(value)[:32]


def answer(request: Request, *, result: str, reason: str | None = None) -> dict[str, Any]:
    """The reply a printer would send to ``request`` (its section, command and the app's ``sequence_id``)."""
    body: dict[str, Any] = {"command": request.command, "sequence_id": request.sequence_id, "result": result}
    if reason is not None:
        body["reason"] = reason
    if request.section == "print" and request.command in ("pause", "resume", "stop", "print_speed"):
        body["param"] = ""
    return {request.section or "print": body}
