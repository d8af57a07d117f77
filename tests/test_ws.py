"""/ws with a real WebSocket client over real sockets: snapshot, deltas, events, heartbeat, limits, junk frames."""

from __future__ import annotations

import itertools
import json
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import trio
import trio.testing
import wsproto
import wsproto.events
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    WebSocketConnection,
    open_websocket_url,
    wrap_client_stream,
)

from bambupi.component import RESTART, Applied, HealthBoard, Supervisor, Web
from bambupi.config import Config, PrinterConfig, WebConfig
from bambupi.secret import Secret
from bambupi.state_hub import CameraStatus, StateHub
from bambupi.web import ws as ws_module
from bambupi.web.api import make_app
from bambupi.web.frontdoor import FrontDoor, Request
from bambupi.web.merge_patch import apply_merge_patch, without_nulls
from bambupi.web.pages import add_page_routes
from bambupi.web.ws import WebSocketService, WsLimits

HANG_S = 30  # waits end on a state; this bounds only a hang, however busy the machine


def printer_config(printer_id: str, model: str = "P1S") -> PrinterConfig:
    return PrinterConfig(
        id=printer_id, name=f"Printer {printer_id}", model=model, host="127.0.0.1", serial=f"SERIAL{printer_id}",
        access_code=Secret("12345678"),
    )


def report(**fields: Any) -> bytes:
    return json.dumps({"print": {"command": "push_status", "msg": 1, **fields}}).encode()


