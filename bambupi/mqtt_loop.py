"""PahoLoop: one paho-mqtt client's socket driven from trio, for every MQTT client of the box (the printer links in
bambupi.printer.link, the home broker's bridge in bambupi.bridge).

paho does the MQTT protocol; trio does the waiting. paho's external-loop callbacks say when its socket opens, closes
and wants writing; :meth:`PahoLoop.drive` waits for readiness with trio and calls ``loop_read`` / ``loop_write`` /
``loop_misc``. ``connect()`` (DNS, TCP, TLS handshake) blocks, so the owner runs it in a worker thread, and the
callbacks it fires there cross into trio in one place, :meth:`PahoLoop.to_trio`.

Two traps are handled here once (ARCHITECTURE.md, "Settled technical choices"): with TLS, after ``loop_read`` keep
reading while ``sock.pending()`` (MQTT packets that came in one TLS record sit decrypted in the SSL object, where the
kernel cannot signal them); and ``TCP_NODELAY`` (Nagle with delayed ACKs adds 20-80 ms to every small packet).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any, Final

import paho.mqtt.client as mqtt
import trio

MISC_INTERVAL_S: Final = 1.0  # paho's keepalive pings and retries are due at most this late
LOST: Final = "connection lost"


class PahoLoop:
    """Drives ``client``'s socket from trio. ``fail(words)`` is called (in trio's thread) once the connection is
    gone or broken, ``closed()`` when paho closed the socket; the owner cancels its session in both.

    The owner's own ``on_socket_open`` calls :meth:`opened` with the socket (after any check of the peer, which
    must run before CONNECT, and so the password, is sent)."""

    def __init__(self, client: mqtt.Client, *, fail: Callable[[str], None], closed: Callable[[], None]) -> None:
        self.client = client
        self.sock: Any = None
        self.want_write = False
        self._fail = fail
        self._closed = closed
        self._write_lot = trio.lowlevel.ParkingLot()
        self._token = trio.lowlevel.current_trio_token()
        self._trio_thread = threading.get_ident()
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write

    def opened(self, sock: Any) -> None:
        """The socket paho opened (called from the owner's ``on_socket_open``, in the connect thread)."""
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock

    def to_trio(self, fn: Callable[[], None]) -> None:
        """The one crossing from paho's callbacks into trio (they fire in the connect thread too)."""
        if threading.get_ident() == self._trio_thread:
            fn()
            return
        # An abandoned connect thread (service shutting down) may outlive the run; nothing to tell then.
        with contextlib.suppress(trio.RunFinishedError):
            self._token.run_sync_soon(fn)

    def close_socket(self) -> None:
        """Drop the connection now, without a goodbye (a last will, where one is set, is then published)."""
        if self.client.socket() is not None:
            # paho has no public "drop the connection now" for external loops; disconnect() would need a
            # writable socket, which a stale or dead connection may never give.
            self.client._sock_close()

    async def drive(self) -> None:
        """Read, write and keep alive until the connection fails (``fail`` is called) or the caller cancels."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._reader)
            nursery.start_soon(self._writer)
            nursery.start_soon(self._misc)

    async def _reader(self) -> None:
        while True:
            try:
                await trio.lowlevel.wait_readable(self.sock)
            except trio.ClosedResourceError:
                self._fail(LOST)
                return
            rc = self.client.loop_read()
            # TLS trap: packets that arrived in the same TLS record sit decrypted inside the SSL object,
            # where the kernel cannot signal them; drain them now.
            while rc == mqtt.MQTT_ERR_SUCCESS and self.sock is not None and _pending(self.sock) > 0:
                rc = self.client.loop_read()
            if rc != mqtt.MQTT_ERR_SUCCESS:
                self._fail(LOST)
                return

    async def _writer(self) -> None:
        while True:
            while not self.want_write:
                await self._write_lot.park()
            try:
                await trio.lowlevel.wait_writable(self.sock)
            except trio.ClosedResourceError:
                self._fail(LOST)
                return
            if self.client.loop_write() != mqtt.MQTT_ERR_SUCCESS:
                self._fail(LOST)
                return

    async def _misc(self) -> None:
        while True:
            await trio.sleep(MISC_INTERVAL_S)
            if self.client.loop_misc() != mqtt.MQTT_ERR_SUCCESS:
                self._fail(f"{LOST} (keepalive timeout)")
                return

    # -- paho callbacks -----------------------------------------------------------------------------------
    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if threading.get_ident() == self._trio_thread:
            trio.lowlevel.notify_closing(sock)
        self.to_trio(self._closed)

    def _on_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        def want() -> None:
            self.want_write = True
            self._write_lot.unpark_all()

        self.to_trio(want)

    def _on_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        def done() -> None:
            self.want_write = False

        self.to_trio(done)


def _pending(sock: Any) -> int:
    """Decrypted bytes waiting in a TLS socket (a plain socket has none)."""
    pending = getattr(sock, "pending", None)
    return int(pending()) if pending is not None else 0
