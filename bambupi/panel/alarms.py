"""The alarm rules: printer objects, events, acknowledgements and the time in; LED modes and buzzer patterns out.

Pure: no clock, no I/O. The panel service feeds it and drives the hardware with what comes back. The rules are the
README's table "The lights, buzzer and screen":

- green = activity: fast blink when a print finished (until acknowledged: the button, the door opening, the next
  job, or ``panel.finished_hold_s``), pulse while printing, steady (dimmed) when online and idle, off when no
  printer is online;
- amber = attention: blink for a serious HMS, steady for a common (or unknown-severity) HMS or a pause, slow blink
  while connecting, stale or offline;
- red = fault: blink for a fatal HMS, steady for a failed print (until acknowledged or the next print), slow blink
  when offline and not online for longer than the grace period. The grace runs from when the printer stopped
  being online (its reports stopped), not from when it was called offline: ``offline`` already means no report
  for ``offline_after_s``, so with the defaults a silent printer turns red as it goes offline, not a minute later.

The screen (:func:`attention`): a printer that needs attention takes it, the worst first (a fatal HMS, a new HMS, a
failed print, the door opened during a print, "done soon", a finished or cancelled print), and among equals the one
finishing soonest; the button acknowledges the printer shown. The door (:func:`doors`): opened during a print, a
chirp and a note; opened while no print runs, it acknowledges the end and may switch the chamber light on.

Within an LED the most urgent rule wins; with several printers the most urgent printer drives each LED. Info HMS
changes no LED. Standing HMS codes light LEDs (they are real conditions) but never sound. Silent HMS codes (no
official text, or reported all the time by a model: hms.decode_hms) light nothing and sound nothing.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from bambupi.printer.commands import CHAMBER_LIGHTS
from bambupi.printer.phase import IN_JOB, WORKING, job_phase

LedMode = Literal["off", "on", "pulse", "blink", "slow_blink", "fast_blink"]
LedName = Literal["green", "amber", "red"]
PatternName = Literal["fatal", "serious", "finished", "failed", "door", "ending_soon"]
Ending = Literal["finished", "failed", "cancelled"]
NoticeKind = Literal["door", "ending_soon"]
# What takes the screen, worst first (:func:`attention`): an HMS screen, a print's end, a short-lived notice.
AttentionScreen = Literal["hms", "finished", "failed", "cancelled", "door", "ending_soon"]
ActionName = Literal["light_on", "light_off"]

FINISHED_BLINK_S: Final = 30 * 60.0  # panel.finished_hold_s's default
NOTICE_S: Final[Mapping[NoticeKind, float]] = {"door": 30.0, "ending_soon": 60.0}  # how long a notice holds the screen
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
    ended: Mapping[str, tuple[Ending, float]] = field(default_factory=dict)  # a job's end, its screen not yet seen
    held: frozenset[str] = frozenset()  # a new HMS holds the screen until acknowledged or cleared
    notices: Mapping[str, tuple[NoticeKind, float]] = field(default_factory=dict)  # (kind, until) on the screen
    door: Mapping[str, bool] = field(default_factory=dict)  # the door as last seen (None: never reported)
    light_until: Mapping[str, float] = field(default_factory=dict)  # chamber light the box switched on, off at


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


def _holding(since: float, now: float, hold_s: float) -> bool:
    return hold_s <= 0 or now - since < hold_s  # 0: until acknowledged, however long


def green(printer: Mapping[str, Any], alarms: AlarmState, now: float, hold_s: float = FINISHED_BLINK_S) -> Led:
    pid = printer.get("id", "")
    finished = alarms.finished_at.get(pid)
    if finished is not None and _holding(finished, now, hold_s):
        return Led("fast_blink", 1.0, 3, "print finished")
    if printer.get("connection") != "online":
        return OFF
    if job_phase(_state(printer)) in WORKING:
        return Led("pulse", 1.0, 2, "printing")
    return Led("on", IDLE_GREEN_LEVEL, 1, "online")


def amber(printer: Mapping[str, Any], *, switched_off: bool = False) -> Led:
    """``switched_off``: its smart plug reads off, so not reporting is no connection trouble (no slow blink)."""
    severities = _severities(printer)
    if "serious" in severities:
        return Led("blink", 1.0, 3, "serious HMS")
    if severities & {"common", "unknown"}:
        return Led("on", 1.0, 2, "HMS")
    if job_phase(_state(printer)) == "paused":
        return Led("on", 1.0, 2, "paused")
    if printer.get("connection") in ("connecting", "stale", "offline") and not switched_off:
        return Led("slow_blink", 1.0, 1, str(printer.get("connection")))
    return OFF


def red(
    printer: Mapping[str, Any], alarms: AlarmState, now: float, grace_s: float, *, switched_off: bool = False
) -> Led:
    pid = printer.get("id", "")
    if "fatal" in _severities(printer):
        return Led("blink", 1.0, 3, "fatal HMS")
    if _failed(printer) and pid not in alarms.failed_acked:
        return Led("on", 1.0, 2, "print failed")
    since = alarms.down_since.get(pid)
    if printer.get("connection") == "offline" and since is not None and now - since >= grace_s and not switched_off:
        return Led("slow_blink", 1.0, 1, "offline")
    return OFF


def leds(
    printers: Mapping[str, Mapping[str, Any]], alarms: AlarmState, now: float, *, grace_s: float,
    hold_s: float = FINISHED_BLINK_S, plugs_off: Collection[str] = frozenset(),
) -> dict[LedName, Led]:
    """Each LED's mode: the most urgent printer's most urgent rule (ties: the first printer). A printer in
    ``plugs_off`` (its smart plug reads off) that does not report was switched off, by its owner or the box's
    auto-off after a print: no amber and red "offline" blinks for it, which said a fault (and kept blinking beside a
    finished print not yet seen for up to ``finished_hold_s``)."""
    result: dict[LedName, Led] = {"green": OFF, "amber": OFF, "red": OFF}
    for printer in printers.values():
        off = printer.get("id") in plugs_off and printer.get("connection") != "online"
        candidates: dict[LedName, Led] = {
            "green": green(printer, alarms, now, hold_s),
            "amber": amber(printer, switched_off=off),
            "red": red(printer, alarms, now, grace_s, switched_off=off),
        }
        for name, led in candidates.items():
            if led.rank > result[name].rank:
                result[name] = dataclasses.replace(led, reason=f"{printer.get('id')}: {led.reason}")
    return result


def observe(
    alarms: AlarmState, printers: Mapping[str, Mapping[str, Any]], now: float, *, hold_s: float = FINISHED_BLINK_S
) -> AlarmState:
    """Track what the rules need over time from the latest printer objects: since when each is not online, which
    ends, notices and held HMS screens are still current."""
    down = {pid: alarms.down_since.get(pid, now) for pid, p in printers.items() if p.get("connection") != "online"}
    finished = {pid: t for pid, t in alarms.finished_at.items() if pid in printers and _holding(t, now, hold_s)}
    fatal = {key: due for key, due in alarms.fatal_due.items() if _has_code(printers.get(key[0]), key[1])}
    ended = {pid: e for pid, e in alarms.ended.items() if pid in printers and _holding(e[1], now, hold_s)}
    notices = {pid: n for pid, n in alarms.notices.items() if pid in printers and now < n[1]}
    # A held HMS screen lets go once its printer lists no error at all (cleared, or the printer is gone).
    held = frozenset(pid for pid in alarms.held if _has_any_hms(printers.get(pid)))
    return dataclasses.replace(
        alarms, down_since=down, finished_at=finished, fatal_due=fatal, ended=ended, notices=notices, held=held
    )


def _has_any_hms(printer: Mapping[str, Any] | None) -> bool:
    entries = _state(printer).get("hms") if printer is not None else None
    return isinstance(entries, list) and any(isinstance(e, Mapping) for e in entries)


def _has_code(printer: Mapping[str, Any] | None, code: str) -> bool:
    if printer is None:
        return False
    entries = _state(printer).get("hms")
    return isinstance(entries, list) and any(isinstance(e, Mapping) and e.get("code") == code for e in entries)


# --- the buzzer -----------------------------------------------------------------------------------------------------


TAKEOVER: Final = frozenset({"fatal", "serious", "common", "unknown"})  # HMS severities that take the screen


def on_event(
    alarms: AlarmState, event: Mapping[str, Any], now: float, *, quiet: bool
) -> tuple[AlarmState, PatternName | None]:
    """The alarm state after ``event`` and the pattern to sound now (None: silence). Quiet hours mute all but fatal."""
    kind, pid = event.get("kind"), str(event.get("printer"))
    sound: PatternName | None = None
    if kind in ("job_finished", "job_failed", "job_cancelled"):
        # The job's notices (done soon, the door during it) are over with it: its end takes their place.
        alarms = dataclasses.replace(alarms, notices={p: n for p, n in alarms.notices.items() if p != pid})
    if kind in ("job_started", "job_joined"):
        alarms = dataclasses.replace(
            alarms,
            finished_at={p: t for p, t in alarms.finished_at.items() if p != pid},
            failed_acked=alarms.failed_acked - {pid},
            ended={p: e for p, e in alarms.ended.items() if p != pid},
            notices={p: n for p, n in alarms.notices.items() if p != pid},
        )
    elif kind == "job_finished":
        alarms = dataclasses.replace(
            alarms, finished_at={**alarms.finished_at, pid: now}, ended={**alarms.ended, pid: ("finished", now)}
        )
        sound = "finished"
    elif kind == "job_failed":
        alarms = dataclasses.replace(
            alarms, failed_acked=alarms.failed_acked - {pid}, ended={**alarms.ended, pid: ("failed", now)}
        )
        sound = "failed"
    elif kind == "job_cancelled":
        alarms = dataclasses.replace(alarms, ended={**alarms.ended, pid: ("cancelled", now)})
    elif kind == "job_ending_soon":
        alarms = _notice(alarms, pid, "ending_soon", now)
        sound = "ending_soon"
    elif kind == "hms_raised" and not _standing(event) and not _silent(event):
        severity = event.get("severity")
        if severity in TAKEOVER:
            alarms = dataclasses.replace(alarms, held=alarms.held | {pid})
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


def _notice(alarms: AlarmState, pid: str, kind: NoticeKind, now: float) -> AlarmState:
    return dataclasses.replace(alarms, notices={**alarms.notices, pid: (kind, now + NOTICE_S[kind])})


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


# --- the door -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DoorRules:
    """The ``[panel]`` settings of the door's rules."""

    chirp: bool = True  # door_chirp
    light: bool = False  # door_light: the owner allowed the box to switch the chamber light
    light_s: float = 300.0  # door_light_s


