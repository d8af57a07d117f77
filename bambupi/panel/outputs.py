"""LEDs, buzzer and button: gpiozero devices driven from trio tasks.

Blink and beep timing lives here in trio (not in gpiozero's background threads) so tests run it on a fast clock.
Every change is recorded with ``trio.current_time()`` in a :class:`Recorder`: gpiozero's MockPin stamps changes with
``time.monotonic()``, which ignores the test clock.

Wiring (defaults in hardware/pins.toml): each LED from its GPIO through a 330 Ω resistor to GND; an active buzzer
(or a passive one through an NPN transistor) on a PWM-capable GPIO; the button between its GPIO and GND.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import trio

from bambupi.panel.alarms import Led, PatternName

log = logging.getLogger("bambupi.panel")

# (on seconds, off seconds) of each blinking LED mode; "pulse" breathes over PULSE_PERIOD_S.
BLINK: Final[dict[str, tuple[float, float]]] = {
    "blink": (0.5, 0.5),
    "slow_blink": (0.2, 1.8),
    "fast_blink": (0.1, 0.1),
}
PULSE_PERIOD_S: Final = 2.0
PULSE_STEPS: Final = 20

# Buzzer patterns: (frequency Hz, seconds on, seconds off after). An active buzzer ignores the frequency.
Note = tuple[float, float, float]
PATTERNS: Final[dict[PatternName, tuple[Note, ...]]] = {
    "fatal": ((2000, 0.5, 0.2), (2000, 0.5, 0.2), (2000, 0.5, 0.2), (1000, 1.0, 0.0)),
    "serious": ((1500, 0.15, 0.15), (1500, 0.15, 0.15), (1500, 0.15, 0.0)),
    "finished": ((1047, 0.12, 0.03), (1319, 0.12, 0.03), (1568, 0.3, 0.0)),
    "failed": ((440, 0.6, 0.3), (330, 0.9, 0.0)),
    "door": ((2637, 0.05, 0.0),),  # one short chirp: noticed, not an alarm
    "ending_soon": ((880, 0.08, 0.08), (1175, 0.08, 0.0)),  # soft: two short notes, well below the finish tune
}


def led_steps(led: Led) -> Iterator[tuple[float, float]]:
    """(brightness, seconds) steps of ``led``'s mode, forever; a steady mode is one step of infinite length."""
    if led.mode == "off":
        yield 0.0, math.inf
    elif led.mode == "on":
        yield led.level, math.inf
    elif led.mode == "pulse":
        step = PULSE_PERIOD_S / PULSE_STEPS
        while True:
            for i in range(PULSE_STEPS):
                # A triangle wave through 0.05..1: never fully dark, so "printing" never looks like "off".
                phase = 1 - abs(2 * i / PULSE_STEPS - 1)
                yield round(0.05 + 0.95 * phase, 3), step
    else:
        on, off = BLINK[led.mode]
        while True:
            yield 1.0, on
            yield 0.0, off


@dataclass
class Recorder:
    """Output changes as (trio time, output name, value); bounded, newest last."""

    limit: int = 2000
    changes: list[tuple[float, str, float]] = field(default_factory=list)

    def add(self, name: str, value: float) -> None:
        self.changes.append((trio.current_time(), name, value))
        del self.changes[: -self.limit]

    def of(self, name: str) -> list[tuple[float, float]]:
        return [(t, v) for t, n, v in self.changes if n == name]


