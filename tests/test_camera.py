"""The camera relay against the simulator's camera over real TLS, and the pure framing (the RTSPS path:
test_camera_rtsps.py). Frames flow through real sockets: simulator camera -> FrameHub -> front door -> HTTP viewers."""

from __future__ import annotations

import importlib.resources
import io
import itertools
import json
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
import trio.testing
from PIL import Image

from bambupi.camera.frames import FrameHub
from bambupi.camera.jpeg import (
    AUTH_SIZE,
    HEADER_SIZE,
    FrameError,
    JpegSplitter,
    auth_packet,
    frame_header,
    is_jpeg,
    parse_auth,
    parse_header,
)
from bambupi.camera.routes import CameraRoutes
from bambupi.camera.snapshots import SnapshotStore, SnapshotTaker, parse_snapshot_name, snapshot_reason
from bambupi.camera.source import CameraError, Tls6000Source
from bambupi.config import PrinterConfig, WebConfig
from bambupi.printer.state import apply_message, initial_state
from bambupi.printer.tls_pins import PinStore, TrustOnFirstUse, camera_pin_key, fingerprint, printer_tls_context
from bambupi.secret import Secret
from bambupi.sim.broker import server_ssl_context
from bambupi.sim.camera import FrameInfo, render_frame
from bambupi.sim.simulator import Simulator
from bambupi.state_hub import StateHub
from bambupi.web.api import make_app
from bambupi.web.frontdoor import FrontDoor
from tests.support import wait_for

HANG_S = 30  # waits end on a state; this bounds only a hang, however busy the machine

CODE = "12345678"
SERIAL = "01P00A000000001"


# --- pure framing --------------------------------------------------------------------------------------------------


def jpeg(seed: int = 0) -> bytes:
    return render_frame(FrameInfo("P1S", "RUNNING", seed % 100, "cube", 1_700_000_000.0, seed), quality=50)


def test_auth_packet_round_trips_and_is_80_bytes() -> None:
    packet = auth_packet(CODE)
    assert len(packet) == 80
    assert packet[:16] == bytes.fromhex("40000000003000000000000000000000")
    assert parse_auth(packet) == ("bblp", CODE)


def test_header_bounds() -> None:
    assert parse_header(frame_header(1234)) == 1234
    with pytest.raises(FrameError, match="limit"):
        parse_header(frame_header(5 * 1024 * 1024))
    with pytest.raises(FrameError, match="empty"):
        parse_header(frame_header(0))


def test_splitter_cuts_concatenated_jpegs_at_any_chunking() -> None:
    frames = [jpeg(i) for i in range(3)]
    stream = b"junk before" + b"".join(frames)
    for chunk in (1, 3, 4096, len(stream)):
        splitter = JpegSplitter()
        out: list[bytes] = []
        for i in range(0, len(stream), chunk):
            out += splitter.feed(stream[i : i + chunk])
        assert out == frames


def test_splitter_is_bounded_and_resynchronises() -> None:
    splitter = JpegSplitter(max_size=10_000)
    good = jpeg(1)
    big = JpegSplitter(max_size=len(good) - 1)
    assert big.feed(good) == [] and big.dropped == 1
    # An SOI followed by garbage that never ends is dropped; the next real frame still comes through.
    assert splitter.feed(b"\xff\xd8\xff\xe0\x00\x10" + b"\x00" * 20_000) == []
    assert splitter.dropped >= 1
    assert JpegSplitter().feed(b"\xff\xd8\x00\x01" + good) == [good]


def test_liveview_flag_from_ipcam() -> None:
    report = {"print": {"command": "push_status", "ipcam": {"rtsp_url": "disable"}}}
    assert apply_message(initial_state(), json.dumps(report), model="X1C").state["liveview"] is False
    report["print"]["ipcam"]["rtsp_url"] = "rtsps://192.168.1.5/streaming/live/1"
    assert apply_message(initial_state(), json.dumps(report), model="X1C").state["liveview"] is True


