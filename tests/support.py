"""What several test modules share (no test module imports another): waiting on a state."""

from __future__ import annotations

from collections.abc import Callable

import trio


async def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> float:
    """Poll until ``check()`` holds; returns the seconds it took. The limit is generous: a busy machine is slower."""
    start = trio.current_time()
    with trio.fail_after(timeout):
        while not check():
            await trio.sleep(0.02)
    return trio.current_time() - start