def doors(
    alarms: AlarmState, printers: Mapping[str, Mapping[str, Any]], now: float, rules: DoorRules
) -> tuple[AlarmState, PatternName | None, list[tuple[ActionName, str]]]:
    """What the doors did since the last look: the new state, a chirp to sound (None: none) and the light commands
    to send, as (``light_on`` | ``light_off``, printer id).

    Opened during a job (preparing, printing, paused): a chirp and DOOR OPEN on the screen (``rules.chirp``).
    Opened while no job runs: that printer's end is acknowledged (someone is at the printer), and the chamber light
    goes on where the owner allowed it, the printer accepts commands and the light is not on already; it goes off
    when the door closes or ``rules.light_s`` passes, only if the box switched it on. The first sight of a door
    (at start, or a printer back online) is no opening."""
    seen = dict(alarms.door)
    light_until = dict(alarms.light_until)
    actions: list[tuple[ActionName, str]] = []
    sound: PatternName | None = None
    for pid, printer in printers.items():
        state = _state(printer)
        door = state.get("door_open")
        if printer.get("connection") != "online" or not isinstance(door, bool):
            continue  # no news: an old report's door may long be shut
        before = seen.get(pid)
        seen[pid] = door
        if before is False and door:
            if job_phase(state) in IN_JOB:
                if rules.chirp:
                    alarms = _notice(alarms, pid, "door", now)
                    sound = "door"
            else:
                alarms = _end_seen(alarms, printers, pid)
                if rules.light and printer.get("controls_available") and not _light_on(state):
                    light_until[pid] = now + rules.light_s
                    actions.append(("light_on", pid))
        elif before and not door and light_until.pop(pid, None) is not None:
            actions.append(("light_off", pid))
    for pid, until in list(light_until.items()):
        if now >= until or pid not in printers:
            del light_until[pid]
            if pid in printers:
                actions.append(("light_off", pid))
    seen = {pid: door for pid, door in seen.items() if pid in printers}
    return dataclasses.replace(alarms, door=seen, light_until=light_until), sound, actions


