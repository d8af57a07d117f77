"""Notification routes: the delivery log and "send a test notification" per channel (owner only).

Nothing here waits for a notification service: handlers run in the front door's few web threads."""

from __future__ import annotations

from typing import Any

import bottle
import trio

from bambupi.notify.notifier import Notifier
from bambupi.web.route_contract import Access, NotFound, Reply, expose


def add_notify_routes(app: bottle.Bottle, notifier: Notifier) -> None:
    def overview() -> dict[str, Any]:
        def read() -> dict[str, Any]:
            channels = [
                {"name": c.config.name, "kind": c.config.kind, "enabled": c.config.enabled,
                 "events": list(c.config.events), "held": len(c.held)}
                for c in notifier.channels.values()
            ]
            return {"channels": channels, "log": notifier.deliveries()}

        return trio.from_thread.run_sync(read)

    def test(name: str) -> Reply:
        # Queued, not awaited: the request answers at once, whatever the service does (a hanging one held every web
        # thread, one per click). The outcome is in the delivery log (``GET /api/notify``), where the page shows it.
        delivery = trio.from_thread.run_sync(notifier.queue_test, name)
        if delivery is None:
            raise NotFound(f"no notification channel {name!r}")
        return Reply(202 if delivery.status == "queued" else 503, delivery.to_json())

    # Owner only: the log names the channels and what was sent where.
    expose(app, "GET", "/api/notify", overview, Access.OWNER)
    expose(app, "POST", "/api/notify/<name>/test", test, Access.OWNER)
