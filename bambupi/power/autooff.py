"""Auto-off: switch a printer's plug off after a print, only when that is safe.

The rule is one pure function, :func:`decide` (printer object + plug reading + timer + policy + now in, a
:class:`Decision` with its reason out), so every case is a plain-data test. :class:`AutoOff` keeps each printer's
timer, arms it on print events, and reports what it decided; the power service acts on the decisions.

Policy (``[printer.plug]``): after a finish (and, with ``auto_off_after_failure``, a failure or cancel) wait until
the nozzle is below ``auto_off_nozzle_below_c`` and at least ``auto_off_after_min`` minutes have passed, warn
``auto_off_warning_s`` before, then switch off. Never while the printer is in a job (printer/phase.py), never while
it is busy in a non-idle stage (filament loading, calibration...), never when its state is unknown (link down)
unless ``auto_off_when_offline``. A new print, :meth:`AutoOff.cancel` (the panel's button, the page) or the owner
switching the plug by hand disarms it. Only an armed timer can act, and switching off ends it (:func:`step`): the
plug is then left alone until another print ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from bambupi.config import PlugConfig
from bambupi.power.plugs import PlugReading
from bambupi.printer.phase import IN_JOB, job_phase

log = logging.getLogger("bambupi.power.autooff")

Action = Literal["wait", "warn", "off", "disarm"]
ARMING_EVENTS: Final = {"job_finished": "finished", "job_failed": "failed", "job_cancelled": "cancelled"}


@dataclass(frozen=True)
class Timer:
    """A printer's armed auto-off: when the print ended and, once sent, when the warning went out (monotonic clock,
    as every ``now`` here: a step of the wall clock must not shorten the wait or the warning)."""

    armed_at: float
    because: str  # finished | failed | cancelled
    warned_at: float | None = None


@dataclass(frozen=True)
class Decision:
    action: Action
    code: str  # stable short name, logged when it changes
    reason: str  # for people: logs, the page, the OLED
    off_at: float | None = None  # when the plug will be switched off, once that is known (same clock as ``now``)


def arms(event_kind: str, policy: PlugConfig) -> str | None:
    """What ending ``event_kind`` arms the timer for (``finished``...), or None when the policy says no."""
    because = ARMING_EVENTS.get(event_kind)
    if because is None or not policy.auto_off:
        return None
    if because != "finished" and not policy.auto_off_after_failure:
        return None
    return because


def decide(
    printer: Mapping[str, Any], reading: PlugReading | None, timer: Timer, policy: PlugConfig, now: float
) -> Decision:
    """What to do now for an armed printer. Checks run from "must stop" to "may proceed"."""
    state = printer.get("state") or {}
    gcode_state = state.get("gcode_state")
    if job_phase(state) in IN_JOB:  # as last reported: a printer that fell silent mid-print may still print
        return Decision("disarm", "printing", f"the printer is {gcode_state} again: auto-off cancelled")
    if reading is not None and not reading.on:
        return Decision("disarm", "plug_off", "the plug is already off")
    connection = printer.get("connection")
    online = connection == "online"
    if not online and not policy.auto_off_when_offline:
        return Decision("wait", "unknown_state", f"printer link is {connection}: its state is unknown, waiting")
    if online:
        stage = _busy_stage(state)
        if stage is not None:
            return Decision("wait", "busy", f"the printer is busy (stage {stage}), waiting")
        nozzle = _hottest_nozzle(state)
        if nozzle is None:
            return Decision("wait", "no_temperature", "nozzle temperature unknown, waiting")
        if nozzle >= policy.auto_off_nozzle_below_c:
            return Decision(
                "wait", "hot", f"nozzle {nozzle:.0f} °C, waiting for below {policy.auto_off_nozzle_below_c:g} °C"
            )
    earliest = timer.armed_at + policy.auto_off_after_min * 60.0
    if timer.warned_at is None:
        if now < earliest - policy.auto_off_warning_s:
            return Decision("wait", "minimum_time", f"waiting {policy.auto_off_after_min:g} min after the print")
        off_at = max(earliest, now + policy.auto_off_warning_s)
        return Decision("warn", "warning", f"switching the printer off in {off_at - now:.0f} s", off_at)
    off_at = max(earliest, timer.warned_at + policy.auto_off_warning_s)
    if now < off_at:
        return Decision("wait", "warning", f"switching the printer off in {off_at - now:.0f} s", off_at)
    why = "nozzle cool" if online else "printer unreachable and auto_off_when_offline is set"
    return Decision("off", "off", f"print {timer.because}, {why}: switching the plug off", off_at)


IDLE: Final = Decision("wait", "idle", "not armed")


def step(
    timer: Timer | None, printer: Mapping[str, Any], reading: PlugReading | None, policy: PlugConfig, now: float
) -> tuple[Timer | None, Decision]:
    """One evaluation: the timer after it and what to do now. Without a timer there is nothing to do: an auto-off
    that fired (or was disarmed) never acts again, so a plug switched back on by hand stays on until the next print
    ends and arms a new timer."""
    if timer is None:
        return None, IDLE
    decision = decide(printer, reading, timer, policy, now)
    if decision.action == "warn":
        return replace(timer, warned_at=now), decision
    if decision.action in ("disarm", "off"):
        return None, decision
    return timer, decision


def what_off_interrupts(printer: Mapping[str, Any]) -> str | None:
    """What switching the plug off now would cut, as the confirmation question names it; None when the printer is
    idle (the last state it reported; a printer that fell silent mid-print may still be printing)."""
    state = printer.get("state") or {}
    stage = _busy_stage(state)
    last = "" if printer.get("connection") == "online" else " (as last reported)"
    if job_phase(state) in IN_JOB:
        name = state.get("subtask_name")
        paused = "paused " if job_phase(state) == "paused" else ""
        what = f"the {paused}print" + (f" '{name}'" if isinstance(name, str) and name else "")
        percent = state.get("percent")
        at = f" at {percent} %" if isinstance(percent, int) and not isinstance(percent, bool) else ""
        return f"This stops {what}{at}{last}."
    if stage is not None:
        return f"The printer is busy (stage {stage}){last}: switching off interrupts it."
    return None


def _busy_stage(state: Mapping[str, Any]) -> int | None:
    """The stage the printer is busy in (filament unloading, calibration...). The reducer's ``stage`` is None when
    the printer is idle, whatever idle code its model uses (printer/state.py), so any number here means busy."""
    stage = state.get("stage")
    return stage if isinstance(stage, int) and not isinstance(stage, bool) else None


def _hottest_nozzle(state: Mapping[str, Any]) -> float | None:
    temps = [state.get("nozzle_temp")]
    nozzles = state.get("nozzles")
    if isinstance(nozzles, dict):
        temps.extend(n.get("temp") for n in nozzles.values() if isinstance(n, dict))
    found = [float(t) for t in temps if isinstance(t, int | float) and not isinstance(t, bool)]
    return max(found) if found else None


class AutoOff:
    """The timers of every printer with auto-off, and what was last decided for each (for the page/panel)."""

    def __init__(
        self, policies: dict[str, PlugConfig], *, to_wall: Callable[[float], float] = lambda at: at
    ) -> None:
        """Times given to it (``now``) are on the monotonic clock, so a step of the wall clock never shortens a
        warning; ``to_wall`` turns its ``off_at`` into wall-clock time for :meth:`status` (the page, the panel)."""
        self.policies = policies
        self._to_wall = to_wall
        self._timers: dict[str, Timer] = {}
        self._last: dict[str, Decision] = {}

    def set_policy(self, printer_id: str, policy: PlugConfig | None) -> None:
        """A plug edited on the settings page: a new policy starts unarmed (a pending countdown is dropped)."""
        self._timers.pop(printer_id, None)
        self._last.pop(printer_id, None)
        if policy is not None and policy.auto_off:
            self.policies[printer_id] = policy
        else:
            self.policies.pop(printer_id, None)

    def on_event(self, event: Mapping[str, Any], now: float) -> None:
        printer_id = event.get("printer")
        policy = self.policies.get(printer_id) if isinstance(printer_id, str) else None
        if policy is None or not isinstance(printer_id, str):
            return
        if event.get("kind") == "job_started" and printer_id in self._timers:
            self._disarm(printer_id, Decision("disarm", "new_print", "a new print started: auto-off cancelled"))
            return
        because = arms(str(event.get("kind")), policy)
        if because is not None:
            self._timers[printer_id] = Timer(armed_at=now, because=because)
            self._record(printer_id, Decision("wait", "armed", f"print {because}: auto-off armed"))

    def cancel(self, printer_id: str) -> bool:
        """Disarm (the panel's button, the page's Cancel); True when something was armed."""
        return self._cancel(printer_id, Decision("disarm", "cancelled", "auto-off cancelled by the user"))

    def switched_by_hand(self, printer_id: str, on: bool) -> None:
        """The owner switched the plug: that wins over a pending auto-off (an On is never undone)."""
        self._cancel(printer_id, Decision("disarm", "manual", f"the plug was switched {'on' if on else 'off'} by "
                                                              "hand: auto-off cancelled"))

    def evaluate(
        self, printer_id: str, printer: Mapping[str, Any], reading: PlugReading | None, now: float
    ) -> Decision:
        """Decide for one printer and update its timer; ``off`` means: switch the plug off now (once)."""
        timer = self._timers.get(printer_id)
        if timer is None:
            return IDLE  # what was decided last stays in status() for the page, it is never acted on again
        timer, decision = step(timer, printer, reading, self.policies[printer_id], now)
        if timer is None:
            self._timers.pop(printer_id, None)
        else:
            self._timers[printer_id] = timer
        self._record(printer_id, decision)
        return decision

    def switched_off(self, printer_id: str) -> None:
        """The plug is off: logged, and what the page says until the next print."""
        self._record(printer_id, Decision("off", "switched_off", "the plug was switched off after the print"))

    def failed(self, printer_id: str, why: str) -> None:
        self._record(printer_id, Decision("disarm", "switch_failed", f"could not switch the plug off: {why}"))

    def status(self, printer_id: str) -> Mapping[str, Any]:
        timer = self._timers.get(printer_id)
        last = self._last.get(printer_id)
        return {
            "enabled": printer_id in self.policies and self.policies[printer_id].auto_off,
            "armed": timer is not None,
            "warning": timer is not None and timer.warned_at is not None,
            "code": last.code if last else "idle",
            "reason": last.reason if last else "not armed",
            "off_at": self._to_wall(last.off_at) if last and last.off_at is not None and timer is not None else None,
        }

    def _cancel(self, printer_id: str, decision: Decision) -> bool:
        if printer_id not in self._timers:
            return False
        self._disarm(printer_id, decision)
        return True

    def _disarm(self, printer_id: str, decision: Decision) -> None:
        self._timers.pop(printer_id, None)
        self._record(printer_id, decision)

    def _record(self, printer_id: str, decision: Decision) -> None:
        previous = self._last.get(printer_id)
        self._last[printer_id] = decision
        if previous is None or previous.code != decision.code:
            # Every decision is logged with its reason; a countdown or a cooling nozzle is logged once.
            level = logging.WARNING if decision.action in ("warn", "off") else logging.INFO
            log.log(level, "%s: auto-off: %s", printer_id, decision.reason)
