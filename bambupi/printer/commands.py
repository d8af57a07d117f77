"""Printer commands: pure builders for the request payloads, and Controls, which sends one and awaits its reply."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import trio

from bambupi.hub import StateHub
from bambupi.printer.link import NotConnected, PrinterLink

log = logging.getLogger("bambupi.commands")

REPLY_TIMEOUT_S: Final = 10.0
SPEED_LEVELS: Final = {1: "silent", 2: "standard", 3: "sport", 4: "ludicrous"}
CONTROLS_UNAVAILABLE: Final = (
    "this printer refuses commands from other apps: turn on LAN Only mode and Developer mode on the printer "
    "(Settings → Network), then commands from bambupi work; watching works either way"
)


class CommandError(Exception):
    """Why a command was not sent or not confirmed; ``status`` is the HTTP status that fits."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _light(mode: str) -> dict[str, Any]:
    return {
        "system": {
            "command": "ledctrl", "led_node": "chamber_light", "led_mode": mode,
            "led_on_time": 500, "led_off_time": 500, "loop_times": 0, "interval_time": 0,
        }
    }


def build_command(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The request body for ``name`` (without ``sequence_id``: the link adds it); ValueError for bad input."""
    if name in ("pause", "resume", "stop"):
        return {"print": {"command": name, "param": ""}}
    if name in ("light_on", "light_off"):
        return _light(name.removeprefix("light_"))
    if name == "speed":
        level = params.get("level")
        if isinstance(level, bool) or not isinstance(level, int) or level not in SPEED_LEVELS:
            raise ValueError("level: must be 1 (silent), 2 (standard), 3 (sport) or 4 (ludicrous)")
        return {"print": {"command": "print_speed", "param": str(level)}}
    raise ValueError(f"command: unknown {name!r}; use pause, resume, stop, light_on, light_off or speed")


@dataclass(frozen=True)
class Outcome:
    sequence_id: str
    result: str
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {"sequence_id": self.sequence_id, "result": self.result, "reason": self.reason}


class Controls:
    """Sends commands over the printer's one link and matches replies by ``sequence_id``."""

    def __init__(self, hub: StateHub, links: Mapping[str, PrinterLink], *, timeout_s: float = REPLY_TIMEOUT_S) -> None:
        self.hub = hub
        self.links = links
        self.timeout_s = timeout_s
        self._waiting: dict[tuple[str, str], Callable[[dict[str, Any]], None]] = {}
        hub.on_reply(self._on_reply)

    def _on_reply(self, printer_id: str, reply: dict[str, Any]) -> None:
        deliver = self._waiting.pop((printer_id, str(reply.get("sequence_id"))), None)
        if deliver is not None:
            deliver(reply)

    async def send(self, printer_id: str, name: str, params: Mapping[str, Any]) -> Outcome:
        link = self.links.get(printer_id)
        if link is None:
            raise CommandError(f"no printer with id {printer_id!r}", 404)
        try:
            body = build_command(name, params)
        except ValueError as exc:
            raise CommandError(str(exc), 400) from None
        if not self.hub.printer(printer_id)["controls_available"]:
            raise CommandError(CONTROLS_UNAVAILABLE, 409)
        try:
            sequence_id = link.send(body)
        except NotConnected:
            raise CommandError(f"{printer_id} is not connected; try again when it is online", 503) from None
        replied = trio.Event()
        answer: dict[str, Any] = {}

        def deliver(reply: dict[str, Any]) -> None:
            answer.update(reply)
            replied.set()

        key = (printer_id, sequence_id)
        self._waiting[key] = deliver
        with trio.move_on_after(self.timeout_s):
            await replied.wait()
        self._waiting.pop(key, None)
        if not replied.is_set():
            log.warning("%s: no reply to %s (sequence %s) within %g s", printer_id, name, sequence_id, self.timeout_s)
            raise CommandError(f"the printer did not answer {name} within {self.timeout_s:g} s", 504)
        result = str(answer.get("result") or "unknown")
        reason = answer.get("reason")
        log.info("%s: %s -> %s%s", printer_id, name, result, f" ({reason})" if reason else "")
        return Outcome(sequence_id, result, str(reason) if reason else None)
