"""A task that can be stopped on its own, inside a long-lived nursery: for parts the settings page restarts (the
panel, a smart plug's sampling) while the rest of the service keeps running."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio


class Stoppable:
    def __init__(self) -> None:
        self._scope = trio.CancelScope()
        self._stopped = trio.Event()

    @classmethod
    async def start(
        cls, nursery: trio.Nursery, async_fn: Callable[..., Awaitable[Any]], *args: Any
    ) -> tuple[Stoppable, Any]:
        """``nursery.start(async_fn, *args)``; returns the handle and what the task passed to ``started``."""
        handle = cls()

        async def run(*, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
            try:
                with handle._scope:
                    await async_fn(*args, task_status=task_status)
            finally:
                handle._stopped.set()

        return handle, await nursery.start(run)

    async def stop(self) -> None:
        """Cancel the task and wait until it has finished (its cleanup done: pins released, clients closed)."""
        self._scope.cancel()
        await self._stopped.wait()
