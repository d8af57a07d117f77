"""The WebSocket clients of ``bench/ws.py``, in their own process: ``python -m bench.ws_clients URL COUNT SINCE_NS``.

Opens COUNT connections to URL, prints ``ready`` once each has received its first message (the snapshot), then
reads until a line arrives on stdin and prints one JSON object: the latency of every stamped message
(``"bench-<ns>"`` with ns >= SINCE_NS, the first time each client sees it), its size and how many stamps each client
saw.

A message's arrival time is the one the kernel recorded when the data reached the client's socket
(``SO_TIMESTAMPNS``), not the time this process got round to reading it: with fifty clients read one after the
other by one Python process, the clients' own work would otherwise be counted as the service's latency, and
would be the same for any service measured this way. The clients are plain sockets reading server frames
(unmasked, RFC 6455 5.2) with no WebSocket library, so they are cheap on a machine the service shares. The kernel
stamps with the real-time clock, so the reports carry ``time.time_ns()``; a clock step during a run would show
as an outlier, not as a shift.
"""

from __future__ import annotations

import base64
import json
import os
import selectors
import socket
import struct
import sys
import time
from urllib.parse import urlsplit

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # 35 on x86 and ARM (asm-generic); Python does not export it
MARKER = b'"bench-'
_ANCILLARY = socket.CMSG_SPACE(16)


class Client:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=30)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"{url}: closed during the handshake")
            self.buffer += chunk
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"{url}: {head.splitlines()[0].decode(errors='replace')}")
        self.sock.setblocking(False)
        self.messages = 0
        self.seen: set[int] = set()

    def read(self) -> tuple[int, list[bytes]]:
        """What arrived: the kernel's arrival time (ns, real-time clock) and the complete text messages."""
        data, ancillary, _, _ = self.sock.recvmsg(65536, _ANCILLARY)
        if not data:
            raise ConnectionError("closed by the service")
        arrived = time.time_ns()
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                seconds, nanoseconds = struct.unpack("qq", value[:16])
                arrived = seconds * 1_000_000_000 + nanoseconds
        self.buffer += data
        messages = []
        while len(self.buffer) >= 2:
            opcode, size, start = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F, 2
            if size == 126:
                size, start = int.from_bytes(self.buffer[2:4], "big"), 4
            elif size == 127:
                size, start = int.from_bytes(self.buffer[2:10], "big"), 10
            if len(self.buffer) < start + size:
                break
            if opcode == 1:
                messages.append(self.buffer[start:start + size])
            self.buffer = self.buffer[start + size:]
        self.messages += len(messages)
        return arrived, messages


def main(url: str, count: int, since_ns: int) -> None:
    clients = [Client(url) for _ in range(count)]
    selector = selectors.DefaultSelector()
    for client in clients:
        selector.register(client.sock, selectors.EVENT_READ, client)
    selector.register(sys.stdin, selectors.EVENT_READ, None)
    ready = False
    latencies: list[float] = []
    update_bytes = 0
    while True:
        if not ready and all(client.messages for client in clients):
            ready = True
            print("ready", flush=True)
        for key, _ in selector.select():
            client = key.data
            if client is None:
                sys.stdin.readline()
                print(json.dumps({"latencies_ms": latencies, "update_bytes": update_bytes,
                                  "seen": sum(len(c.seen) for c in clients)}), flush=True)
                return
            first = client.messages == 0
            arrived, messages = client.read()
            for message in messages[1:] if first else messages:  # not the snapshot
                start = message.find(MARKER)
                if start < 0:
                    continue
                start += len(MARKER)
                stamp = int(message[start:message.index(b'"', start)])
                if stamp < since_ns or stamp in client.seen:
                    continue
                client.seen.add(stamp)
                latencies.append((arrived - stamp) / 1e6)
                update_bytes += len(message)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
