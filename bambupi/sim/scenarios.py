"""Scripted scenarios for the simulated printer (``bambupi sim --scenario NAME``).

Print progress runs on simulated time (``time_scale`` simulated seconds per real second); the link scenarios
(``silent``, ``drop``) use real seconds because they exist to exercise the client's real-time stale and reconnect
timers. Everything sleeps on trio's clock, so tests can run a whole scenario under ``autojump_clock``.

| name     | what happens                                                                                   |
|----------|------------------------------------------------------------------------------------------------|
| print    | prints heat up, run through their layers, finish, sit a while, and the next one starts         |
| hms      | while printing, raises and clears one HMS code of each severity: fatal, serious, common, info  |
| pause    | each print pauses at 30 % for a minute, then resumes                                           |
| fail     | each print fails at 40 % (print_error set), then the printer sits in FAILED a while            |
| silent   | printing, but every 30 s the printer goes quiet for 150 s with the TCP session left open        |
| drop     | printing, and every 45 s all client connections are dropped                                     |
| idle     | an idle printer: temperatures at room level, nothing happening                                 |
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

import trio

from bambupi.sim.printer import DEFAULT_FAILURE, ModelProfile, SimulatedPrinter

Scenario = Callable[[SimulatedPrinter], Awaitable[None]]

# (subtask name, layers, printing minutes)
JOBS: Final = (
    ("3DBenchy_PLA_0.2mm", 240, 16.0),
    ("Cable clips x8", 60, 9.0),
    ("Desk organizer", 310, 42.0),
)
FIRST_PRINT_AFTER_S: Final = 5.0  # simulated; short so `bambupi demo` shows a print almost at once
BETWEEN_PRINTS_S: Final = 120.0  # simulated; the printer sits in FINISH/FAILED like a real one until the next job

HMS_SHOW_S: Final = 30.0
HMS_GAP_S: Final = 15.0
PAUSE_AT_PERCENT: Final = 30
PAUSE_FOR_S: Final = 60.0
FAIL_AT_PERCENT: Final = 40
SILENT_TALK_S: Final = 30.0  # real seconds
# Real seconds: longer than the 120 s after which bambupi calls a printer offline (stale after 60 s), so one
# silence shows all three: "Reconnecting — no data", then "Offline", then back online.
SILENT_QUIET_S: Final = 150.0
DROP_EVERY_S: Final = 45.0  # real seconds


def hms_examples(profile: ModelProfile) -> dict[str, tuple[int, int]]:
    """One ``(attr, code)`` per severity (code >> 16: 1 fatal, 2 serious, 3 common, 4 info)."""
    ams_module = 0x12 if profile.ams_lite else 0x07
    return {
        "fatal": (0x03000100, 0x00010003),  # motion controller
        "serious": ((ams_module << 24) | 0x2000, 0x00020001),  # AMS / AMS lite unit 0
        "common": (0x0C000300, 0x00030008),  # camera / AI (xcam)
        "info": (0x05000400, 0x00040001),  # mainboard
    }


async def sim_sleep(printer: SimulatedPrinter, seconds: float) -> None:
    await trio.sleep(seconds / printer.time_scale)


def _is_done(printer: SimulatedPrinter) -> bool:
    return printer.gcode_state in ("FINISH", "FAILED", "IDLE")


def _reached(percent: int) -> Callable[[SimulatedPrinter], bool]:
    return lambda printer: printer.percent >= percent or _is_done(printer)


async def _print_forever(printer: SimulatedPrinter, during: Callable[[SimulatedPrinter], Awaitable[None]]) -> None:
    await sim_sleep(printer, FIRST_PRINT_AFTER_S)
    for name, layers, minutes in itertools.cycle(JOBS):
        printer.start_print(name, layers, minutes)
        await during(printer)
        await printer.wait_until(_is_done)
        await sim_sleep(printer, BETWEEN_PRINTS_S)


async def _nothing(printer: SimulatedPrinter) -> None:
    return None


async def _pause_once(printer: SimulatedPrinter) -> None:
    await printer.wait_until(_reached(PAUSE_AT_PERCENT))
    if printer.pause():
        await sim_sleep(printer, PAUSE_FOR_S)
        printer.resume()


async def _fail_once(printer: SimulatedPrinter) -> None:
    await printer.wait_until(_reached(FAIL_AT_PERCENT))
    printer.fail(DEFAULT_FAILURE)


async def scenario_print(printer: SimulatedPrinter) -> None:
    await _print_forever(printer, _nothing)


async def scenario_pause(printer: SimulatedPrinter) -> None:
    await _print_forever(printer, _pause_once)


async def scenario_fail(printer: SimulatedPrinter) -> None:
    await _print_forever(printer, _fail_once)


async def scenario_hms(printer: SimulatedPrinter) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scenario_print, printer)
        examples = hms_examples(printer.profile)
        while True:
            for code in examples.values():
                await sim_sleep(printer, HMS_GAP_S)
                printer.set_hms([code])
                await sim_sleep(printer, HMS_SHOW_S)
                printer.set_hms([])


async def scenario_silent(printer: SimulatedPrinter) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scenario_print, printer)
        while True:
            await trio.sleep(SILENT_TALK_S)
            printer.go_silent()
            await trio.sleep(SILENT_QUIET_S)
            printer.resume_talking()


async def scenario_drop(printer: SimulatedPrinter) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scenario_print, printer)
        while True:
            await trio.sleep(DROP_EVERY_S)
            printer.drop_clients()


async def scenario_idle(printer: SimulatedPrinter) -> None:
    await trio.sleep_forever()


SCENARIOS: Final[Mapping[str, Scenario]] = {
    "print": scenario_print,
    "hms": scenario_hms,
    "pause": scenario_pause,
    "fail": scenario_fail,
    "silent": scenario_silent,
    "drop": scenario_drop,
    "idle": scenario_idle,
}


async def run_scenario(name: str, printer: SimulatedPrinter) -> None:
    try:
        scenario = SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)}") from None
    await scenario(printer)
