"""Printer commands: pure builders for the request payloads, and Controls, which sends them and awaits the replies."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import trio

from bambupi.printer.link import NotConnected, PrinterLink
from bambupi.printer.sink import PrinterSink

log = logging.getLogger("bambupi.commands")

REPLY_TIMEOUT_S: Final = 10.0
SPEED_LEVELS: Final = {1: "silent", 2: "standard", 3: "sport", 4: "ludicrous"}
CONTROLS_UNAVAILABLE: Final = (
    "this printer refuses commands from other apps: turn on LAN Only mode and Developer mode on the printer "
    "(Settings → Network), then commands from bambupi work; watching works either way"
)
# The words for a refused command (HMS 0500_0500_0001_0007, or a reply "mqtt message verify failed").
COMMAND_REFUSED: Final = (
    "the printer refused a command: enable Developer mode (with LAN Only mode) on the printer, then try again"
)
# H2 printers have two chamber light bars and report both; "on" means both.
CHAMBER_LIGHTS: Final = ("chamber_light", "chamber_light2")


class CommandError(Exception):
    """Why a command was not sent or not confirmed; ``status`` is the HTTP status that fits."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _light(node: str, mode: str) -> dict[str, Any]:
    return {
        "system": {
            "command": "ledctrl", "led_node": node, "led_mode": mode,
            "led_on_time": 500, "led_off_time": 500, "loop_times": 0, "interval_time": 0,
        }
    }


def light_nodes(lights: Mapping[str, Any]) -> tuple[str, ...]:
    """The chamber lights to switch: every one the printer reports, and at least the first (reports may lag)."""
    return tuple(node for node in CHAMBER_LIGHTS if node in lights) or CHAMBER_LIGHTS[:1]


