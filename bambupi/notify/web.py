"""Notification routes: the delivery log and "send a test notification" per channel (owner only)."""

from __future__ import annotations

import bottle
import trio

from bambupi.notify.notifier import Notifier
from bambupi.web.login import Guard
from bambupi.web.responses import error_response, json_response


def add_notify_routes(app: bottle.Bottle, guard: Guard, notifier: Notifier) -> None:
    def overview() -> str:
        refused = guard.refusal(changes=False)
        if refused is not None:
            return refused

        def read() -> dict[str, object]:
            channels = [
                {"name": c.config.name, "kind": c.config.kind, "enabled": c.config.enabled,
                 "events": list(c.config.events), "held": len(c.held)}
                for c in notifier.channels.values()
            ]
            return {"channels": channels, "log": notifier.deliveries()}

        return json_response(200, trio.from_thread.run_sync(read))

    def test(name: str) -> str:
        refused = guard.refusal()
        if refused is not None:
            return refused
        if name not in notifier.channels:
            return error_response(404, f"no notification channel {name!r}")
        delivery = trio.from_thread.run(notifier.send_test, name)
        return json_response(200 if delivery.status == "sent" else 502, delivery.to_json())

    app.route("/api/notify", "GET", overview)
    app.route("/api/notify/<name>/test", "POST", test)
