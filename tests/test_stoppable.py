"""Stoppable: one task stopped on its own; stop() returns only after its cleanup ran; its nursery lives on."""

from __future__ import annotations

from typing import Any

import trio

from bambupi.stoppable import Stoppable


async def test_stop_waits_for_cleanup_and_leaves_the_nursery_running(autojump_clock: Any) -> None:
    # The fake clock: the cleanup's 50 ms and the 100 ms of watching pass in order, whatever the machine's speed.
    log: list[str] = []

    async def worker(name: str, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started(f"{name} ready")
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(0.05)  # cleanup that takes a while (closing a client, releasing pins)
            log.append(f"{name} cleaned up")

    async with trio.open_nursery() as nursery:
        first, value = await Stoppable.start(nursery, worker, "first")
        second, _ = await Stoppable.start(nursery, worker, "second")
        assert value == "first ready"
        await first.stop()
        assert log == ["first cleaned up"]  # done before stop() returned
        await trio.sleep(0.1)
        assert log == ["first cleaned up"]  # the other task and the nursery go on
        await second.stop()
        assert log == ["first cleaned up", "second cleaned up"]