@dataclass
class Box:
    hub: StateHub
    ws: WebSocketService
    base: str
    url: str
    http: httpx.AsyncClient

    async def printer(self, printer_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/api/printers/{printer_id}")
        assert response.status_code == 200
        return dict(response.json())


async def start_box(nursery: trio.Nursery, limits: WsLimits) -> Box:
    hub = StateHub([printer_config("p1"), printer_config("x1", "X1C")])
    hub.set_connection("p1", "online")
    hub.apply_message("p1", report(msg=0, gcode_state="IDLE", hms=[], nozzle_temper=25, bed_temper=24))
    app = make_app(hub)
    add_page_routes(app, hub)
    service = WebSocketService(hub, limits)
    await nursery.start(service.run)
    door = FrontDoor(app, WebConfig(host="127.0.0.1", port=0), native=service.router)
    port = await nursery.start(door.run)
    base = f"http://127.0.0.1:{port}"
    return Box(hub, service, base, f"ws://127.0.0.1:{port}/ws", httpx.AsyncClient(base_url=base))


@pytest.fixture
async def box() -> AsyncIterator[Box]:
    async with trio.open_nursery() as nursery:
        b = await start_box(nursery, WsLimits(heartbeat_s=30, send_timeout_s=1.0, max_clients=5))
        yield b
        await b.http.aclose()
        nursery.cancel_scope.cancel()


async def receive(ws: WebSocketConnection, timeout: float = HANG_S) -> dict[str, Any]:
    with trio.fail_after(timeout):
        return dict(json.loads(await ws.get_message()))


class Client:
    """What the page does: hold the snapshot, apply every delta, keep the events."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        assert snapshot["type"] == "snapshot"
        self.printers: dict[str, Any] = snapshot["printers"]
        self.events: list[dict[str, Any]] = []
        self.deltas = 0

    def take(self, message: dict[str, Any]) -> None:
        if message["type"] == "snapshot":
            self.printers = message["printers"]
        elif message["type"] == "delta":
            self.deltas += 1
            self.printers[message["printer"]] = apply_merge_patch(self.printers[message["printer"]], message["changes"])
        elif message["type"] == "event":
            self.events.append(message)


async def test_snapshot_equals_http_and_every_delta_reproduces_it(box: Box) -> None:
    async with open_websocket_url(box.url) as ws:
        client = Client(await receive(ws))
        for printer_id in ("p1", "x1"):
            assert client.printers[printer_id] == await box.printer(printer_id)
        changes: list[bytes] = [
            report(gcode_state="PREPARE", subtask_name="cube", mc_percent=0),
            report(gcode_state="RUNNING", mc_percent=5, layer_num=1, total_layer_num=40, mc_remaining_time=30),
            report(hms=[{"attr": 0x07008000, "code": 0x00020001}]),
            report(mc_percent=50, layer_num=20, nozzle_temper=219.5, chamber_temper=31),
            report(hms=[]),
            report(gcode_state="FINISH", mc_percent=100, print_error=0),
        ]
        for payload in changes:
            box.hub.apply_message("p1", payload)
            message = await receive(ws)
            while message["type"] != "delta":
                client.take(message)
                message = await receive(ws)
            client.take(message)
            expected = await box.printer("p1")
            assert without_nulls(client.printers["p1"]) == without_nulls(expected)
            assert client.printers["x1"] == await box.printer("x1")
        kinds = [e["kind"] for e in client.events]
        assert "job_started" in kinds and "hms_raised" in kinds and "hms_cleared" in kinds
        raised = next(e for e in client.events if e["kind"] == "hms_raised")
        assert raised["printer"] == "p1" and raised["code"] == "0700_8000_0002_0001"


async def test_a_slow_reader_skips_states_but_ends_exactly_right(box: Box) -> None:
    async with open_websocket_url(box.url, message_queue_size=1) as ws:
        client = Client(await receive(ws))
        for i in range(300):
            box.hub.apply_message("p1", report(mc_percent=i % 101, layer_num=i, nozzle_temper=200 + i % 7))
            if i % 50 == 0:
                await trio.sleep(0.01)  # the reader is away: the box must not wait for it
        expected = await box.printer("p1")
        with trio.fail_after(HANG_S):  # skipped states are fine; the last one must arrive
            while without_nulls(client.printers["p1"]) != without_nulls(expected):
                client.take(await receive(ws))
        assert client.deltas <= 300


def big_change(i: int) -> bytes:
    """A ~12 kB delta: the longest HMS list a report keeps (64 entries), its first entry different each time, so the
    whole list is sent again (strings and lists are capped: a stuck client's buffers fill after some hundreds)."""
    entries = [{"attr": 0x07000000 + (k << 8), "code": 0x00020001} for k in range(1, 64)]
    return report(hms=[{"attr": 0x07000000, "code": 0x00020002 + i}, *entries], mc_percent=i % 100)


CHANGES = 1000  # ~12 MB in all: more than a loopback socket's buffers hold for the stuck client


async def test_a_client_that_never_reads_does_not_delay_another() -> None:
    async with trio.open_nursery() as nursery:
        # The send timeout outlasts every wait below: a box that waited for the stuck client would fail them.
        box = await start_box(nursery, WsLimits(heartbeat_s=HANG_S * 4, send_timeout_s=HANG_S * 4, max_clients=5))
        async with open_websocket_url(box.url, message_queue_size=1, receive_buffer_size=1024) as stuck:
            await receive(stuck)
            async with open_websocket_url(box.url) as reader:
                client = Client(await receive(reader))
                for i in range(CHANGES):
                    box.hub.apply_message("p1", big_change(i))
                    message = await receive(reader)
                    while message["type"] != "delta":
                        message = await receive(reader)
                    client.take(message)
                expected = await box.printer("p1")
                while without_nulls(client.printers["p1"]) != without_nulls(expected):  # the last of them
                    client.take(await receive(reader))
                codes = {entry["code"] for entry in client.printers["p1"]["state"]["hms"]}
                last = f"0700_0000_{0x20002 + CHANGES - 1:08X}"
                assert f"{last[:14]}_{last[14:]}" in codes and len(codes) == 64  # the last change
                assert box.ws.clients == 2  # all of it while the stuck client still held on
                await box.http.aclose()
                nursery.cancel_scope.cancel()  # the box goes, so the stuck client's close does not wait for it


async def test_a_client_that_never_reads_is_cut_off_after_the_send_timeout(box: Box) -> None:
    async with open_websocket_url(box.url, message_queue_size=1, receive_buffer_size=1024) as stuck:
        await receive(stuck)
        with trio.fail_after(HANG_S):
            for i in itertools.count():  # until its buffers are full and a send waits out the timeout (1 s)
                box.hub.apply_message("p1", big_change(i))
                await trio.sleep(0.005)
                if not box.ws.clients:
                    break


async def test_heartbeat_and_a_dead_client_is_noticed() -> None:
    async with trio.open_nursery() as nursery:
        # Long enough that a loaded machine still answers each ping in time; only the stuck client misses them.
        box = await start_box(nursery, WsLimits(heartbeat_s=1.0))
        async with open_websocket_url(box.url) as ws:
            await receive(ws)
            started = trio.current_time()
            assert await receive(ws) == {"type": "heartbeat"}
            assert trio.current_time() - started >= 0.5  # sent when the line was quiet, not at once
            assert await receive(ws) == {"type": "heartbeat"}  # pings were answered: still connected
        # A client whose reader is stuck answers no pings: the box drops it within about two heartbeats.
        async with open_websocket_url(box.url, message_queue_size=1) as dead:
            await receive(dead)
            with trio.fail_after(HANG_S):
                while box.ws.clients:
                    await trio.sleep(0.05)
        await box.http.aclose()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("frame", "code"),
    [(b"\x00\x01binary", 1003), ("not json", 1003), ("[1, 2]", 1003), (json.dumps({"pad": "x" * 5000}), 1009)],
)
async def test_junk_frames_are_refused_politely(box: Box, frame: str | bytes, code: int) -> None:
    async with open_websocket_url(box.url) as ws:
        await receive(ws)
        await ws.send_message(frame)
        with pytest.raises(ConnectionClosed) as closed:
            await receive(ws)
        assert closed.value.reason.code == code


async def test_a_json_object_is_ignored_and_the_connection_stays(box: Box) -> None:
    async with open_websocket_url(box.url) as ws:
        await receive(ws)
        await ws.send_message(json.dumps({"type": "hello"}))
        box.hub.apply_message("p1", report(mc_percent=42))
        message = await receive(ws)
        assert message["type"] == "delta" and message["changes"]["state"]["percent"] == 42


async def test_connection_limit_answers_503(box: Box) -> None:
    async with open_websocket_url(box.url) as a, open_websocket_url(box.url) as b:
        await receive(a)
        await receive(b)
        limits = box.ws.limits
        box.ws.limits = WsLimits(max_clients=2, heartbeat_s=limits.heartbeat_s)
        with pytest.raises(ConnectionRejected) as rejected:
            async with open_websocket_url(box.url):
                pass
        assert rejected.value.status_code == 503
        assert json.loads(rejected.value.body)["status"] == 503
    box.ws.limits = limits
    with trio.fail_after(HANG_S):
        while box.ws.clients:
            await trio.sleep(0.02)


async def test_reconnect_resyncs_and_new_printers_send_a_snapshot(box: Box) -> None:
    async with open_websocket_url(box.url) as ws:
        await receive(ws)
    box.hub.apply_message("p1", report(mc_percent=77, subtask_name="while away"))
    async with open_websocket_url(box.url) as ws:
        client = Client(await receive(ws))
        assert client.printers["p1"] == await box.printer("p1")
        box.hub.add_printer(printer_config("a1", "A1"))
        message = await receive(ws)
        assert message["type"] == "snapshot" and set(message["printers"]) == {"p1", "x1", "a1"}
        box.hub.remove_printer("x1")
        assert set((await receive(ws))["printers"]) == {"p1", "a1"}


async def test_plain_get_on_ws_is_426(box: Box) -> None:
    response = await box.http.get("/ws")
    assert response.status_code == 426 and "WebSocket" in response.json()["error"]


async def test_another_site_cannot_read_the_live_feed_through_a_visitors_browser(box: Box) -> None:
    # Browsers let any page open a WebSocket to any address and send its own Origin: a page on the internet,
    # opened by someone on the LAN, must not read the printers through them.
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(box.url, extra_headers=[(b"Origin", b"http://evil.example")]):
            pass
    assert rejected.value.status_code == 403
    assert "cross-site" in json.loads(rejected.value.body or b"{}")["error"]
    assert box.ws.clients == 0
    # The box's own page (same origin) and clients that send no Origin (scripts) are served.
    own = box.base.encode()
    async with open_websocket_url(box.url, extra_headers=[(b"Origin", own)]) as ws:
        assert (await receive(ws))["type"] == "snapshot"
    async with open_websocket_url(box.url) as ws:
        assert (await receive(ws))["type"] == "snapshot"


async def test_a_new_client_gets_the_recent_events_with_the_snapshot_and_none_twice(box: Box) -> None:
    box.hub.apply_message("p1", report(gcode_state="RUNNING", subtask_name="cube", mc_percent=1))
    box.hub.apply_message("p1", report(gcode_state="PAUSE"))
    box.hub.publish_event({"kind": "power_warning", "printer": "p1", "message": "the plug draws 0 W"})
    async with open_websocket_url(box.url) as ws:
        snapshot = await receive(ws)
        assert [e["kind"] for e in snapshot["events"]] == ["job_started", "job_paused", "power_warning"]
        assert snapshot["events"][0]["job"] == "cube" and isinstance(snapshot["events"][0]["at"], float)
        # What happens after the snapshot arrives once, as an event message (not replayed again).
        box.hub.apply_message("p1", report(gcode_state="RUNNING"))
        message = await receive(ws)
        while message["type"] != "event":
            message = await receive(ws)
        assert message["kind"] == "job_resumed"
    for n in range(30):  # bounded: a box that ran for weeks sends the last few, not all
        box.hub.publish_event({"kind": "power_warning", "printer": "p1", "message": f"warning {n}"})
    async with open_websocket_url(box.url) as ws:
        events = (await receive(ws))["events"]
        assert len(events) == 20 and events[-1]["message"] == "warning 29"


async def test_camera_status_reaches_the_page_without_a_printer_version(box: Box) -> None:
    async with open_websocket_url(box.url) as ws:
        client = Client(await receive(ws))
        version = box.hub.version
        camera = CameraStatus(kind="tls6000", status="live", reason=None, viewers=1, fps=9.5, last_frame_at=1000.0)
        box.hub.set_camera("p1", camera)
        message = await receive(ws)
        client.take(message)
        assert message == {"type": "delta", "printer": "p1", "changes": {"camera": {
            "status": "live", "reason": None, "viewers": 1, "fps": 9.5, "last_frame_at": 1000.0}}}
        shown = without_nulls(client.printers["p1"]["camera"])
        assert shown == without_nulls(camera) == without_nulls((await box.printer("p1"))["camera"])
        assert box.hub.version == version  # the printers' subscribers slept through it


async def test_each_change_is_diffed_and_framed_once_for_every_client_and_only_for_its_printer(
    box: Box, monkeypatch: pytest.MonkeyPatch
) -> None:
    diffed: list[str] = []
    real_diff = ws_module.diff
    monkeypatch.setattr(ws_module, "diff", lambda old, new: diffed.append(new["id"]) or real_diff(old, new))
    async with AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(open_websocket_url(box.url)) for _ in range(5)]
        for ws in sockets:
            await receive(ws)  # the snapshot
        box.hub.apply_message("p1", report(gcode_state="RUNNING", mc_percent=7))
        texts = []
        for ws in sockets:
            with trio.fail_after(HANG_S):
                texts.append(await ws.get_message())
        assert len(set(texts)) == 1 and json.loads(texts[0])["printer"] == "p1"  # the same text to everyone
        assert diffed == ["p1"]  # once for five clients, and x1, which did not change, was not diffed at all