def test_snapshot_reasons() -> None:
    assert snapshot_reason({"kind": "job_finished"}) == "finished"
    assert snapshot_reason({"kind": "job_failed"}) == "failed"
    assert snapshot_reason({"kind": "hms_raised", "severity": "fatal", "hms": {"standing": False}}) == "hms"
    assert snapshot_reason({"kind": "hms_raised", "severity": "serious", "hms": {"standing": True}}) is None
    assert snapshot_reason({"kind": "hms_raised", "severity": "common", "hms": {}}) is None
    assert snapshot_reason({"kind": "job_paused"}) is None


def test_snapshot_store_is_bounded(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, max_count=3, max_bytes=10 * 1024 * 1024)
    data = jpeg()
    for i in range(5):
        store.save("p1", data, "manual", 1_700_000_000.0 + i)
    kept = store.snapshots("p1")
    assert [s.at for s in kept] == [1_700_000_004.0, 1_700_000_003.0, 1_700_000_002.0]
    assert parse_snapshot_name(kept[0].name) == (1_700_000_004.0, "manual")
    assert store.read("p1", kept[0].name) == data
    assert store.read("p1", "../../etc/passwd") is None
    small = SnapshotStore(tmp_path / "small", max_count=100, max_bytes=len(data) * 2)
    for i in range(4):
        small.save("p1", data, "hms", 1_700_000_000.0 + i)
    assert len(small.snapshots("p1")) == 2


# --- against the simulator's camera ------------------------------------------------------------------------------


class PacedCamera:
    """A camera source that sends one of a few pre-rendered frames every ``interval_s`` on trio's clock.

    The simulator's camera renders each frame in a worker thread, and trio's fake clock jumps while a thread works;
    this one runs no thread, so a test on the fake clock measures rates and lingers exactly."""

    kind = "paced"

    def __init__(self, interval_s: float = 0.1) -> None:
        self.interval_s = interval_s
        self.pictures = [jpeg(seed) for seed in range(4)]
        self.sent = 0  # across connections: a new connection never starts with the picture the last one ended on
        self.clients = 0

    async def stream(self, on_frame: Callable[[bytes], None]) -> None:
        self.clients += 1
        try:
            while True:
                on_frame(self.pictures[self.sent % len(self.pictures)])
                self.sent += 1
                await trio.sleep(self.interval_s)
        finally:
            self.clients -= 1


@dataclass
class Rig:
    sim: Simulator
    hub: StateHub
    frames: FrameHub
    taker: SnapshotTaker
    port: int
    paced: PacedCamera | None = None

    @property
    def camera_connections(self) -> int:
        assert self.sim.camera is not None
        return self.sim.camera.connections


def printer(camera_port: int, code: str = CODE) -> PrinterConfig:
    return PrinterConfig(
        id="p1", name="P1", model="P1S", host="127.0.0.1", serial=SERIAL, access_code=Secret(code),
        camera_port=camera_port, connect_timeout_s=5,
    )  # fmt: skip