def _end_seen(alarms: AlarmState, printers: Mapping[str, Mapping[str, Any]], pid: str) -> AlarmState:
    """Someone at the printer has seen how its job ended: the finished blink, the failed light and the end's screen
    go. An HMS alarm is not the door's to silence (the button's)."""
    failed = {pid} if pid in printers and _failed(printers[pid]) else set()
    return dataclasses.replace(
        alarms,
        finished_at={p: t for p, t in alarms.finished_at.items() if p != pid},
        failed_acked=alarms.failed_acked | failed,
        ended={p: e for p, e in alarms.ended.items() if p != pid},
    )


def _light_on(state: Mapping[str, Any]) -> bool:
    """A chamber light is on (the toolhead's work light, which X1/H2 printers also report, is not one)."""
    lights = state.get("lights")
    return isinstance(lights, Mapping) and any(lights.get(node) == "on" for node in CHAMBER_LIGHTS)


# --- the screen and the button --------------------------------------------------------------------------------------

_RANK: Final[Mapping[str, int]] = {
    "fatal": 0, "hms": 1, "failed": 2, "door": 3, "ending_soon": 4, "finished": 5, "cancelled": 5,
}


def needs(alarms: AlarmState, pid: str) -> tuple[int, AttentionScreen] | None:
    """What printer ``pid`` needs the screen for, as (rank, screen), the worst first; None: nothing."""
    if any(p == pid for p, _ in alarms.fatal_due):
        return _RANK["fatal"], "hms"
    if pid in alarms.held:
        return _RANK["hms"], "hms"
    found: list[tuple[int, AttentionScreen]] = []
    ended = alarms.ended.get(pid)
    if ended is not None:
        found.append((_RANK[ended[0]], ended[0]))
    notice = alarms.notices.get(pid)
    if notice is not None:
        found.append((_RANK[notice[0]], notice[0]))
    return min(found, default=None)


