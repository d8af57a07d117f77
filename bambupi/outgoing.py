"""Outgoing calls: one HTTP request with a total deadline and a bounded answer (smart plugs, notification
services), and one call at a time per thing for the web routes that wait for one.

httpx's timeouts bound each network operation, not the request: a server dripping one byte a second never trips a
read timeout and holds the caller for as long as it likes (power sampling stalled for minutes, a test notification
for 8). And ``response.read()`` takes whatever size the server sends. Here the whole exchange (connect, send,
headers, body) runs under one trio deadline, and the body is read only up to a limit; the rest is never read (the
connection is closed instead of drained).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes  # at most the limit
    complete: bool  # False: the server had more to say than the limit, and was not listened to


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    deadline_s: float,
    max_bytes: int,
    headers: Mapping[str, str] | None = None,
    **request: Any,
) -> Answer:
    """Send one request and read at most ``max_bytes`` of the answer, all within ``deadline_s``.

    Raises :class:`trio.TooSlowError` when the deadline passes, and whatever httpx raises for the request itself.
    ``request`` holds httpx's own arguments (params, json, data, content, files, auth).
    """
    # Raw bytes, so ask for them uncompressed: a gzip bomb decompresses a 64 KiB chunk into tens of MB at once.
    headers = {"Accept-Encoding": "identity", **(headers or {})}
    with trio.fail_after(deadline_s):
        async with client.stream(method, url, headers=headers, **request) as response:
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > max_bytes:
                    return Answer(response.status_code, bytes(body[:max_bytes]), complete=False)
            return Answer(response.status_code, bytes(body), complete=True)


@dataclass
class OneAtATime:
    """Things (a printer's plug, its certificate) a web request is waiting on now.

    A route that must answer with the outcome of an outgoing call holds its web thread while it waits (within the
    call's deadline). The front door has only a few threads: a second request for the same thing is refused at once
    instead of holding another one for the same wait, so clicks on a plug that hangs cannot take the page down.
    """

    _busy: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)  # the routes run in several threads at once

    @contextlib.contextmanager
    def claim(self, key: str) -> Iterator[bool]:
        """True inside when this request has ``key`` to itself, False when another one is waiting on it."""
        with self._lock:
            mine = key not in self._busy
            self._busy.add(key)
        try:
            yield mine
        finally:
            if mine:
                with self._lock:
                    self._busy.discard(key)