async def test_a_delta_waits_while_the_connection_writes_a_pong_or_a_close(
    box: Box, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The deltas are written beside trio-websocket, under its send lock: while it holds the lock (a pong, a close
    # going out), the delta waits for it rather than landing inside that frame.
    sessions: list[ws_module._Session] = []
    real_init = ws_module._Session.__init__

    def recording_init(self: ws_module._Session, *args: Any) -> None:
        real_init(self, *args)
        sessions.append(self)

    monkeypatch.setattr(ws_module._Session, "__init__", recording_init)
    async with open_websocket_url(box.url) as ws:
        await receive(ws)  # the snapshot
        lock = sessions[0].ws._stream_lock
        await lock.acquire()
        box.hub.apply_message("p1", report(mc_percent=42))
        await trio.testing.wait_all_tasks_blocked()
        assert lock.statistics().tasks_waiting == 1  # the session, with its delta
        lock.release()
        delta = await receive(ws)
        assert delta["type"] == "delta" and delta["printer"] == "p1"


class RawClient:
    """A WebSocket client whose reading the test holds and resumes (trio-websocket's client reads on its own), on a
    socket with a small receive buffer, so the box's writes to it soon fill what the kernel holds."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.protocol = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        self.pending: list[wsproto.events.Event] = []

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        sock = trio.socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        await sock.connect(("127.0.0.1", port))
        client = cls(trio.SocketStream(sock))
        await client.stream.send_all(client.protocol.send(wsproto.events.Request(host="127.0.0.1", target="/ws")))
        with trio.fail_after(HANG_S):
            while not isinstance(await client._event(), wsproto.events.AcceptConnection):
                pass
        return client

    async def _event(self) -> wsproto.events.Event:
        while not self.pending:
            data = await self.stream.receive_some()
            assert data, "the box closed the connection"
            self.protocol.receive_data(data)
            self.pending += self.protocol.events()
        return self.pending.pop(0)

    async def message(self) -> dict[str, Any]:
        """The next message; every byte must parse as the frames of JSON texts."""
        text = ""
        with trio.fail_after(HANG_S):
            while True:
                event = await self._event()
                assert isinstance(event, wsproto.events.TextMessage), event
                text += event.data
                if event.message_finished:
                    return dict(json.loads(text))


def record_direct_writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int | None]]:
    """Every write the watcher tries straight to a socket: (bytes offered, bytes taken or None)."""
    writes: list[tuple[int, int | None]] = []
    real = ws_module._Wire.write_now

    def recording(wire: ws_module._Wire, data: bytes) -> int | None:
        written = real(wire, data)
        writes.append((len(data), written))
        return written

    monkeypatch.setattr(ws_module._Wire, "write_now", recording)
    return writes


def power_warnings(client: Client) -> list[str]:
    return [event["message"] for event in client.events if event["kind"] == "power_warning"]


async def test_a_write_the_socket_takes_in_part_is_finished_byte_exact_in_order_and_delays_no_one(
    box: Box, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = record_direct_writes(monkeypatch)
    held = await RawClient.connect(int(box.base.rsplit(":", 1)[1]))
    held_client = Client(await held.message())
    async with open_websocket_url(box.url) as reader:
        client = Client(await receive(reader))
        # ~200 kB of events in one step, more than the held client's socket takes now: the watcher writes what it
        # takes and hands the rest to the connection's task, which must finish it before anything newer.
        warnings = [f"warning {n} " + "x" * 2000 for n in range(100)]
        for text in warnings:
            box.hub.publish_event({"kind": "power_warning", "printer": "p1", "message": text})
        box.hub.apply_message("p1", big_change(0))  # at once: no bytes of it may land before the rest is written
        await trio.testing.wait_all_tasks_blocked()
        assert any(0 < taken < offered for offered, taken in writes if taken is not None)
        for i in range(20):  # the reader gets every change while the held client's task still waits to write
            if i:
                box.hub.apply_message("p1", big_change(i))
            message = await receive(reader)
            while message["type"] != "delta":
                client.take(message)
                message = await receive(reader)
            client.take(message)
            assert without_nulls(client.printers["p1"]) == without_nulls(await box.printer("p1"))
        assert power_warnings(client) == warnings
    # The held client reads again: the events whole and in order, once each, then the newest state.
    expected = without_nulls(await box.printer("p1"))
    while without_nulls(held_client.printers["p1"]) != expected:
        message = await held.message()
        if message["type"] != "event":  # no state before the events that came before it
            assert len(power_warnings(held_client)) == len(warnings)
        held_client.take(message)
    assert power_warnings(held_client) == warnings
    assert held_client.deltas < 20  # it skipped the states it was away for
    await held.stream.aclose()


async def test_a_client_on_another_kind_of_stream_is_served_by_its_task(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only a plain TCP socket is written to directly; any other stream (TLS, should the front door ever wrap one)
    # holds state between the bytes and the socket, so its frames go through it, from the connection's task.
    writes = record_direct_writes(monkeypatch)
    hub = StateHub([printer_config("p1")])
    service = WebSocketService(hub, WsLimits(heartbeat_s=HANG_S * 4))
    request = Request(method="GET", target="/ws", path="/ws", query="", headers=(), http_version="1.1")
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        server_end, client_end = trio.testing.memory_stream_pair()
        nursery.start_soon(service.serve, server_end, request, b"")
        ws = await wrap_client_stream(nursery, client_end, "box", "/ws")
        client = Client(await receive(ws))
        for percent in (10, 20, 30):
            hub.apply_message("p1", report(mc_percent=percent))
            await trio.testing.wait_all_tasks_blocked()
            client.take(await receive(ws))
            assert client.printers["p1"]["state"]["percent"] == percent
        assert writes and all(taken is None for _, taken in writes)
        nursery.cancel_scope.cancel()


SECRET = "tk_secret-in-an-error"


class Breaks:
    """A part of the box that fails at every start while ``broken`` is set, then runs."""

    name = "panel"
    sections: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.broken = True

    def add_routes(self, web: Web) -> None:
        pass

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if self.broken:
            raise ValueError(f"bad pixel near {SECRET}")
        task_status.started()
        await trio.sleep_forever()

    async def apply(self, old: Config, new: Config) -> Applied:
        return RESTART


async def test_a_failing_part_is_pushed_to_the_page_and_cleared_when_it_runs_again(mock_clock: Any) -> None:
    # The clock stands still unless the test moves it: the countdown is exact and the restart waits for the test.
    hub = StateHub([printer_config("p1")])
    board = HealthBoard()
    service = WebSocketService(hub, WsLimits(heartbeat_s=30), health=board)
    part = Breaks()
    supervisor = Supervisor([part], secrets=lambda: [Secret(SECRET)], backoff_min_s=5, board=board)
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        door = FrontDoor(make_app(hub), WebConfig(host="127.0.0.1", port=0), native=service.router)
        url = f"ws://127.0.0.1:{await nursery.start(door.run)}/ws"
        async with open_websocket_url(url) as ws:
            assert (await receive(ws))["type"] == "snapshot"  # nothing failed: no health message
            await supervisor.start(nursery)
            failed = {"name": "panel", "state": "failed", "error": "ValueError", "failures": 1, "retry_in_s": 5.0}
            assert await receive(ws) == {"type": "health", "failing": [failed]}  # no message text: no secret
            async with open_websocket_url(url) as late:  # a page opened now learns it right after the snapshot
                assert (await receive(late))["type"] == "snapshot"
                assert await receive(late) == {"type": "health", "failing": [failed]}
            part.broken = False
            mock_clock.jump(5)
            message = await receive(ws)
            if message["failing"]:  # the restart under way, if the page was told before it ran
                restarting = {key: value for key, value in failed.items() if key != "retry_in_s"}
                assert message["failing"] == [{**restarting, "state": "restarting"}]
                message = await receive(ws)
            assert message == {"type": "health", "failing": []}
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 200_000])
def test_a_message_framed_once_reads_back_whole_in_a_websocket_client(size: int) -> None:
    client = wsproto.Connection(wsproto.ConnectionType.CLIENT)
    text = "é" * (size // 2) + "x" * (size % 2)  # multi-byte characters: the frame counts bytes
    client.receive_data(ws_module.text_frame(text))
    events = list(client.events())
    assert len(events) == 1 and isinstance(events[0], wsproto.events.TextMessage)
    assert events[0].data == text and events[0].message_finished
