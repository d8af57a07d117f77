"""What the printer side (links, commands) calls on the owner of printer state, and nothing more.

The state's owner is :class:`bambupi.state_hub.StateHub`; the links depend on this narrow Protocol instead, so
``bambupi.printer`` does not import the hub that imports it (and a test can hand a link any object that keeps
these promises).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

from bambupi.printer.capture import MqttCapture
from bambupi.printer.state import Applied

Connection = Literal["connecting", "online", "stale", "offline"]
Reply = dict[str, Any]


class PrinterSink(Protocol):
    def printer(self, printer_id: str, /) -> Mapping[str, Any]:
        """The printer's public object (its ``connection``, ``state``, ``controls_available``...)."""
        ...

    def capture(self, printer_id: str, /) -> MqttCapture:
        """Where the link records the MQTT messages it sends and receives."""
        ...

    def apply_message(self, printer_id: str, payload: bytes, /) -> Applied:
        """One raw report from the printer; an accepted one makes the printer online."""
        ...

    def set_connection(self, printer_id: str, connection: Connection, reason: str | None = None, /) -> None:
        """The link's verdict on the connection when no report says "online"."""
        ...

    def on_reply(self, listener: Callable[[str, Reply], None], /) -> None:
        """Call ``listener(printer_id, reply)`` for every command reply."""
        ...

    def stop_sent(self, printer_id: str, /) -> None:
        """The box is sending a stop: the job's end, when it comes, is the owner's cancel."""
        ...

    def command_answered(self, printer_id: str, *, command: str, ok: bool, refused: bool) -> None:
        """The printer answered (or never answered: ``ok`` False) one of the box's commands."""
        ...
