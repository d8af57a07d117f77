"""The RTSPS camera (X1/H2/P2) against GStreamer's real RTSP server over TLS (tests/rtsps_server.py), decoded by a
real ffmpeg through the loopback proxy: frames, Digest and Basic logins, a wrong code, the pinned certificate, no
access code in any process's arguments or environment, a stalled camera restarted, no decoder left behind; and the
proxy's pure parts (framing, Digest, URL rewriting)."""

from __future__ import annotations

import functools
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
from PIL import Image

from bambupi.camera.frames import FrameHub, default_source
from bambupi.camera.jpeg import is_jpeg
from bambupi.camera.rtsps import RtspsSource
from bambupi.camera.rtsps_proxy import (
    Challenge,
    RtspError,
    RtspMessage,
    RtspReader,
    digest_authorization,
    parse_challenge,
    rewrite_urls,
    socket_belongs_to,
)
from bambupi.camera.source import CameraError
from bambupi.config import CameraConfig, PrinterConfig
from bambupi.printer.tls_pins import PinStore, TrustOnFirstUse, camera_pin_key, fingerprint
from bambupi.secret import Secret
from bambupi.sim.broker import server_ssl_context
from bambupi.sim.printer import render_report
from bambupi.sim.rtsps import MAX_PAYLOAD, check_digest, encoder_available, rtp_packets, split_nal_units
from bambupi.sim.simulator import Simulator
from bambupi.state_hub import StateHub
from tests.support import wait_for

CODE = "12345678"
SERIAL = "01S00A000000001"
SYSTEM_PYTHON = "/usr/bin/python3"
SERVER = Path(__file__).with_name("rtsps_server.py")


# --- pure parts ------------------------------------------------------------------------------------------------


def test_reader_cuts_messages_and_packets_at_any_chunking() -> None:
    sdp = b"v=0\r\na=control:rtsps://10.0.0.5:322/streaming/live/1/track1\r\n"
    stream = (
        b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp\r\nContent-Length: "
        + str(len(sdp)).encode() + b"\r\n\r\n" + sdp
        + b"$\x00\x00\x05hello" + b"\r\n" + b"$\x01\x00\x00"
        + b"GET_PARAMETER rtsp://x/y RTSP/1.0\r\nCSeq: 3\r\n\r\n"
    )  # fmt: skip
    for size in (1, 2, 7, len(stream)):
        reader = RtspReader()
        items: list[RtspMessage | bytes] = []
        for at in range(0, len(stream), size):
            items += reader.feed(stream[at : at + size])
        packets = b"".join(item for item in items[1:-1] if isinstance(item, bytes))
        assert packets == b"$\x00\x00\x05hello$\x01\x00\x00"  # the stray CRLF between them is dropped
        first = items[0]
        assert isinstance(first, RtspMessage) and first.status == 200 and first.body == sdp
        last = items[-1]
        assert isinstance(last, RtspMessage) and last.method == "GET_PARAMETER" and last.uri == "rtsp://x/y"


def test_reader_refuses_what_is_not_rtsp_or_too_big() -> None:
    with pytest.raises(RtspError, match="not RTSP"):
        RtspReader().feed(b"HELLO there\r\n\r\n")
    with pytest.raises(RtspError, match="16 KiB"):
        RtspReader().feed(b"RTSP/1.0 200 OK\r\nX: " + b"a" * 20_000)
    with pytest.raises(RtspError, match="64 KiB"):
        RtspReader().feed(b"RTSP/1.0 200 OK\r\nContent-Length: 99999999\r\n\r\n")
    with pytest.raises(RtspError, match="Content-Length"):
        RtspReader().feed(b"RTSP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n")


