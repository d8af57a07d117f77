"""Notification routes: the delivery log and "send a test notification" per channel (owner only).

Nothing here waits for a notification service: handlers run in the front door's few web threads."""

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
        # Queued, not awaited: the request answers at once, whatever the service does (a hanging one held every web
        # thread, one per click). The outcome is in the delivery log (``GET /api/notify``), where the page shows it.
        delivery = trio.from_thread.run_sync(notifier.queue_test, name)
        if delivery is None:
            return error_response(404, f"no notification channel {name!r}")
        return json_response(202 if delivery.status == "queued" else 503, delivery.to_json())

    app.route("/api/notify", "GET", overview)
    app.route("/api/notify/<name>/test", "POST", test)