@pytest.fixture
async def rig(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    options = getattr(request, "param", {})
    async with trio.open_nursery() as nursery:
        sim = Simulator("P1S", SERIAL, CODE, camera_port=0, camera_fps=options.get("fps", 10.0))
        await nursery.start(sim.run)
        assert sim.camera_port
        config = printer(sim.camera_port, options.get("code", CODE))
        hub = StateHub([config])
        backoff = options.get("backoff", (0.1, 0.5))
        paced = PacedCamera() if options.get("paced") else None
        frames = FrameHub(
            hub, [config], linger_s=options.get("linger", 0.5), backoff_min_s=backoff[0], backoff_max_s=backoff[1],
            status_interval_s=options.get("status_interval", 2.0),
            **({"source_for": lambda _: paced} if paced is not None else {}),
        )
        await nursery.start(frames.run)
        taker = await nursery.start(
            SnapshotTaker(hub, frames, SnapshotStore(tmp_path / "snaps"), timeout_s=HANG_S / 2).run
        )
        routes = CameraRoutes(
            frames, taker, write_timeout_s=options.get("write_timeout", 1.0),
            first_frame_timeout_s=options.get("first_frame_timeout", 10.0),
        )
        door = FrontDoor(make_app(hub), WebConfig(host="127.0.0.1", port=0), native=routes)
        port = await nursery.start(door.run)
        yield Rig(sim, hub, frames, taker, port, paced)
        nursery.cancel_scope.cancel()


async def http_get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


class Viewer:
    """An MJPEG client that parses parts by their Content-Length."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buf = b""
        self.frames: list[bytes] = []
        self.status = 0

    @classmethod
    async def open(cls, port: int, query: str = "") -> Viewer:
        viewer = cls(await trio.open_tcp_stream("127.0.0.1", port))
        await viewer.stream.send_all(f"GET /api/printers/p1/camera{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = await viewer._until(b"\r\n\r\n")
        viewer.status = int(head.split()[1])
        return viewer

    async def _until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        head, _, self.buf = self.buf.partition(marker)
        return head

    async def next_frame(self) -> bytes:
        head = (await self._until(b"\r\n\r\n")).decode("latin-1")
        assert "Content-Type: image/jpeg" in head
        size = int(head.split("Content-Length: ")[1].split("\r\n")[0])
        while len(self.buf) < size + 2:
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        frame, self.buf = self.buf[:size], self.buf[size + 2 :]
        self.frames.append(frame)
        return frame

    async def run(self) -> None:
        while True:
            await self.next_frame()


def decodes(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.size


async def test_frames_are_relayed_byte_identical_and_decodable(rig: Rig) -> None:
    viewer = await Viewer.open(rig.port)
    assert viewer.status == 200
    with trio.fail_after(HANG_S):
        received = [await viewer.next_frame() for _ in range(5)]
    assert rig.sim.camera is not None
    sent = list(rig.sim.camera.sent)
    for frame in received:
        assert frame in sent  # byte for byte what the camera sent
        assert decodes(frame) == (1280, 720)
    assert len(set(received)) == 5  # distinct frames, each once
    assert rig.hub.printer("p1")["camera"]["status"] == "live"
    assert rig.hub.printer("p1")["camera"]["viewers"] == 1
    status, headers, body = await http_get(rig.port, "/api/printers/p1/snapshot.jpg")
    assert status == 200 and headers["content-type"] == "image/jpeg" and body in rig.sim.camera.sent
    assert float(headers["x-frame-age"]) < 5.0  # a live frame (at 10 fps), however slow the machine
    await viewer.stream.aclose()


@pytest.mark.parametrize("rig", [{"status_interval": 0.05}], indirect=True)
async def test_a_watched_camera_reports_on_its_own_stream_and_never_bumps_the_printers_version(rig: Rig) -> None:
    version = rig.hub.version
    viewer = await Viewer.open(rig.port)
    with trio.fail_after(HANG_S):
        await viewer.next_frame()
        reported = rig.hub.camera_version
        while rig.hub.camera_version < reported + 10:  # ten of the camera's regular status reports
            await trio.sleep(0.05)
    assert rig.hub.version == version  # no printer subscriber (panel, notify, power) woke for any of it
    status, _, body = await http_get(rig.port, "/api/printers/p1")
    camera = json.loads(body)["camera"]  # the page still sees the camera's figures in the printer object
    assert status == 200 and camera["status"] == "live" and camera["viewers"] == 1
    assert camera["fps"] > 0 and camera["last_frame_at"] is not None
    await viewer.stream.aclose()


async def test_the_cameras_certificate_is_pinned_and_another_one_never_gets_the_access_code(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        sim = Simulator("P1S", SERIAL, CODE, camera_port=0, camera_fps=10.0)
        await nursery.start(sim.run)
        assert sim.camera is not None and sim.camera_port
        pins = PinStore(tmp_path / "tls-pins.json")
        source = Tls6000Source("127.0.0.1", sim.camera_port, Secret(CODE), connect_timeout_s=5,
                               trust=TrustOnFirstUse(pins, camera_pin_key("p1"), printer_id="p1"))
        frames: list[bytes] = []
        with trio.fail_after(HANG_S), trio.CancelScope() as scope:
            await source.stream(lambda data: (frames.append(data), scope.cancel()))
        assert frames and pins.get("p1/camera") == fingerprint(
            ssl.PEM_cert_to_DER_cert((importlib.resources.files("bambupi") / "data" / "sim-cert.pem").read_text()))
        assert pins.get("p1") is None  # the MQTT link's pin is its own

        # Another device on the printer's address (here: the same camera with a pin it does not match).
        pins.set("p1/camera", "sha256:" + "0" * 64)
        logins = sim.camera.logins
        with pytest.raises(CameraError, match="different certificate") as info:
            await source.stream(lambda data: None)
        assert info.value.retry_s == 60.0 and "bambupi trust" in str(info.value) and CODE not in str(info.value)
        # Until nothing is left to run: an access code sent would have been read and counted by now.
        await trio.testing.wait_all_tasks_blocked(0.02)
        assert sim.camera.logins == logins  # the access code was not sent
        nursery.cancel_scope.cancel()


# --- the port-6000 framing as it crosses the wire ------------------------------------------------------------------
# Real printers send each frame's 16-byte header in a TLS record of its own, then the JPEG. Peers depend on it:
# ha-bambulab's and bambulabs_api's readers take whatever one read returns as the header when it is 16 bytes long.


async def test_sim_camera_sends_each_header_in_a_tls_record_of_its_own() -> None:
    async with trio.open_nursery() as nursery:
        sim = Simulator("P1S", SERIAL, CODE, camera_port=0, camera_fps=10.0)
        await nursery.start(sim.run)
        assert sim.camera is not None and sim.camera_port
        tcp = await trio.open_tcp_stream("127.0.0.1", sim.camera_port)
        stream = trio.SSLStream(tcp, printer_tls_context(), server_hostname=None)
        with trio.fail_after(HANG_S):
            await stream.send_all(auth_packet(CODE))
            for _ in range(3):
                # One read returns at most one TLS record: a header sent with the JPEG would come back longer.
                header = await stream.receive_some(4096)
                assert len(header) == HEADER_SIZE
                payload = b""
                size = parse_header(header)
                while len(payload) < size:
                    chunk = await stream.receive_some(min(4096, size - len(payload)))
                    assert chunk
                    payload += chunk
                assert is_jpeg(payload) and payload in sim.camera.sent
        await trio.aclose_forcefully(stream)
        nursery.cancel_scope.cancel()


async def test_an_independent_client_library_gets_frames_from_bambupi_sim() -> None:
    """bambulabs_api (from PyPI, its own TLS and framing code) against a real ``bambupi sim`` process, as a user
    would point it at a printer: it got no frame at all before the simulator sent each header in its own record."""
    from bambulabs_api.camera_client import PrinterCamera

    sim = await trio.lowlevel.open_process(
        [sys.executable, "-m", "bambupi", "sim", "--mqtt-port", "0", "--camera-port", "0", "--access-code", CODE,
         "--scenario", "idle"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert sim.stdout is not None
    try:
        line = b""
        with trio.fail_after(HANG_S):
            while not line.endswith(b"\n"):  # the first line says where it serves, once it does
                chunk = await sim.stdout.receive_some(1)
                assert chunk, line
                line += chunk
        port = int(line.decode().rsplit("camera (port-6000 protocol) on 127.0.0.1:", 1)[1])
        peer = PrinterCamera("127.0.0.1", CODE, port=port)
        peer.start()
        try:
            await wait_for(lambda: peer.last_frame is not None, timeout=HANG_S)
            frame = bytes(peer.last_frame)
        finally:
            await trio.to_thread.run_sync(peer.stop)
    finally:
        sim.kill()
        await sim.wait()
    assert is_jpeg(frame) and decodes(frame) == (1280, 720)


async def test_relay_reads_frames_whatever_the_tls_records() -> None:
    """The relay reads exactly 16 bytes, then exactly the payload, however the bytes are cut into TLS records:
    the header alone (the printer), split in two, sharing a record with the JPEG, or the end of one frame with
    the next header."""
    frames = [jpeg(i) for i in range(4)]
    wire = b"".join(frame_header(len(f)) + f for f in frames)
    first = len(frames[0]) + HEADER_SIZE
    cuts = sorted({
        HEADER_SIZE,  # the printer's way
        first, first + 7,  # the next header split in two records
        first + HEADER_SIZE + 7 + 1000,  # header's tail and the JPEG's start together
        2 * first + 100,  # a record holding a frame's end and the next header
        *range(3 * first, len(wire), 1013),  # odd-sized records
    })  # fmt: skip

    async def serve(tcp: trio.SocketStream) -> None:
        stream = trio.SSLStream(tcp, server_ssl_context(), server_side=True)
        packet = bytearray()
        while len(packet) < AUTH_SIZE:
            packet += await stream.receive_some(AUTH_SIZE - len(packet))
        start = 0
        for end in [*cuts, len(wire)]:
            await stream.send_all(wire[start:end])  # one TLS record per send
            start = end
        await stream.wait_send_all_might_not_block()
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, serve, 0)
        port = listeners[0].socket.getsockname()[1]
        received: list[bytes] = []
        source = Tls6000Source("127.0.0.1", port, Secret(CODE), connect_timeout_s=HANG_S, read_timeout_s=HANG_S)
        with trio.fail_after(HANG_S), trio.CancelScope() as scope:
            await source.stream(lambda data: (received.append(data), len(received) == len(frames) and scope.cancel()))
        assert received == frames
        nursery.cancel_scope.cancel()


# A snapshot waits the first-frame timeout before it answers with the camera's refusal. The relay waits long before
# it tries again, so the answer is the refusal and not a retry caught in the middle ("connecting").
@pytest.mark.parametrize(
    "rig", [{"code": "87654321", "first_frame_timeout": 5.0, "backoff": (HANG_S * 4, HANG_S * 4)}], indirect=True
)
async def test_wrong_access_code_is_reported(rig: Rig) -> None:
    status, _, body = await http_get(rig.port, "/api/printers/p1/snapshot.jpg")
    assert status == 503
    answer = json.loads(body)
    assert "camera refused the access code" in answer["error"]
    assert "87654321" not in body.decode()
    camera = rig.hub.printer("p1")["camera"]
    assert camera["status"] == "error" and "refused the access code" in camera["reason"]
    assert rig.sim.camera is not None and rig.sim.camera.refused >= 1


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("garbage_header", "bad data"),
        ("oversized", "limit"),
        ("not_jpeg", "not a JPEG"),
        ("cut_mid_frame", "middle of a frame"),
    ],
)
async def test_broken_stream_drops_and_reconnects(rig: Rig, fault: str, reason: str) -> None:
    assert rig.sim.camera is not None
    viewer = await Viewer.open(rig.port)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(viewer.run)
        await wait_for(lambda: len(viewer.frames) >= 2)
        reasons: list[str] = []

        def saw_error() -> bool:
            camera = rig.hub.printer("p1")["camera"]
            if camera["status"] == "error":
                reasons.append(camera["reason"])
            return bool(reasons)

        rig.sim.camera.inject(fault)
        await wait_for(saw_error, timeout=HANG_S)
        assert reason in reasons[0]
        before = len(viewer.frames)
        # The relay reconnects on its own and the same viewer keeps getting frames.
        await wait_for(lambda: len(viewer.frames) >= before + 3, timeout=HANG_S)
        assert rig.camera_connections == 2
        nursery.cancel_scope.cancel()
    for frame in viewer.frames:
        assert is_jpeg(frame)


async def test_head_on_the_stream_answers_headers_without_waking_the_camera(rig: Rig) -> None:
    status, headers, body = await http_get(rig.port, "/api/printers/p1/camera", method="HEAD")
    assert status == 200 and headers["content-type"].startswith("multipart/x-mixed-replace")
    assert body == b"" and rig.camera_connections == 0


async def test_twenty_viewers_share_one_upstream(rig: Rig) -> None:
    viewers = [await Viewer.open(rig.port) for _ in range(20)]
    async with trio.open_nursery() as nursery:
        for viewer in viewers:
            nursery.start_soon(viewer.run)
        await wait_for(lambda: all(len(v.frames) >= 3 for v in viewers), timeout=HANG_S)
        nursery.cancel_scope.cancel()
    assert rig.camera_connections == 1
    assert rig.frames.upstream_connections("p1") == 1
    assert rig.hub.printer("p1")["camera"]["viewers"] == 20


async def open_stalled_viewer(port: int) -> trio.SocketStream:
    """A viewer that asks for the stream and never reads it: the server's writes to it fill up and block."""
    stalled = await trio.open_tcp_stream("127.0.0.1", port)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await stalled.send_all(b"GET /api/printers/p1/camera HTTP/1.1\r\nHost: x\r\n\r\n")
    return stalled


# The write timeout outlasts the test: a relay that waited for the stalled viewer would starve the reader.
@pytest.mark.parametrize("rig", [{"write_timeout": HANG_S * 4}], indirect=True)
async def test_stalled_viewer_does_not_slow_others(rig: Rig) -> None:
    stalled = await open_stalled_viewer(rig.port)
    reader = await Viewer.open(rig.port)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader.run)
        await wait_for(lambda: len(reader.frames) >= 30, timeout=HANG_S)  # 3 s of frames, and more
        assert rig.hub.printer("p1")["camera"]["viewers"] == 2  # while the stalled one was still held
        nursery.cancel_scope.cancel()
    await stalled.aclose()