def test_digest_matches_rfc_2617_and_the_printers_form() -> None:
    # RFC 2617 section 3.5's worked example.
    params = {"realm": "testrealm@host.com", "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093", "qop": "auth,auth-int",
              "opaque": "5ccc069c403ebaf9f0171e9517f40e41"}  # fmt: skip
    header = digest_authorization(
        params, "GET", "/dir/index.html", "Circle Of Life", count=1, cnonce="0a4f113b", user="Mufasa"
    )
    assert 'response="6629fae49393a05397450978507c4ef1"' in header and "nc=00000001" in header
    # The printers' LIVE555: no qop, response = MD5(HA1:nonce:HA2) over the rtsps:// URI as written.
    scheme, live555 = parse_challenge('Digest realm="LIVE555 Streaming Media", nonce="064a08a6"')
    assert scheme == "digest"
    header = digest_authorization(live555, "DESCRIBE", "rtsps://10.0.0.5:322/streaming/live/1", "secret")
    assert 'uri="rtsps://10.0.0.5:322/streaming/live/1"' in header and "qop" not in header and "secret" not in header


def test_challenge_prefers_digest_and_basic_is_the_fallback() -> None:
    both = ['Basic realm="x"', 'Digest realm="LIVE555 Streaming Media", nonce="n"']
    picked = Challenge.pick(both)
    assert picked is not None and picked.scheme == "digest"
    basic = Challenge.pick(['Basic realm="x"'])
    assert basic is not None and basic.authorization("DESCRIBE", "u", "pw").startswith("Basic ")
    assert Challenge.pick(['Bearer realm="x"']) is None


def test_urls_in_replies_point_at_the_proxy() -> None:
    base = "rtsp://127.0.0.1:5/tok"
    text = "a=control:rtsps://10.0.0.5:322/streaming/live/1/track1\r\nx rtsps://bblp:pw@10.0.0.5/1"
    assert rewrite_urls(text, base) == f"a=control:{base}/streaming/live/1/track1\r\nx {base}/1"


async def test_socket_owner_is_read_from_proc() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = socket.create_connection(listener.getsockname())
    try:
        port, peer = listener.getsockname()[1], client.getsockname()[1]
        if socket_belongs_to(os.getpid(), port, peer) is None:
            pytest.skip("no /proc here")
        assert socket_belongs_to(os.getpid(), port, peer) is True
        assert socket_belongs_to(os.getppid(), port, peer) is False
    finally:
        client.close()
        listener.close()


def test_decoder_command_holds_no_secret_and_survives_p2s_quirks() -> None:
    source = RtspsSource("10.0.0.5", 322, Secret(CODE), fps=2, width=640)
    command = source.command("/usr/bin/ffmpeg", "rtsp://127.0.0.1:5/token/streaming/live/1")
    assert CODE not in " ".join(command)
    assert "-use_wallclock_as_timestamps" in command and "-probesize" in command
    assert "fps=2,scale='min(640,iw)':-2" in command


def test_default_source_takes_the_camera_section() -> None:
    printer = PrinterConfig(id="x1", name="X1", model="X1C", host="10.0.0.5", serial=SERIAL, access_code=Secret(CODE))
    source = default_source(printer, None, CameraConfig(decoder_fps=1.0, decoder_width=320))
    assert isinstance(source, RtspsSource)
    assert "fps=1,scale='min(320,iw)':-2" in source.command("ffmpeg", "rtsp://127.0.0.1:5/t")


# --- with GStreamer's RTSPS server and a real ffmpeg -------------------------------------------------------------


def require_rtsps_tools() -> None:
    missing = [] if subprocess.run(["which", "ffmpeg"], capture_output=True).returncode == 0 else ["ffmpeg"]
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"], capture_output=True
    ) if os.path.exists(SYSTEM_PYTHON) else None  # fmt: skip
    if probe is None or probe.returncode != 0:
        missing.append("python3-gi + gir1.2-gst-rtsp-server-1.0")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{', '.join(missing)} missing; .ci/run should have installed them")
        pytest.skip(f"{', '.join(missing)} not installed")


def make_certificate(folder: Path, name: str) -> tuple[Path, Path, str]:
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", f"/CN={SERIAL}"],
        check=True, capture_output=True,
    )  # fmt: skip
    der = subprocess.run(["openssl", "x509", "-in", str(cert), "-outform", "DER"], check=True, capture_output=True)
    return cert, key, fingerprint(der.stdout)


