"""The alarm rules: printer objects, events, acknowledgements and the time in; LED modes and buzzer patterns out.

Pure: no clock, no I/O. The panel service feeds it and drives the hardware with what comes back. The rules are the
README's table "The lights, buzzer and screen":

- green = activity: fast blink when a print finished (until acknowledged or 30 min pass), pulse while printing,
  steady (dimmed) when online and idle, off when no printer is online;
- amber = attention: blink for a serious HMS, steady for a common (or unknown-severity) HMS or a pause, slow blink
  while connecting, stale or offline;
- red = fault: blink for a fatal HMS, steady for a failed print (until acknowledged or the next print), slow blink
  when offline and not online for longer than the grace period. The grace runs from when the printer stopped
  being online (its reports stopped), not from when it was called offline: ``offline`` already means no report
  for ``offline_after_s``, so with the defaults a silent printer turns red as it goes offline, not a minute later.

Within an LED the most urgent rule wins; with several printers the most urgent printer drives each LED. Info HMS
changes no LED. Standing HMS codes light LEDs (they are real conditions) but never sound. Silent HMS codes (no
official text, or reported all the time by a model: hms.decode_hms) light nothing and sound nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from bambupi.printer.phase import WORKING, job_phase

LedMode = Literal["off", "on", "pulse", "blink", "slow_blink", "fast_blink"]
LedName = Literal["green", "amber", "red"]
PatternName = Literal["fatal", "serious", "finished", "failed"]

FINISHED_BLINK_S: Final = 30 * 60.0
FATAL_REPEAT_S: Final = 30.0
IDLE_GREEN_LEVEL: Final = 0.2  # "steady (dimmed)": an idle box should not light up the room


@dataclass(frozen=True)
class Led:
    mode: LedMode = "off"
    level: float = 1.0  # brightness for "on" (PWM); blinking modes use full brightness
    rank: int = 0  # how urgent the rule that chose this is, within its LED (higher wins)
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "level": self.level, "reason": self.reason}


OFF: Final = Led()


@dataclass(frozen=True)
class AlarmState:
    """What the rules remember between calls; every field is keyed by printer id."""

    finished_at: Mapping[str, float] = field(default_factory=dict)  # print finished, not yet acknowledged
    failed_acked: frozenset[str] = frozenset()  # failed print acknowledged (red off until the next print)
    fatal_due: Mapping[tuple[str, str], float] = field(default_factory=dict)  # (printer, code) -> next repeat
    down_since: Mapping[str, float] = field(default_factory=dict)  # not online since (no reports arriving)


# --- LEDs -----------------------------------------------------------------------------------------------------------


def _state(printer: Mapping[str, Any]) -> Mapping[str, Any]:
    state = printer.get("state")
    return state if isinstance(state, Mapping) else {}


def _severities(printer: Mapping[str, Any]) -> set[str]:
    entries = _state(printer).get("hms")
    if not isinstance(entries, list):
        return set()
    # A silent code (no official text, or one a model reports all the time) is shown, never an alarm.
    return {str(e.get("severity")) for e in entries if isinstance(e, Mapping) and not e.get("silent")}


def _failed(printer: Mapping[str, Any]) -> bool:
    # The known end (hms.job_result): a cancel, or a FAILED whose end is still pending (a stop's first report
    # carries no error), is no failure.
    result = _state(printer).get("job_result")
    return isinstance(result, Mapping) and result.get("outcome") == "failed"


def green(printer: Mapping[str, Any], alarms: AlarmState, now: float) -> Led:
    pid = printer.get("id", "")
    finished = alarms.finished_at.get(pid)
    if finished is not None and now - finished < FINISHED_BLINK_S:
        return Led("fast_blink", 1.0, 3, "print finished")
    if printer.get("connection") != "online":
        return OFF
    if job_phase(_state(printer)) in WORKING:
        return Led("pulse", 1.0, 2, "printing")
    return Led("on", IDLE_GREEN_LEVEL, 1, "online")


def amber(printer: Mapping[str, Any]) -> Led:
    severities = _severities(printer)
    if "serious" in severities:
        return Led("blink", 1.0, 3, "serious HMS")
    if severities & {"common", "unknown"}:
        return Led("on", 1.0, 2, "HMS")
    if job_phase(_state(printer)) == "paused":
        return Led("on", 1.0, 2, "paused")
    if printer.get("connection") in ("connecting", "stale", "offline"):
        return Led("slow_blink", 1.0, 1, str(printer.get("connection")))
    return OFF


def red(printer: Mapping[str, Any], alarms: AlarmState, now: float, grace_s: float) -> Led:
    pid = printer.get("id", "")
    if "fatal" in _severities(printer):
        return Led("blink", 1.0, 3, "fatal HMS")
    if _failed(printer) and pid not in alarms.failed_acked:
        return Led("on", 1.0, 2, "print failed")
    since = alarms.down_since.get(pid)
    if printer.get("connection") == "offline" and since is not None and now - since >= grace_s:
        return Led("slow_blink", 1.0, 1, "offline")
    return OFF


def leds(
    printers: Mapping[str, Mapping[str, Any]], alarms: AlarmState, now: float, *, grace_s: float
) -> dict[LedName, Led]:
    """Each LED's mode: the most urgent printer's most urgent rule (ties: the first printer)."""
    result: dict[LedName, Led] = {"green": OFF, "amber": OFF, "red": OFF}
    for printer in printers.values():
        candidates: dict[LedName, Led] = {
            "green": green(printer, alarms, now),
            "amber": amber(printer),
            "red": red(printer, alarms, now, grace_s),
        }
        for name, led in candidates.items():
            if led.rank > result[name].rank:
                result[name] = dataclasses.replace(led, reason=f"{printer.get('id')}: {led.reason}")
    return result


def observe(alarms: AlarmState, printers: Mapping[str, Mapping[str, Any]], now: float) -> AlarmState:
    """Track what the rules need over time from the latest printer objects: since when each is not online."""
    down = {pid: alarms.down_since.get(pid, now) for pid, p in printers.items() if p.get("connection") != "online"}
    finished = {pid: t for pid, t in alarms.finished_at.items() if pid in printers and now - t < FINISHED_BLINK_S}
    fatal = {key: due for key, due in alarms.fatal_due.items() if _has_code(printers.get(key[0]), key[1])}
    return dataclasses.replace(alarms, down_since=down, finished_at=finished, fatal_due=fatal)


def _has_code(printer: Mapping[str, Any] | None, code: str) -> bool:
    if printer is None:
        return False
    entries = _state(printer).get("hms")
    return isinstance(entries, list) and any(isinstance(e, Mapping) and e.get("code") == code for e in entries)


# --- the buzzer -----------------------------------------------------------------------------------------------------


def on_event(
    alarms: AlarmState, event: Mapping[str, Any], now: float, *, quiet: bool
) -> tuple[AlarmState, PatternName | None]:
    """The alarm state after ``event`` and the pattern to sound now (None: silence). Quiet hours mute all but fatal."""
    kind, pid = event.get("kind"), str(event.get("printer"))
    sound: PatternName | None = None
    if kind == "job_started":
        alarms = dataclasses.replace(
            alarms,
            finished_at={p: t for p, t in alarms.finished_at.items() if p != pid},
            failed_acked=alarms.failed_acked - {pid},
        )
    elif kind == "job_finished":
        alarms = dataclasses.replace(alarms, finished_at={**alarms.finished_at, pid: now})
        sound = "finished"
    elif kind == "job_failed":
        alarms = dataclasses.replace(alarms, failed_acked=alarms.failed_acked - {pid})
        sound = "failed"
    elif kind == "hms_raised" and not _standing(event) and not _silent(event):
        severity = event.get("severity")
        if severity == "fatal":
            key = (pid, str(event.get("code")))
            alarms = dataclasses.replace(alarms, fatal_due={**alarms.fatal_due, key: now + FATAL_REPEAT_S})
            return alarms, "fatal"
        if severity == "serious":
            sound = "serious"
    elif kind == "hms_cleared":
        key = (pid, str(event.get("code")))
        alarms = dataclasses.replace(alarms, fatal_due={k: v for k, v in alarms.fatal_due.items() if k != key})
    return alarms, None if quiet else sound


def _standing(event: Mapping[str, Any]) -> bool:
    hms = event.get("hms")
    return isinstance(hms, Mapping) and bool(hms.get("standing"))


def _silent(event: Mapping[str, Any]) -> bool:
    hms = event.get("hms")
    return isinstance(hms, Mapping) and bool(hms.get("silent"))


def due(alarms: AlarmState, now: float) -> tuple[AlarmState, PatternName | None]:
    """A fatal alarm repeats every 30 s until acknowledged or cleared: the pattern if one is due now."""
    if not any(t <= now for t in alarms.fatal_due.values()):
        return alarms, None
    fatal = {key: (now + FATAL_REPEAT_S if t <= now else t) for key, t in alarms.fatal_due.items()}
    return dataclasses.replace(alarms, fatal_due=fatal), "fatal"


def pending(alarms: AlarmState, printers: Mapping[str, Mapping[str, Any]], now: float) -> list[str]:
    """What a button press would acknowledge, in words (empty: the press shows the next screen)."""
    found = [f"{pid} {code}: fatal" for pid, code in alarms.fatal_due]
    found += [f"{pid}: finished" for pid, t in alarms.finished_at.items() if now - t < FINISHED_BLINK_S]
    found += [f"{pid}: failed" for pid, p in printers.items() if _failed(p) and pid not in alarms.failed_acked]
    return found


def acknowledge(alarms: AlarmState, printers: Mapping[str, Mapping[str, Any]]) -> AlarmState:
    """Silence every current alarm: fatal repeats stop, the finished blink and the failed light go out.

    The LEDs that show a live condition (an HMS still active) stay: acknowledging silences, it does not hide.
    """
    failed = {pid for pid, p in printers.items() if _failed(p)}
    return dataclasses.replace(alarms, fatal_due={}, finished_at={}, failed_acked=alarms.failed_acked | failed)