async def test_stalled_viewer_is_closed_after_the_write_timeout(rig: Rig) -> None:
    stalled = await open_stalled_viewer(rig.port)
    await wait_for(lambda: rig.hub.printer("p1")["camera"]["viewers"] == 1, timeout=HANG_S)
    # Frames fill its buffers, a write waits out the timeout (1 s): the server stops counting it.
    await wait_for(lambda: rig.hub.printer("p1")["camera"]["viewers"] == 0, timeout=HANG_S)
    await stalled.aclose()


# On trio's fake clock with a camera that runs no thread: the linger is measured, not raced.
@pytest.mark.parametrize("rig", [{"linger": 2.0, "paced": True}], indirect=True)
async def test_upstream_closes_after_linger(rig: Rig, autojump_clock: trio.testing.MockClock) -> None:
    assert rig.paced is not None
    viewer = await Viewer.open(rig.port)
    await viewer.next_frame()
    assert rig.paced.clients == 1
    await viewer.stream.aclose()
    await wait_for(lambda: rig.hub.printer("p1")["camera"]["viewers"] == 0, timeout=HANG_S)  # the relay noticed
    assert rig.paced.clients == 1  # still lingering
    lingered = await wait_for(lambda: rig.paced is not None and rig.paced.clients == 0, timeout=HANG_S)
    assert lingered >= 2.0 - 0.1  # the linger, less the polls that saw the relay notice
    assert rig.hub.printer("p1")["camera"]["status"] == "idle"
    # A new viewer brings it back with a fresh frame, never the stale one.
    old = rig.frames.latest("p1")
    viewer = await Viewer.open(rig.port, "?fps=2")
    frame = await viewer.next_frame()
    assert old is not None and frame != old.data
    await viewer.stream.aclose()