def attention(
    alarms: AlarmState, printers: Mapping[str, Mapping[str, Any]]
) -> tuple[str, AttentionScreen] | None:
    """The printer that needs the screen first and for what: the worst need, then the one finishing soonest (the
    least remaining time; printers without one after), then the configured order. None: the screens rotate."""
    found = []
    for order, (pid, printer) in enumerate(printers.items()):
        need = needs(alarms, pid)
        if need is not None:
            remaining = _state(printer).get("remaining_min")
            soon = remaining if isinstance(remaining, int | float) and not isinstance(remaining, bool) else math.inf
            found.append((need[0], soon, order, pid, need[1]))
    if not found:
        return None
    *_, pid, screen = min(found)
    return pid, screen


def pending(
    alarms: AlarmState, printers: Mapping[str, Mapping[str, Any]], now: float, printer: str | None = None
) -> list[str]:
    """What a button press would acknowledge, in words (empty: the press shows the next screen); ``printer``: only
    that printer's."""

    def mine(pid: str) -> bool:
        return printer is None or pid == printer

    found = [f"{pid} {code}: fatal" for pid, code in alarms.fatal_due if mine(pid)]
    fatal = {pid for pid, _ in alarms.fatal_due}
    found += [f"{pid}: HMS" for pid in sorted(alarms.held) if mine(pid) and pid not in fatal]
    found += [f"{pid}: finished" for pid in alarms.finished_at if mine(pid)]
    found += [f"{pid}: {e[0]}" for pid, e in alarms.ended.items() if mine(pid) and e[0] != "finished"]
    found += [f"{pid}: failed (light)" for pid, p in printers.items()
              if mine(pid) and _failed(p) and pid not in alarms.failed_acked and pid not in alarms.ended]
    found += [f"{pid}: {kind}" for pid, (kind, _) in alarms.notices.items() if mine(pid)]
    return found


def acknowledge(
    alarms: AlarmState, printers: Mapping[str, Mapping[str, Any]], printer: str | None = None
) -> AlarmState:
    """Silence the current alarms of ``printer`` (None: of every printer): fatal repeats stop, the finished blink and
    the failed light go out, the end's screen, a held HMS screen and notices let go.

    The LEDs that show a live condition (an HMS still active) stay: acknowledging silences, it does not hide.
    """

    def mine(pid: str) -> bool:
        return printer is None or pid == printer

    failed = {pid for pid, p in printers.items() if mine(pid) and _failed(p)}
    return dataclasses.replace(
        alarms,
        fatal_due={key: t for key, t in alarms.fatal_due.items() if not mine(key[0])},
        finished_at={pid: t for pid, t in alarms.finished_at.items() if not mine(pid)},
        failed_acked=alarms.failed_acked | failed,
        ended={pid: e for pid, e in alarms.ended.items() if not mine(pid)},
        held=frozenset(pid for pid in alarms.held if not mine(pid)),
        notices={pid: n for pid, n in alarms.notices.items() if not mine(pid)},
    )