@dataclass
class Server:
    port: int
    pid: int
    pin: str  # the fingerprint of its certificate


@asynccontextmanager
async def rtsps_server(folder: Path, *, digest: bool = True, name: str = "printer") -> AsyncIterator[Server]:
    require_rtsps_tools()
    cert, key, pin = make_certificate(folder, name)
    command = [SYSTEM_PYTHON, str(SERVER), str(cert), str(key)] + (["--digest"] if digest else [])
    process = await trio.lowlevel.open_process(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdin is not None and process.stdout is not None
    try:
        await process.stdin.send_all(f"{CODE}\n".encode())
        line = b""
        with trio.fail_after(30):
            while b"\n" not in line:
                chunk = await process.stdout.receive_some(100)
                assert chunk, "the RTSPS server did not start"
                line += chunk
        yield Server(int(line.split()[1]), process.pid, pin)
    finally:
        os.kill(process.pid, signal.SIGCONT)  # in case a test left it stopped
        process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()


def decodes(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.size


async def first_frames(source: RtspsSource, count: int = 3) -> list[bytes]:
    frames: list[bytes] = []
    with trio.move_on_after(60), trio.CancelScope() as scope:

        def on_frame(data: bytes) -> None:
            frames.append(data)
            if len(frames) >= count:
                scope.cancel()

        await source.stream(on_frame)
    return frames


def children(pid: int) -> list[int]:
    """Every living descendant of ``pid``."""
    found: list[int] = []
    parents = {pid}
    changed = True
    while changed:
        changed = False
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in found:
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) in parents and fields[0] != "Z":
                found.append(int(entry.name))
                parents.add(int(entry.name))
                changed = True
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def pins(tmp_path: Path) -> TrustOnFirstUse:
    return TrustOnFirstUse(PinStore(tmp_path / "tls-pins.json"), camera_pin_key("x1"), printer_id="x1")


@pytest.mark.parametrize("digest", [True, False], ids=["digest", "basic"])
async def test_frames_arrive_through_the_proxy_and_the_certificate_is_pinned(tmp_path: Path, digest: bool) -> None:
    trust = pins(tmp_path)
    async with rtsps_server(tmp_path, digest=digest) as server:
        source = RtspsSource("127.0.0.1", server.port, Secret(CODE), trust=trust, width=320)
        frames = await first_frames(source)
    assert len(frames) >= 3
    for frame in frames:
        assert is_jpeg(frame) and decodes(frame) == (320, 180)  # scaled to decoder_width
    assert trust.trusted() == server.pin  # pinned once the camera took the access code
    assert source.decoder_pid is None


async def test_wrong_code_is_refused_clearly(tmp_path: Path) -> None:
    trust = pins(tmp_path)
    async with rtsps_server(tmp_path) as server:
        source = RtspsSource("127.0.0.1", server.port, Secret("00000000"), trust=trust)
        with trio.fail_after(60), pytest.raises(CameraError, match="refused the access code") as caught:
            await source.stream(lambda data: None)
    assert "00000000" not in str(caught.value)
    assert trust.trusted() is None  # a device that refused the code is not pinned


async def test_changed_certificate_is_refused_before_the_code_goes_out(tmp_path: Path) -> None:
    trust = pins(tmp_path)
    async with rtsps_server(tmp_path, name="first") as first:
        assert len(await first_frames(RtspsSource("127.0.0.1", first.port, Secret(CODE), trust=trust), 1)) == 1
    async with rtsps_server(tmp_path, name="other") as other:
        source = RtspsSource("127.0.0.1", other.port, Secret(CODE), trust=trust)
        with trio.fail_after(30), pytest.raises(CameraError, match="certificate changed") as caught:
            await source.stream(lambda data: None)
        assert caught.value.retry_s is not None and caught.value.retry_s >= 60
        assert children(os.getpid()) == [other.pid]  # no decoder was started
    assert trust.trusted() == first.pin


async def test_no_process_shows_the_access_code(tmp_path: Path) -> None:
    async with rtsps_server(tmp_path) as server, trio.open_nursery() as nursery:
        source = RtspsSource("127.0.0.1", server.port, Secret(CODE))
        got: list[bytes] = []
        nursery.start_soon(source.stream, got.append)
        await wait_for(lambda: got, 60, what="a frame")
        assert source.decoder_pid in children(os.getpid())
        for pid in children(os.getpid()):
            for part in ("cmdline", "environ"):
                data = Path(f"/proc/{pid}/{part}").read_bytes()
                assert CODE.encode() not in data, f"{part} of {pid}"
        pids = ",".join(str(pid) for pid in children(os.getpid()))
        ps = subprocess.run(["ps", "-o", "args=", "-p", pids], capture_output=True, text=True).stdout
        assert "ffmpeg" in ps and CODE not in ps  # what another local user sees
        assert "127.0.0.1" in Path(f"/proc/{source.decoder_pid}/cmdline").read_text()
        nursery.cancel_scope.cancel()


async def test_cancelled_stream_leaves_no_decoder(tmp_path: Path) -> None:
    async with rtsps_server(tmp_path) as server:
        source = RtspsSource("127.0.0.1", server.port, Secret(CODE))
        pids: list[int] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(source.stream, lambda data: pids.append(source.decoder_pid or 0))
            await wait_for(lambda: pids, 60, what="a frame")
            nursery.cancel_scope.cancel()
        assert not alive(pids[0])
        assert children(os.getpid()) == [server.pid]


async def test_killed_service_leaves_no_decoder(tmp_path: Path) -> None:
    """SIGKILL gives the service no chance to clean up: the decoder ends on its broken input and output."""
    script = (
        "import sys, trio\n"
        "from bambupi.camera.rtsps import RtspsSource\n"
        "from bambupi.secret import Secret\n"
        "source = RtspsSource('127.0.0.1', int(sys.argv[1]), Secret(sys.stdin.readline().strip()))\n"
        "def on_frame(data):\n"
        "    print(source.decoder_pid, flush=True)\n"
        "trio.run(source.stream, on_frame)\n"
    )
    async with rtsps_server(tmp_path) as server:
        service = await trio.lowlevel.open_process(
            [sys.executable, "-c", script, str(server.port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            cwd=Path(__file__).parent.parent,
        )  # fmt: skip
        assert service.stdin is not None and service.stdout is not None
        await service.stdin.send_all(f"{CODE}\n".encode())
        line = b""
        with trio.fail_after(60):
            while b"\n" not in line:
                line += await service.stdout.receive_some(100)
        decoder = int(line.split()[0])
        assert alive(decoder)
        service.kill()
        await service.wait()
        await wait_for(lambda: not alive(decoder), 60, what="the orphaned decoder to end")


async def test_stalled_camera_restarts_the_decoder(tmp_path: Path) -> None:
    config = PrinterConfig(
        id="x1", name="X1", model="X1C", host="127.0.0.1", serial=SERIAL, access_code=Secret(CODE), camera_port=1
    )
    hub = StateHub([config])
    async with rtsps_server(tmp_path) as server, trio.open_nursery() as nursery:
        sources: list[RtspsSource] = []

        def source_for(printer: PrinterConfig) -> RtspsSource:
            source = RtspsSource("127.0.0.1", server.port, Secret(CODE), stall_s=3, connect_timeout_s=5)
            sources.append(source)
            return source

        frames = await nursery.start(FrameHub(hub, [config], source_for=source_for, backoff_min_s=0.2).run)
        with frames.viewer("x1"):
            await frames.next_frame("x1", after=0)
            first_decoder = sources[0].decoder_pid
            assert first_decoder is not None
            os.kill(server.pid, signal.SIGSTOP)  # the camera goes silent, its connection stays open
            await wait_for(
                lambda: "no picture" in (hub.printer("x1")["camera"]["reason"] or ""), 60, what="the stall noticed"
            )
            assert not alive(first_decoder)
            os.kill(server.pid, signal.SIGCONT)
            seq = frames.latest("x1").seq  # type: ignore[union-attr]
            await frames.next_frame("x1", after=seq)
            assert frames.upstream_connections("x1") >= 2
            assert hub.printer("x1")["camera"]["status"] == "live"
        nursery.cancel_scope.cancel()


async def test_liveview_off_then_on_resumes(tmp_path: Path) -> None:
    config = PrinterConfig(
        id="x1", name="X1", model="X1C", host="127.0.0.1", serial=SERIAL, access_code=Secret(CODE), camera_port=1
    )
    hub = StateHub([config])

    def ipcam(url: str) -> str:
        return json.dumps({"print": {"command": "push_status", "ipcam": {"rtsp_url": url}}})

    async with rtsps_server(tmp_path) as server, trio.open_nursery() as nursery:
        frames = await nursery.start(
            FrameHub(hub, [config], source_for=lambda p: RtspsSource("127.0.0.1", server.port, Secret(CODE))).run
        )
        hub.apply_message("x1", ipcam("disable"))
        await wait_for(lambda: hub.printer("x1")["camera"]["status"] == "off")
        with frames.viewer("x1"):
            assert "LAN Only Liveview" in (hub.printer("x1")["camera"]["reason"] or "")
            assert await frames.fresh_frame("x1", max_age_s=1, timeout_s=1) is None
            assert frames.upstream_connections("x1") == 0  # a viewer, but the closed port is not knocked on
            hub.apply_message("x1", ipcam("rtsps://127.0.0.1/streaming/live/1"))
            frame = await frames.next_frame("x1", after=0)
            assert is_jpeg(frame.data)
        nursery.cancel_scope.cancel()


async def test_closed_port_says_turn_on_liveview_and_waits_long() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now: connection refused, like port 322 with Liveview off
    source = RtspsSource("127.0.0.1", port, Secret(CODE))
    with trio.fail_after(30), pytest.raises(CameraError, match="LAN Only Liveview") as caught:
        await source.stream(lambda data: None)
    assert caught.value.retry_s is not None and caught.value.retry_s >= 60


async def test_ffmpeg_missing_is_a_clear_camera_error() -> None:
    source = RtspsSource("127.0.0.1", 322, Secret(CODE), ffmpeg="ffmpeg-not-installed-here")
    with pytest.raises(CameraError, match="ffmpeg is not installed"):
        await source.stream(lambda data: None)


# --- the simulator's RTSPS camera (bambupi sim --rtsps-port, bambupi demo --model X1C) ---------------------------


def test_annex_b_splits_into_nal_units_and_fu_a_reassembles() -> None:
    big = bytes([0x65]) + bytes(range(256)) * 20  # an IDR slice of 5 KB
    stream = b"\x00\x00\x00\x01\x67\x42" + b"\x00\x00\x01\x68\xce" + b"\x00\x00\x00\x01" + big + b"\x00\x00\x01\x41"
    units, rest = split_nal_units(stream)
    assert units == [b"\x67\x42", b"\x68\xce", big] and rest == b"\x00\x00\x01\x41"
    packets = rtp_packets(big, seq=65535, timestamp=90_000, ssrc=7, last=True)
    assert len(packets) == 4 and all(len(p) <= 12 + 2 + MAX_PAYLOAD for p in packets)
    assert [int.from_bytes(p[2:4], "big") for p in packets] == [65535, 0, 1, 2]  # wraps
    assert [p[1] >> 7 for p in packets] == [0, 0, 0, 1]  # the marker on the picture's last packet
    fu = [p[12:] for p in packets]
    assert all(f[0] & 0x1F == 28 for f in fu) and fu[0][1] & 0x80 and fu[-1][1] & 0x40
    assert bytes([(fu[0][0] & 0xE0) | (fu[0][1] & 0x1F)]) + b"".join(f[2:] for f in fu) == big
    small = rtp_packets(b"\x67\x42", seq=5, timestamp=0, ssrc=7, last=False)
    assert small == [bytes([0x80, 96, 0, 5, 0, 0, 0, 0, 0, 0, 0, 7, 0x67, 0x42])]


def test_simulated_camera_checks_digest_like_live555() -> None:
    nonce = "abc"
    params = {"realm": "LIVE555 Streaming Media", "nonce": nonce}
    right = digest_authorization(params, "DESCRIBE", "rtsps://h:322/streaming/live/1", CODE)
    assert check_digest(right, "DESCRIBE", CODE, nonce)
    assert not check_digest(right, "PLAY", CODE, nonce)  # signed for another method
    assert not check_digest(right, "DESCRIBE", "00000000", nonce)
    assert not check_digest(right, "DESCRIBE", CODE, "other-nonce")
    assert not check_digest("Basic YmJscDoxMjM0NTY3OA==", "DESCRIBE", CODE, nonce)  # Basic is ignored
    assert not check_digest(None, "DESCRIBE", CODE, nonce)


async def test_simulated_x1c_camera_through_the_proxy() -> None:
    if not encoder_available():
        pytest.skip("ffmpeg not installed")
    sim = Simulator("X1C", SERIAL, CODE, rtsps_port=0)
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.run)
        assert sim.rtsps is not None
        assert sim.printer.state.liveview_url == "rtsps://127.0.0.1/streaming/live/1"
        frames = await first_frames(RtspsSource("127.0.0.1", sim.rtsps_port, Secret(CODE)), 2)
        assert len(frames) == 2 and all(decodes(frame) == (1280, 720) for frame in frames)
        assert sim.rtsps.logins >= 3  # DESCRIBE, SETUP, PLAY each logged in
        with trio.fail_after(30), pytest.raises(CameraError, match="refused the access code"):
            await RtspsSource("127.0.0.1", sim.rtsps_port, Secret("00000000")).stream(lambda data: None)
        assert sim.rtsps.refused >= 1
        nursery.cancel_scope.cancel()


async def test_simulated_x1c_reports_liveview_off_without_its_camera() -> None:
    sim = Simulator("X1C", SERIAL, CODE)
    assert sim.rtsps is None
    report = json.loads(json.dumps(render_report(sim.printer.state)))
    assert report["ipcam"]["rtsp_url"] == "disable"
    sim.printer.state.liveview_url = "rtsps://127.0.0.1/streaming/live/1"
    assert render_report(sim.printer.state)["ipcam"]["rtsp_url"].startswith("rtsps://")  # type: ignore[index]


@pytest.mark.timeout(240)
def test_demo_with_an_x1c_shows_its_camera_and_leaves_no_decoder(tmp_path: Path) -> None:
    """`bambupi demo --model X1C` as a person runs it: the camera's snapshot comes through the RTSPS path; after
    Ctrl-C no ffmpeg is left."""
    require_rtsps_tools()
    log = tmp_path / "demo.log"
    with log.open("w") as stderr:
        demo = subprocess.Popen(
            [sys.executable, "-m", "bambupi", "demo", "--model", "X1C", "--port", "0", "--host", "127.0.0.1"],
            stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=Path(__file__).parent.parent,
        )  # fmt: skip
    try:
        assert demo.stdout is not None
        url = None
        while url is None:
            line = demo.stdout.readline()
            assert line, f"the demo ended early:\n{log.read_text()}"
            if match := re.search(r"open (http://\S+)", line):
                url = match.group(1)
        with urllib.request.urlopen(url + "api/printers/demo/snapshot.jpg", timeout=90) as reply:
            image = reply.read()
        assert reply.status == 200 and decodes(image) == (1280, 720)
        printer = json.load(urllib.request.urlopen(url + "api/printers/demo", timeout=30))
        assert printer["camera"]["kind"] == "rtsps" and printer["camera"]["status"] in ("live", "idle")
        with urllib.request.urlopen(url + "api/printers/demo/camera", timeout=90) as viewer:
            assert b"image/jpeg" in viewer.read(200)  # a viewer holds the decoder open
            decoders = [pid for pid in children(demo.pid) if "ffmpeg" in Path(f"/proc/{pid}/cmdline").read_text()]
            assert decoders
            for pid in children(demo.pid):
                assert CODE not in Path(f"/proc/{pid}/cmdline").read_text()
            demo.send_signal(signal.SIGINT)
            assert demo.wait(60) == 0
        assert not any(alive(pid) for pid in decoders)
        assert "Traceback" not in log.read_text()
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", "not RTSP"),
        (b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nX: " + b"a" * 20_000, "16 KiB"),
        (b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 999999\r\n\r\n", "64 KiB"),
        (b"RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Negotiate abc\r\n\r\n", "does not speak"),
        (b"RTSP/1.0 404 Stream Not Found\r\nCSeq: 1\r\n\r\n", "answered 404 Stream Not Found"),
    ],
    ids=["http", "huge-head", "huge-body", "unknown-login", "not-found"],
)
async def test_a_camera_answering_nonsense_is_a_clear_error(answer: bytes, reason: str) -> None:
    """A device on port 322 that answers wrongly: a clear camera error, no crash, no decoder left."""
    require_rtsps_tools()

    async def handler(tcp: trio.SocketStream) -> None:
        stream = trio.SSLStream(tcp, server_ssl_context(), server_side=True)
        try:
            await stream.receive_some(4096)  # the decoder's first request, through the proxy
            await stream.send_all(answer)
            await trio.sleep_forever()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        source = RtspsSource("127.0.0.1", port, Secret(CODE), stall_s=10)
        with trio.fail_after(60), pytest.raises(CameraError, match=reason) as caught:
            await source.stream(lambda data: None)
        assert CODE not in str(caught.value)
        assert not [pid for pid in children(os.getpid()) if b"ffmpeg" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        nursery.cancel_scope.cancel()


async def test_p2s_frozen_rtp_timestamps_still_give_moving_pictures() -> None:
    """P2S firmware 01.02.00.00 stamps every picture alike; without stamping by arrival, ffmpeg's rate filter
    keeps the first picture and drops the rest."""
    if not encoder_available():
        pytest.skip("ffmpeg not installed")
    sim = Simulator("P2S", SERIAL, CODE, rtsps_port=0, camera_fps=4)
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.run)
        frames = await first_frames(RtspsSource("127.0.0.1", sim.rtsps_port, Secret(CODE), fps=2), 4)
        assert len(frames) == 4 and len(set(frames)) == 4  # four different pictures (the clock and counter move)
        nursery.cancel_scope.cancel()


async def test_a_stream_cut_mid_way_reconnects(tmp_path: Path) -> None:
    """A camera that cuts its stream (the P2S does, an X1C about every minute): the attempt ends with a reason and
    the relay reconnects at once (frames had come, so no backoff)."""
    config = PrinterConfig(
        id="x1", name="X1", model="X1C", host="127.0.0.1", serial=SERIAL, access_code=Secret(CODE), camera_port=1
    )
    hub = StateHub([config])
    cut = trio.Event()

    async with rtsps_server(tmp_path) as server, trio.open_nursery() as nursery:

        async def forward(tcp: trio.SocketStream) -> None:  # a TCP hop that the test can cut, TLS passing through
            upstream = await trio.open_tcp_stream("127.0.0.1", server.port)
            async with tcp, upstream, trio.open_nursery() as pipes:

                async def pipe(a: trio.SocketStream, b: trio.SocketStream) -> None:
                    while data := await a.receive_some(65536):
                        await b.send_all(data)

                pipes.start_soon(pipe, tcp, upstream)
                pipes.start_soon(pipe, upstream, tcp)
                await cut.wait()
                pipes.cancel_scope.cancel()

        listeners = await nursery.start(functools.partial(trio.serve_tcp, forward, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        frames = await nursery.start(
            FrameHub(hub, [config], source_for=lambda p: RtspsSource("127.0.0.1", port, Secret(CODE))).run
        )
        with frames.viewer("x1"):
            first = await frames.next_frame("x1", after=0)
            cut.set()  # every connection through the hop closes
            await wait_for(lambda: frames.upstream_connections("x1") >= 2, 60, what="a reconnect")
            cut = trio.Event()
            later = await frames.next_frame("x1", after=first.seq)
            assert is_jpeg(later.data) and frames.upstream_connections("x1") >= 2
        nursery.cancel_scope.cancel()