@pytest.mark.parametrize("rig", [{"paced": True}], indirect=True)
async def test_fps_parameter_limits_one_viewer(rig: Rig, autojump_clock: trio.testing.MockClock) -> None:
    """On trio's fake clock with a camera that runs no thread: the rates are exact whatever the machine's load."""
    slow = await Viewer.open(rig.port, "?fps=2")
    fast = await Viewer.open(rig.port)
    arrivals: list[float] = []

    async def watch_slow() -> None:
        while True:
            await slow.next_frame()
            arrivals.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_slow)
        nursery.start_soon(fast.run)
        await wait_for(lambda: len(slow.frames) >= 5, timeout=HANG_S)
        nursery.cancel_scope.cancel()
    # 2 fps: a frame every 0.5 s, each the camera's next one after its slot (the camera sends every 0.1 s).
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(arrivals)]
    assert all(0.5 - 0.1 <= gap <= 0.5 + 0.1 for gap in gaps), gaps
    assert len(fast.frames) >= 3 * len(slow.frames)  # the other viewer is not held to 2 fps (10 fps here)
    status, _, body = await http_get(rig.port, "/api/printers/p1/camera?fps=abc")
    assert status == 400 and b"fps" in body


async def test_snapshot_history_on_demand_and_on_events(rig: Rig) -> None:
    status, _, body = await http_get(rig.port, "/api/printers/p1/snapshots", method="POST")
    assert status == 201
    taken = json.loads(body)
    assert taken["reason"] == "manual"
    status, _, image = await http_get(rig.port, taken["url"])
    assert status == 200 and decodes(image) == (1280, 720)
    # A finished print is photographed through the event queue.
    base = {"print": {"command": "push_status", "gcode_state": "RUNNING", "hms": []}}
    rig.hub.apply_message("p1", json.dumps(base))
    base["print"]["gcode_state"] = "FINISH"
    rig.hub.apply_message("p1", json.dumps(base))
    await wait_for(lambda: rig.taker.taken >= 2, timeout=10)
    status, _, body = await http_get(rig.port, "/api/printers/p1/snapshots")
    reasons = [s["reason"] for s in json.loads(body)["snapshots"]]
    assert sorted(reasons) == ["finished", "manual"]
    status, _, _ = await http_get(rig.port, "/api/printers/nope/snapshot.jpg")
    assert status == 404


