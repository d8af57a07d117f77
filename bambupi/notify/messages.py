"""What a notification says: a pure function from an event (and the printer's name) to a short message.

Messages are written for a phone's lock screen: the printer's name first, then what happened, then the detail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from bambupi.config.model import NotifyTopic
from bambupi.printer.hms import print_error_text

Priority = Literal["low", "default", "high", "urgent"]

# The event kinds behind each name users put in a channel's ``events`` list.
TOPICS: Final[Mapping[NotifyTopic, tuple[str, ...]]] = {
    "started": ("job_started",),
    "finished": ("job_finished",),
    "failed": ("job_failed",),
    "cancelled": ("job_cancelled",),
    "paused": ("job_paused",),
    "hms": ("hms_raised",),
    "offline": ("printer_offline",),
    "online": ("printer_online",),
    "progress": ("progress",),
    "power": ("power_warning", "power_off", "power_check"),
    "filament": ("filament_low",),
    "ending_soon": ("job_ending_soon",),  # not a default topic: a channel asks for it
}
TEST_KIND: Final = "test"  # the owner's "send a test notification"
# News that is wrong by the end of the quiet hours ("done in 5 min" at 03:00, read at 07:00): dropped, never held.
PERISHABLE: Final = frozenset({"job_ending_soon"})
SEVERITY_RANK: Final = {"fatal": 0, "serious": 1, "common": 2, "info": 3, "unknown": 2}


@dataclass(frozen=True)
class Message:
    kind: str
    printer: str | None
    title: str
    body: str
    priority: Priority
    tags: tuple[str, ...] = ()
    url: str | None = None  # the support article for an HMS error
    dedup_key: str = ""

    @property
    def urgent(self) -> bool:
        return self.priority == "urgent"

    def text(self) -> str:
        lines = [self.title, self.body] + ([self.url] if self.url else [])
        return "\n".join(line for line in lines if line)


def duration_text(seconds: float) -> str:
    minutes = max(0, round(seconds / 60))
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def message_for(event: dict[str, Any], name: str, *, started_at: float | None = None) -> Message | None:
    """The message for ``event`` about printer ``name``; None for events nobody is told about."""
    kind = event.get("kind")
    printer = event.get("printer")
    job = event.get("job") or "the print"
    key = f"{printer}:{kind}"
    at = event.get("at")
    took = f"Took {duration_text(at - started_at)}." if isinstance(at, int | float) and started_at else ""
    if kind == "job_started":
        return Message(kind, printer, f"{name}: started {job}", "", "low", ("printer",), dedup_key=f"{key}:{job}")
    if kind == "job_finished":
        energy, cost = event.get("energy_kwh"), event.get("cost")
        extra = f" {energy:.2f} kWh" if isinstance(energy, int | float) else ""
        if extra and isinstance(cost, int | float):
            extra += f", {cost:.2f} {event.get('currency') or ''}".rstrip()
        extra += "." if extra else ""
        return Message(kind, printer, f"{name}: {job} finished", f"{took}{extra}".strip(), "default",
                       ("white_check_mark",), dedup_key=f"{key}:{job}")
    if kind in ("job_failed", "job_cancelled"):
        # The page's and the OLED's words, carried by the event (hms.job_result as the hub settled it): a stop is
        # "Cancelled" even when the printer gave no error, an error shows its text.
        failed = kind == "job_failed"
        error = event.get("print_error")
        text = event.get("result") or (
            ("Failed: " + print_error_text(error) if isinstance(error, str) else "Failed") if failed else "Cancelled"
        )
        # What to do, on its own line, where the official text says (hms.describe_print_error).
        body = "\n".join(line for line in (took, event.get("action") if failed else None) if line)
        return Message(kind, printer, f"{name}: {job} — {text}", body, "high" if failed else "default",
                       ("x",) if failed else ("stop_button",), dedup_key=f"{key}:{job}")
    if kind == "job_ending_soon":
        # Once per job (the hub's memory), so the job's name alone keys it; the minutes are the printer's estimate.
        minutes = event.get("remaining_min")
        left = f"done in {duration_text(minutes * 60)}" if isinstance(minutes, int | float) else "done soon"
        return Message(kind, printer, f"{name}: {job} {left}", "", "default", ("hourglass",),
                       dedup_key=f"{key}:{job}")
    if kind == "job_paused":
        return Message(kind, printer, f"{name}: {job} paused", "", "default", ("pause_button",), dedup_key=key)
    if kind == "hms_raised":
        hms = event.get("hms") or {}
        if hms.get("silent"):
            return None  # no official text, or reported all the time: shown on the page, never sent
        severity = str(event.get("severity") or "unknown")
        priority: Priority = {"fatal": "urgent", "serious": "high"}.get(severity, "default")  # type: ignore[assignment]
        description = hms.get("description") or "printer error"
        body = f"{severity} error {event.get('code')}" + (f"\n{hms['action']}" if hms.get("action") else "")
        return Message(kind, printer, f"{name}: {description}", body, priority,
                       ("warning",), url=hms.get("url"), dedup_key=f"{key}:{event.get('code')}")
    if kind == "printer_offline":
        reason = event.get("reason") or "no connection"
        return Message(kind, printer, f"{name} is offline", str(reason), "high", ("electric_plug",), dedup_key=key)
    if kind == "printer_online":
        return Message(kind, printer, f"{name} is back online", "", "default", ("electric_plug",), dedup_key=key)
    if kind == "progress":
        percent = event.get("percent")
        return Message(kind, printer, f"{name}: {job} at {percent} %", "", "low", ("hourglass",),
                       dedup_key=f"{key}:{job}:{percent}")
    if kind == "filament_low" and isinstance(event.get("message"), str):
        # Once per spool crossing the threshold (bambupi.filament): the same spool is told again only after a refill.
        return Message(kind, printer, f"{name}: {event['message']}", "", "default", ("thread",),
                       dedup_key=f"{key}:{event.get('spool')}")
    if isinstance(kind, str) and kind.startswith("power_") and isinstance(event.get("message"), str):
        return Message(kind, printer, f"{name}: {event['message']}", "", "high", ("electric_plug",), dedup_key=key)
    return None


def wanted(message: Message, event: dict[str, Any], topics: tuple[NotifyTopic, ...], min_severity: str) -> bool:
    """Whether a channel with these ``events`` topics and HMS threshold wants ``message``."""
    kinds = {kind for topic in topics for kind in TOPICS.get(topic, ())}
    if message.kind not in kinds:
        return False
    if message.kind == "hms_raised":
        severity = str(event.get("severity") or "unknown")
        return SEVERITY_RANK.get(severity, 2) <= SEVERITY_RANK[min_severity]
    return True


def sample_message() -> Message:
    return Message(TEST_KIND, None, "bambupi test notification", "If you can read this, this channel works.",
                   "default", ("tada",))
