"""The MQTT debug capture: a bounded ring buffer of the messages a printer link sent and received."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from bambupi.secret import Secret, redact

Direction = Literal["in", "out"]

# A 3 KB report at one message a second fills 200 entries in about three minutes: enough to see a
# pushall and the deltas after it, small enough (< 1 MiB) for a Pi Zero.
DEFAULT_CAPACITY = 200
MAX_PAYLOAD_CHARS = 64 * 1024


@dataclass(frozen=True)
class CapturedMessage:
    seq: int
    at: float  # UTC epoch seconds
    direction: Direction
    topic: str
    payload: str  # decoded text, secrets masked, cut at MAX_PAYLOAD_CHARS
    size: int  # bytes on the wire
    truncated: bool
    origin: str | None = None  # who sent an outgoing command ("alice (the page)", "the facade"); None: the box


    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "direction": self.direction,
            "topic": self.topic,
            "payload": self.payload,
            "size": self.size,
            "truncated": self.truncated,
            "origin": self.origin,
        }


class MqttCapture:
    """Keeps the last ``capacity`` messages of one printer link, with the access code masked.

    Masking happens when a message is recorded, so the access code never sits in the buffer at all.
    """

    def __init__(
        self,
        secrets: tuple[Secret, ...] = (),
        *,
        capacity: int = DEFAULT_CAPACITY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secrets = secrets
        self._messages: deque[CapturedMessage] = deque(maxlen=capacity)
        self._seq = 0
        self._clock = clock

    def record(
        self, direction: Direction, topic: str, payload: bytes | str, *, origin: str | None = None
    ) -> CapturedMessage:
        raw = payload.encode("utf-8", "replace") if isinstance(payload, str) else payload
        text = payload if isinstance(payload, str) else _decode(payload)
        truncated = len(text) > MAX_PAYLOAD_CHARS
        # Mask before cutting, so a secret straddling the cut is never half-visible.
        text = redact(text, *self.secrets)
        if truncated:
            text = text[:MAX_PAYLOAD_CHARS]
        self._seq += 1
        message = CapturedMessage(
            seq=self._seq,
            at=self._clock(),
            direction=direction,
            topic=redact(topic, *self.secrets),
            payload=text,
            size=len(raw),
            truncated=truncated,
            origin=origin,
        )
        self._messages.append(message)
        return message

    def messages(self, *, since: int = 0) -> list[CapturedMessage]:
        return [m for m in self._messages if m.seq > since]

    def clear(self) -> None:
        self._messages.clear()


def _decode(payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return payload.decode("latin-1")