async def test_liveview_off_is_shown_not_retried(tmp_path: Path) -> None:
    config = PrinterConfig(
        id="x1", name="X1", model="X1C", host="127.0.0.1", serial=SERIAL, access_code=Secret(CODE), camera_port=9
    )
    hub = StateHub([config])
    async with trio.open_nursery() as nursery:
        frames = await nursery.start(FrameHub(hub, [config]).run)
        report = {"print": {"command": "push_status", "ipcam": {"rtsp_url": "disable"}}}
        hub.apply_message("x1", json.dumps(report))
        await wait_for(lambda: hub.printer("x1")["camera"]["status"] == "off")
        assert "LAN Only Liveview" in hub.printer("x1")["camera"]["reason"]
        assert await frames.fresh_frame("x1", max_age_s=1, timeout_s=1) is None
        assert frames.upstream_connections("x1") == 0
        nursery.cancel_scope.cancel()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


def test_an_auth_packet_is_accepted_only_for_bblp_with_the_code() -> None:
    from bambupi.camera.jpeg import auth_accepted, auth_packet

    assert auth_accepted(auth_packet("12345678"), b"12345678")
    assert not auth_accepted(auth_packet("12345679"), b"12345678")
    assert not auth_accepted(auth_packet("12345678", username="admin"), b"12345678")
    assert not auth_accepted(auth_packet("12345678")[:-1], b"12345678")  # short
    assert not auth_accepted(b"\0" * 80, b"")  # not an auth packet at all
