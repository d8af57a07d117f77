"""A flood of idle connections costs the facade a bounded number of file descriptors, never the whole box's.

Each connection that has not logged in yet (TLS handshake, the MQTT CONNECT or the camera's auth packet) is held
for up to its timeout (10 s). Without a bound, a LAN scanner or an app leaking sockets fills the process's file
descriptors (1024 on a Pi's service) and with them the web page, the printer's link and the database. Past the
bound, a new connection is closed at once; when the held ones go, apps log in as before.

The handshake and auth timeouts are raised for these tests, so the held connections stay pending throughout and
nothing here depends on how fast the machine is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio

from bambupi.camera.frames import Frame
from bambupi.camera.jpeg import auth_packet
from bambupi.facade import camera as facade_camera
from bambupi.facade.camera import CameraEndpoint, CameraFeed
from bambupi.facade.certificate import ensure_certificate, server_context
from bambupi.mqtt_server import MqttServer, PacketReader, PacketType
from bambupi.printer.tls_pins import printer_tls_context
from bambupi.state_hub import CameraStatus
from tests.support import wait_for
from tests.test_facade import connect_packet

CODE = "fac4de01"
BOUND = 4
EXTRA = 6


async def _eof_watcher(stream: trio.SocketStream, closed: list[trio.SocketStream]) -> None:
    """Records ``stream`` in ``closed`` once the server closed it (a pending one is never closed here)."""
    try:
        while await stream.receive_some(4096):
            pass
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    closed.append(stream)


Streams = list[trio.SocketStream]


async def _hold(port: int, count: int, nursery: trio.Nursery) -> tuple[Streams, Streams]:
    """``count`` idle TCP connections (no TLS ever spoken), each watched for the server closing it."""
    held: Streams = []
    closed: Streams = []
    for _ in range(count):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        held.append(stream)
        nursery.start_soon(_eof_watcher, stream, closed)
    return held, closed


async def test_idle_mqtt_connections_past_the_bound_are_closed_at_once_and_apps_log_in_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bambupi.mqtt_server.HANDSHAKE_TIMEOUT_S", 3600.0)
    cert, key = await ensure_certificate(tmp_path)
    server = MqttServer(
        "facade", CODE.encode(), server_context(cert, key), may_subscribe=lambda topic: True,
        on_publish=lambda session, publish: None, max_pending=BOUND,
    )
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        held, closed = await _hold(port, BOUND + EXTRA, nursery)
        await wait_for(lambda: len(closed) >= EXTRA, what="the connections past the bound closed")
        assert server.pending == BOUND and server.turned_away == EXTRA
        assert set(closed) == set(held[BOUND:])  # the first ones wait on, as any slow app's would

        for stream in held[:BOUND]:
            await stream.aclose()
        await wait_for(lambda: server.pending == 0, what="the held connections gone")
        # An app logs in as before.
        tcp = await trio.open_tcp_stream("127.0.0.1", port)
        app = trio.SSLStream(tcp, printer_tls_context(), server_hostname=None)
        await app.send_all(connect_packet("app", CODE))
        reader = PacketReader()
        while (packet := reader.next_packet()) is None:
            reader.feed(await app.receive_some(4096))
        assert (packet.type, packet.body) == (PacketType.CONNACK, b"\x00\x00")
        await wait_for(lambda: server.connected_clients == 1, what="the app logged in")
        await trio.aclose_forcefully(app)
        nursery.cancel_scope.cancel()


class _NoFrames:
    """A printer camera that never sends a frame (the flood never gets that far)."""

    def has(self, printer_id: str) -> bool:
        return True

    @contextmanager
    def viewer(self, printer_id: str) -> Iterator[None]:
        yield

    async def next_frame(self, printer_id: str, after: int) -> Frame:
        await trio.sleep_forever()
        raise AssertionError

    def live_after(self, printer_id: str) -> int:
        return 0

    def status(self, printer_id: str) -> CameraStatus:
        return {"kind": "tls6000", "status": "live", "reason": None}


async def test_idle_camera_connections_past_the_bound_are_closed_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(facade_camera, "AUTH_TIMEOUT_S", 3600.0)
    cert, key = await ensure_certificate(tmp_path)
    feed = CameraFeed(_NoFrames(), "garage", rescale=False, fps=2.0, size=(640, 360))
    endpoint = CameraEndpoint(
        feed, CODE.encode(), server_context(cert, key), off=lambda: None, max_clients=16, max_pending=BOUND
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed.run)
        port = await nursery.start(endpoint.serve, "127.0.0.1", 0)
        held, closed = await _hold(port, BOUND + EXTRA, nursery)
        await wait_for(lambda: len(closed) >= EXTRA, what="the connections past the bound closed")
        assert endpoint.pending == BOUND and endpoint.turned_away == EXTRA
        assert set(closed) == set(held[BOUND:])

        for stream in held[:BOUND]:
            await stream.aclose()
        await wait_for(lambda: endpoint.pending == 0, what="the held connections gone")
        tcp = await trio.open_tcp_stream("127.0.0.1", port)
        app = trio.SSLStream(tcp, printer_tls_context(), server_hostname=None)
        await app.send_all(auth_packet(CODE))
        await wait_for(lambda: endpoint.clients == 1, what="an app watching")
        await trio.aclose_forcefully(app)
        nursery.cancel_scope.cancel()