def build_commands(name: str, params: Mapping[str, Any], lights: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The request bodies for ``name`` (without ``sequence_id``: the link adds it), one per message to send;
    ``lights`` is the state's ``lights`` (which light nodes the printer has). ValueError for bad input."""
    if name in ("pause", "resume", "stop"):
        return [{"print": {"command": name, "param": ""}}]
    if name in ("light_on", "light_off"):
        return [_light(node, name.removeprefix("light_")) for node in light_nodes(lights)]
    if name == "speed":
        level = params.get("level")
        if isinstance(level, bool) or not isinstance(level, int) or level not in SPEED_LEVELS:
            raise ValueError("level: must be 1 (silent), 2 (standard), 3 (sport) or 4 (ludicrous)")
        return [{"print": {"command": "print_speed", "param": str(level)}}]
    raise ValueError(f"command: unknown {name!r}; use pause, resume, stop, light_on, light_off or speed")


def sent_command(body: Mapping[str, Any]) -> str:
    """The ``command`` inside a request body, which the printer's reply echoes."""
    return str(next(iter(body.values()))["command"])


def refused(reply: Mapping[str, Any]) -> bool:
    """A reply that says the printer would not verify the command (it wants Developer mode, or a signature)."""
    return reply.get("result") == "failed" and "verify failed" in str(reply.get("reason") or "").lower()


def reason_in_words(reply: Mapping[str, Any]) -> str | None:
    """The reply's reason, with the printer's terse refusals said plainly."""
    reason = reply.get("reason")
    text = str(reason) if reason else None
    if refused(reply):
        return COMMAND_REFUSED
    if text is not None and "did not find the valid led" in text.lower():
        return f"the printer has no such light ({text})"
    return text


@dataclass(frozen=True)
class Outcome:
    sequence_id: str
    result: str
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {"sequence_id": self.sequence_id, "result": self.result, "reason": self.reason}


# (printer id, the MQTT command, who asked, None when sent / whether it succeeded when answered)
CommandListener = Callable[[str, str, str, bool | None], None]


class Controls:
    """Sends commands over the printer's one link and matches each reply by ``sequence_id`` and command: replies to
    other clients (a slicer's ``gcode_line``, a phone app's ``ledctrl``) arrive on the same topic, numbered their
    own way."""

    def __init__(
        self, hub: PrinterSink, links: Mapping[str, PrinterLink], *, timeout_s: float = REPLY_TIMEOUT_S
    ) -> None:
        self.hub = hub
        self.links = links
        self.timeout_s = timeout_s
        self._waiting: dict[tuple[str, str, str], Callable[[dict[str, Any]], None]] = {}
        self._listeners: list[CommandListener] = []
        hub.on_reply(self._on_reply)

    def on_command(self, listener: CommandListener) -> None:
        """``listener(printer_id, command, origin, ok)`` hears each command as it is sent (``ok`` None) and as it
        is answered (True: success; False: refused, failed or unanswered): the job's timeline names who asked."""
        self._listeners.append(listener)

    def _tell(self, printer_id: str, command: str, origin: str, ok: bool | None) -> None:
        for listener in self._listeners:
            try:
                listener(printer_id, command, origin, ok)
            except Exception:  # a listener's bug must not fail the command the printer already has
                log.exception("a command listener failed")

    def _on_reply(self, printer_id: str, reply: dict[str, Any]) -> None:
        key = (printer_id, str(reply.get("sequence_id")), str(reply.get("command")))
        deliver = self._waiting.pop(key, None)
        if deliver is not None:
            deliver(reply)

    async def send(
        self, printer_id: str, name: str, params: Mapping[str, Any], *, origin: str = "the page"
    ) -> Outcome:
        """Send command ``name``; ``origin`` says where it came from ("the page", "the facade", "the home broker")
        in the log line that records it. Every path (page, facade, home broker) goes through here: same checks."""
        link = self.links.get(printer_id)
        if link is None:
            raise CommandError(f"no printer with id {printer_id!r}", 404)
        printer = self.hub.printer(printer_id)
        try:
            bodies = build_commands(name, params, printer["state"].get("lights") or {})
        except ValueError as exc:
            raise CommandError(str(exc), 400) from None
        if not printer["controls_available"]:
            raise CommandError(CONTROLS_UNAVAILABLE, 409)
        outcome: Outcome | None = None
        for body in bodies:  # one after the other: the first failure is the answer
            answer = await self._send_one(printer_id, link, name, body, origin)
            outcome = outcome or answer
            if answer.result != "success":
                return answer
        assert outcome is not None  # build_commands never returns an empty list
        return outcome

    async def _send_one(
        self, printer_id: str, link: PrinterLink, name: str, body: dict[str, Any], origin: str
    ) -> Outcome:
        command = sent_command(body)
        if command == "stop":
            # Before it leaves: the printer's FAILED may overtake its reply. A stop from the box is a cancel.
            self.hub.stop_sent(printer_id)
        try:
            sequence_id = link.send(body, origin=origin)
            self._tell(printer_id, command, origin, None)
        except NotConnected:
            self.hub.command_answered(printer_id, command=command, ok=False, refused=False)
            raise CommandError(f"{printer_id} is not connected; try again when it is online", 503) from None
        replied = trio.Event()
        answer: dict[str, Any] = {}

        def deliver(reply: dict[str, Any]) -> None:
            answer.update(reply)
            replied.set()

        key = (printer_id, sequence_id, command)
        self._waiting[key] = deliver
        with trio.move_on_after(self.timeout_s):
            await replied.wait()
        self._waiting.pop(key, None)
        if not replied.is_set():
            self.hub.command_answered(printer_id, command=command, ok=False, refused=False)
            self._tell(printer_id, command, origin, False)
            log.warning("%s: no reply to %s (sequence %s) within %g s", printer_id, name, sequence_id, self.timeout_s)
            raise CommandError(f"the printer did not answer {name} within {self.timeout_s:g} s", 504)
        result = str(answer.get("result") or "unknown")
        self.hub.command_answered(printer_id, command=command, ok=result == "success", refused=refused(answer))
        self._tell(printer_id, command, origin, result == "success")
        reason = reason_in_words(answer)
        log.info(
            "%s: %s via %s -> %s (%s)", printer_id, command, origin, result, answer.get("reason") or "no reason given"
        )
        return Outcome(sequence_id, result, reason)
