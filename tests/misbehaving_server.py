"""A raw HTTP server on loopback that misbehaves on purpose: it drips its answer, sends an endless one, or hangs.

Stands in for a smart plug or a notification service gone wrong, so a test sees what the box's outgoing calls do
against it (issue 14, items 5 and 6).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field

import trio

# A Shelly Gen2's answer to both Switch.GetStatus and Switch.Set (each reads only its own fields).
GOOD = b'{"id": 0, "output": true, "apower": 42.5, "aenergy": {"total": 1000.0}, "was_on": true}'


@dataclass
class Misbehaving:
    """A raw HTTP server on loopback (trio only, no thread) that answers the way it is told to, counting what it
    sent and keeping the bodies it was sent.

    ``drip_head``: the status line and then one header byte every ``every_s``, forever; ``drip_body``: a complete
    head and then one body byte every ``every_s``, forever; ``huge``: a 64 MiB answer as fast as the client takes it;
    ``hang``: nothing until ``release`` is set; ``ok``: ``GOOD`` at once.
    """

    mode: str
    every_s: float = 0.1
    sent: int = 0  # body bytes the client took
    connections: int = 0
    requests: int = 0
    done: int = 0  # connections whose answer ended (sent whole, or the client hung up)
    holding: int = 0  # requests held unanswered right now
    bodies: list[bytes] = field(default_factory=list)  # of the requests, in the order they came
    release: trio.Event = field(default_factory=trio.Event)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def run(self, *, task_status: trio.TaskStatus[Misbehaving] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self)
        await trio.serve_listeners(self._serve, listeners)

    async def _serve(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        async with stream:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            while length and len(body) < int(length[1]):  # read it all: unread bytes would reset the connection
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                body += chunk
            self.bodies.append(body)
            self.requests += 1
            # The client hanging up is what the box should do.
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await self._answer(stream)
            self.done += 1

    async def _answer(self, stream: trio.SocketStream) -> None:
        mode = self.mode
        if mode == "drip_head":
            await stream.send_all(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while True:
                await trio.sleep(self.every_s)
                await stream.send_all(b"a")
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        if mode == "drip_body":
            await stream.send_all(head + b"Content-Length: 1000000\r\n\r\n")
            while True:
                await trio.sleep(self.every_s)
                await stream.send_all(b" ")
                self.sent += 1
        if mode == "huge":
            size = 64 * 1024 * 1024
            await stream.send_all(head + f"Content-Length: {size}\r\n\r\n".encode())
            chunk = b" " * 65536
            for _ in range(size // len(chunk)):
                await stream.send_all(chunk)
                self.sent += len(chunk)
            return
        if mode == "hang":
            self.holding += 1
            try:
                await self.release.wait()
            finally:
                self.holding -= 1
        await stream.send_all(head + f"Content-Length: {len(GOOD)}\r\nConnection: close\r\n\r\n".encode() + GOOD)