class LedDriver:
    """One LED (a gpiozero ``PWMLED`` or ``LED``) following the mode it is given; :meth:`run` does the timing."""

    def __init__(self, name: str, device: Any, recorder: Recorder) -> None:
        self.name = name
        self.device = device
        self.recorder = recorder
        self.led = Led()
        self.value = 0.0
        self._changed = trio.Event()

    def set(self, led: Led) -> None:
        if (led.mode, led.level) != (self.led.mode, self.led.level):
            self.led = led
            self._changed.set()
        else:
            self.led = led  # same output; keep the newest reason

    def _write(self, value: float) -> None:
        if value == self.value:
            return
        self.value = value
        if self.device is not None:
            self.device.value = value
        self.recorder.add(self.name, value)

    async def run(self) -> None:
        while True:
            self._changed = trio.Event()
            with trio.CancelScope() as scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._play, self.led)
                    await self._changed.wait()
                    scope.cancel()

    async def _play(self, led: Led) -> None:
        for value, seconds in led_steps(led):
            self._write(value)
            await trio.sleep(seconds)


class BuzzerDriver:
    """Plays one pattern at a time on an active buzzer (on/off) or a passive one (a PWM tone at 50 % duty)."""

    def __init__(self, device: Any, recorder: Recorder, *, passive: bool) -> None:
        self.device = device
        self.recorder = recorder
        self.passive = passive
        self.playing: PatternName | None = None
        self.value = 0.0  # the tone now sounding (Hz), 0 when silent
        self.played: list[tuple[float, PatternName]] = []  # (trio time, pattern) of every start, newest last
        self._send, self._receive = trio.open_memory_channel[PatternName](8)
        self._scope: trio.CancelScope | None = None

    def play(self, pattern: PatternName) -> None:
        try:
            self._send.send_nowait(pattern)
        except trio.WouldBlock:
            log.warning("buzzer: too many patterns queued; %s dropped", pattern)

    def silence(self) -> None:
        """Stop the current pattern and forget queued ones."""
        while True:
            try:
                self._receive.receive_nowait()
            except trio.WouldBlock:
                break
        if self._scope is not None:
            self._scope.cancel()

    def _write(self, frequency: float, on: bool) -> None:
        value = frequency if on else 0.0
        if value == self.value:
            return
        self.value = value
        if self.device is not None:
            if self.passive and on:
                self.device.frequency = frequency
            self.device.value = (0.5 if self.passive else 1.0) if on else 0.0
        self.recorder.add("buzzer", value)

    async def run(self) -> None:
        async for pattern in self._receive:
            self.playing = pattern
            self.played.append((trio.current_time(), pattern))
            del self.played[:-200]
            with trio.CancelScope() as self._scope:
                try:
                    for frequency, on_s, off_s in PATTERNS[pattern]:
                        self._write(frequency, True)
                        await trio.sleep(on_s)
                        self._write(frequency, False)
                        await trio.sleep(off_s)
                finally:
                    self._write(0.0, False)
                    self.playing = None
            self._scope = None


class ButtonWatcher:
    """Turns a gpiozero ``Button``'s presses into short and long presses, timed in trio.

    gpiozero calls back from its own thread (or, with mock pins, from whoever drives the pin); the callbacks only
    hand the edge to trio through the token, in one place.
    """

    def __init__(
        self, device: Any, token: trio.lowlevel.TrioToken, *, long_press_s: float = 2.0,
        on_short: Callable[[], None], on_long: Callable[[], None],
    ) -> None:
        self.long_press_s = long_press_s
        self.on_short = on_short
        self.on_long = on_long
        self._send, self._receive = trio.open_memory_channel[bool](64)
        device.when_pressed = lambda *_: token.run_sync_soon(self._edge, True)
        device.when_released = lambda *_: token.run_sync_soon(self._edge, False)

    def _edge(self, pressed: bool) -> None:
        try:
            self._send.send_nowait(pressed)
        except trio.WouldBlock:
            log.warning("button: edges arriving faster than handled; one dropped")

    async def run(self) -> None:
        while True:
            if not await self._receive.receive():
                continue  # a release without a press (started held down)
            with trio.move_on_after(self.long_press_s) as timer:
                while await self._receive.receive():
                    pass
            if timer.cancelled_caught:
                self.on_long()
                while await self._receive.receive():
                    pass  # wait for the release that ends the long press
            else:
                self.on_short()
