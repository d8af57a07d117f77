"""The "done soon" heads-up on a notification channel: only a channel that lists ``ending_soon`` gets it, and in
quiet hours it is dropped (it would be stale by their end), where other news is held."""

from __future__ import annotations

from bambupi.config import NotifyConfig
from bambupi.notify.messages import message_for
from bambupi.notify.notifier import Notifier
from bambupi.state_hub import StateHub
from tests.support import printer_config

SOON = {"kind": "job_ending_soon", "printer": "p1", "job": "Benchy", "remaining_min": 5, "at": 0.0}
PAUSED = {"kind": "job_paused", "printer": "p1", "job": "Benchy", "at": 0.0}


def channels(quiet: bool) -> Notifier:
    configs = (
        NotifyConfig(name="asks", kind="webhook", url="http://127.0.0.1:9/hook", events=("ending_soon", "paused")),
        NotifyConfig(name="default", kind="webhook", url="http://127.0.0.1:9/hook"),
    )
    return Notifier(StateHub([printer_config("p1")]), configs, quiet=lambda: quiet, clock=lambda: 0.0)


def offer(notifier: Notifier, event: dict[str, object]) -> None:
    message = message_for(dict(event), "Garage")
    assert message is not None
    for channel in notifier.channels.values():
        channel.offer(message, dict(event))


def test_only_a_channel_that_asks_gets_the_heads_up() -> None:
    notifier = channels(quiet=False)
    offer(notifier, SOON)
    asks, default = notifier.channels["asks"], notifier.channels["default"]
    queued = asks.receive_channel.receive_nowait()[0]
    assert queued.title == "Garage: Benchy done in 5 min"
    assert default.receive_channel.statistics().current_buffer_used == 0


def test_in_quiet_hours_the_heads_up_is_dropped_and_other_news_held() -> None:
    notifier = channels(quiet=True)
    offer(notifier, SOON)
    offer(notifier, PAUSED)
    asks = notifier.channels["asks"]
    assert [m.kind for m, _ in asks.held] == ["job_paused"]
    assert [(d.kind, d.status) for d in notifier.log] == [("job_ending_soon", "dropped"), ("job_paused", "held"),
                                                          ("job_paused", "held")]
