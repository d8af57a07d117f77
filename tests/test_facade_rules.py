"""The facade's pure rules (what is answered, passed on or refused), its RTSPS frame scaling, its camera feed and its
certificate, each without the whole service."""

from __future__ import annotations

import io
import json
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from PIL import Image

from bambupi.camera.frames import Frame
from bambupi.config import FacadeConfig
from bambupi.facade.camera import CameraFeed, scale_jpeg
from bambupi.facade.certificate import CERT_NAME, KEY_NAME, CertificateError, ensure_certificate, server_context
from bambupi.facade.component import FacadeComponent
from bambupi.facade.requests import CONTROL_OFF, MAX_REQUEST_BYTES, NOT_ALLOWED, Request, answer, decide
from bambupi.mqtt_server import PacketReader, PacketType, encode_packet, encode_publish, parse_publish
from bambupi.printer.commands import CommandError, Outcome
from bambupi.printer.tls_pins import printer_tls_context
from bambupi.secret import Secret
from bambupi.state_hub import CameraStatus, StateHub
from tests.support import printer_config, wait_for


def one(payload: object, *, allow: bool = False) -> Request:
    (request,) = decide(json.dumps(payload).encode(), allow_control=allow)
    return request


# --- requests ---------------------------------------------------------------------------------------------------


def test_pushall_and_get_version_are_answered_by_the_box() -> None:
    assert one({"pushing": {"command": "pushall", "sequence_id": "1"}}).kind == "pushall"
    assert one({"info": {"command": "get_version", "sequence_id": 2}}).sequence_id == "2"
    # bambulabs_api asks three things in one message: each is decided.
    kinds = [r.kind for r in decide(json.dumps({
        "pushing": {"command": "pushall"}, "info": {"command": "get_version"}, "upgrade": {"command": "get_history"},
    }).encode(), allow_control=False)]
    assert kinds == ["pushall", "get_version", "refuse"]


@pytest.mark.parametrize(("payload", "name", "params"), [
    ({"print": {"command": "pause", "param": ""}}, "pause", {}),
    ({"print": {"command": "resume"}}, "resume", {}),
    ({"print": {"command": "stop", "param": ""}}, "stop", {}),
    ({"print": {"command": "print_speed", "param": "3"}}, "speed", {"level": 3}),
    ({"system": {"command": "ledctrl", "led_node": "chamber_light", "led_mode": "on"}}, "light_on", {}),
    ({"system": {"command": "ledctrl", "led_node": "chamber_light2", "led_mode": "off"}}, "light_off", {}),
])
def test_controls_pass_only_when_the_owner_allowed_them(payload: dict[str, object], name: str,
                                                        params: dict[str, object]) -> None:
    allowed = one(payload, allow=True)
    assert (allowed.kind, allowed.name, allowed.params) == ("control", name, params)
    refused = one(payload, allow=False)
    assert (refused.kind, refused.reason) == ("refuse", CONTROL_OFF)


@pytest.mark.parametrize("payload", [
    {"print": {"command": "gcode_line", "param": "G28\n"}},
    {"print": {"command": "project_file", "url": "ftp://x.3mf"}},
    {"print": {"command": "print_speed", "param": "9"}},
    {"print": {"command": "print_speed", "param": "fast"}},
    {"system": {"command": "ledctrl", "led_node": "work_light", "led_mode": "on"}},
    {"system": {"command": "ledctrl", "led_node": "chamber_light", "led_mode": "flashing"}},
    {"print": {"command": "ams_change_filament", "target": 1}},
    {"upgrade": {"command": "upgrade_confirm"}},
    {"camera": {"command": "ipcam_record_set", "control": "enable"}},
])
def test_everything_else_is_refused_even_with_control_allowed(payload: dict[str, object]) -> None:
    request = one(payload, allow=True)
    assert (request.kind, request.reason) == ("refuse", NOT_ALLOWED)


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]", b'{"print": 5}', b'{"print": {"param": ""}}',
                                     b"{" * 100_000, b'{"a": "' + b"x" * MAX_REQUEST_BYTES + b'"}'])
def test_what_no_printer_would_answer_is_ignored(payload: bytes) -> None:
    (request,) = decide(payload, allow_control=True)
    assert request.kind == "ignore"


def test_a_refusal_looks_like_the_printers() -> None:
    request = one({"print": {"command": "pause", "sequence_id": "4242", "param": ""}})
    assert answer(request, result="failed", reason=request.reason) == {
        "print": {"command": "pause", "sequence_id": "4242", "result": "failed", "reason": CONTROL_OFF, "param": ""}
    }
    odd = one({"print": {"command": "pause", "sequence_id": {"no": 1}}})
    assert odd.sequence_id == "0"  # an id that is not a string or number is not echoed


# --- frames for RTSPS cameras -----------------------------------------------------------------------------------


def jpeg(size: tuple[int, int], **options: object) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(out, "JPEG", **options)
    return out.getvalue()


def test_a_big_frame_is_scaled_to_fit_and_a_small_jfif_passes() -> None:
    scaled = scale_jpeg(jpeg((1920, 1080)), 1280, 720)
    assert scaled is not None and scaled[:4] == b"\xff\xd8\xff\xe0"  # JFIF: what bambu-connect and ESP32s look for
    assert Image.open(io.BytesIO(scaled)).size == (1280, 720)
    assert Image.open(io.BytesIO(scale_jpeg(jpeg((1920, 1080)), 320, 320) or b"")).size == (320, 180)
    small = jpeg((640, 360))
    assert scale_jpeg(small, 1280, 720) is small
    progressive = scale_jpeg(jpeg((640, 360), progressive=True), 1280, 720)
    assert progressive is not None and not Image.open(io.BytesIO(progressive)).info.get("progressive")
    assert scale_jpeg(b"\xff\xd8 not a picture \xff\xd9", 1280, 720) is None


class FakeFrames:
    """A FrameHub's interface, fed by the test: the feed's only contact with the camera."""

    def __init__(self) -> None:
        self.viewers = 0
        self.frame: Frame | None = None
        self.seq = 0
        self._lot = trio.lowlevel.ParkingLot()

    def has(self, printer_id: str) -> bool:
        return True

    @contextmanager
    def viewer(self, printer_id: str) -> Iterator[None]:
        self.viewers += 1
        try:
            yield
        finally:
            self.viewers -= 1

    async def next_frame(self, printer_id: str, after: int) -> Frame:
        while self.frame is None or self.frame.seq <= after:
            await self._lot.park()
        return self.frame

    def live_after(self, printer_id: str) -> int:
        return self.seq

    def status(self, printer_id: str) -> CameraStatus:
        return CameraStatus(kind="rtsps", status="live", reason=None)

    def push(self, data: bytes) -> None:
        self.seq += 1
        self.frame = Frame.make(data, self.seq, 0.0, trio.current_time())
        self._lot.unpark_all()


async def test_the_feed_holds_the_camera_only_while_apps_watch_and_scales_once_for_all() -> None:
    frames = FakeFrames()
    feed = CameraFeed(frames, "x1", rescale=True, fps=50.0, size=(1280, 720))
    big = jpeg((1920, 1080))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed.run)
        await trio.sleep(0.05)
        assert frames.viewers == 0  # nobody watches: the printer's camera is not held open
        got: list[list[bytes]] = [[], []]

        async def app(into: list[bytes]) -> None:
            with feed.watching():
                seq = 0
                while len(into) < 2:
                    seq, data = await feed.next(seq)
                    into.append(data)

        async with trio.open_nursery() as apps:
            apps.start_soon(app, got[0])
            apps.start_soon(app, got[1])
            await wait_for(lambda: frames.viewers == 1, what="the feed holding the camera")
            while not all(len(g) == 2 for g in got):
                frames.push(big)
                await trio.sleep(0.05)
        assert got[0] == got[1]  # the same scaled bytes for both: made once
        assert all(Image.open(io.BytesIO(data)).size == (1280, 720) for data in got[0])
        await wait_for(lambda: frames.viewers == 0, what="the feed letting go of the camera")
        nursery.cancel_scope.cancel()


# --- the certificate --------------------------------------------------------------------------------------------


async def test_the_certificate_is_made_once_kept_and_its_key_private(tmp_path: Path) -> None:
    cert, key = await ensure_certificate(tmp_path / "data")
    assert (cert.name, key.name) == (CERT_NAME, KEY_NAME)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    first = cert.read_bytes()
    again, _ = await ensure_certificate(tmp_path / "data")
    assert again.read_bytes() == first  # a restart keeps it: an app that pinned it goes on working
    server_context(cert, key)
    key.write_text("not a key")  # a broken pair is made again, not a facade that never starts
    cert, key = await ensure_certificate(tmp_path / "data")
    assert cert.read_bytes() != first
    server_context(cert, key)


async def test_without_openssl_the_reason_is_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CertificateError, match="openssl"):
        await ensure_certificate(tmp_path / "data")


# --- the component alone: commands that fail ------------------------------------------------------------------------


def _string(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


class FailingControls:
    """The box's command path, failing the way it can: a refusal in words, or a bug."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    async def send(self, printer_id: str, name: str, params: Mapping[str, Any], *, origin: str = "the page"
                   ) -> Outcome:
        self.sent.append((printer_id, name, origin))
        if name == "pause":
            raise CommandError("garage is not connected; try again when it is online", 503)
        raise RuntimeError("a bug")


async def test_a_command_the_box_cannot_send_is_answered_failed_with_the_reason(tmp_path: Path) -> None:
    printers = [printer_config("garage", serial="01P00A000000777")]
    hub = StateHub(printers)
    controls = FailingControls()
    facade = FacadeComponent(
        hub, FacadeConfig(enabled=True, host="127.0.0.1", mqtt_port=0, camera_port=0, access_code=Secret("fac4de01"),
                          allow_control=True),
        printers, controls=controls, links={}, frames=FakeFrames(), folder=tmp_path,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(facade.run)
        assert facade.mqtt_port is not None
        stream = trio.SSLStream(await trio.open_tcp_stream("127.0.0.1", facade.mqtt_port), printer_tls_context(),
                                server_hostname=None)
        connect = _string("MQTT") + bytes([4, 0xC2]) + (60).to_bytes(2, "big") + _string("app") + _string("bblp")
        await stream.send_all(encode_packet(PacketType.CONNECT, connect + _string("fac4de01")))
        topic = "device/01P00A000000777/report"
        await stream.send_all(encode_packet(PacketType.SUBSCRIBE, b"\x00\x01" + _string(topic) + b"\x00", flags=2))
        reader = PacketReader()
        replies: list[dict[str, Any]] = []
        for command, sequence in (("pause", "1"), ("resume", "2")):
            body = json.dumps({"print": {"command": command, "sequence_id": sequence, "param": ""}}).encode()
            await stream.send_all(encode_publish("device/01P00A000000777/request", body))
        with trio.fail_after(30):
            while len(replies) < 2:
                reader.feed(await stream.receive_some(65536))
                while (packet := reader.next_packet()) is not None:
                    if packet.type == PacketType.PUBLISH:
                        replies.append(json.loads(parse_publish(packet.flags, packet.body).payload))
        assert replies[0]["print"] == {"command": "pause", "sequence_id": "1", "result": "failed", "param": "",
                                       "reason": "garage is not connected; try again when it is online"}
        assert replies[1]["print"]["result"] == "failed" and "the box failed" in replies[1]["print"]["reason"]
        assert controls.sent == [("garage", "pause", "the facade"), ("garage", "resume", "the facade")]
        assert facade.mqtt_port is not None  # the facade goes on
        await trio.aclose_forcefully(stream)
        nursery.cancel_scope.cancel()


def test_the_facades_camera_ports_for_several_printers_stay_clear_of_mqtt_and_in_range() -> None:
    from bambupi.config.validators import facade_printer_problems

    printers = [{"id": "a", "access_code": "11111111"}, {"id": "b", "access_code": "22222222"},
                {"id": "c", "access_code": "33333333"}]
    assert facade_printer_problems({"mqtt_port": 8883, "camera_port": 6000}, printers) == []
    assert facade_printer_problems({"mqtt_port": 6002, "camera_port": 6000}, printers) == [
        ("camera_port", "the 3 printers' cameras take ports 6000-6002, which includes mqtt_port")]
    assert facade_printer_problems({"mqtt_port": 6002, "camera_port": 6000, "printers": ["a", "b"]}, printers) == []
    assert facade_printer_problems({"camera_port": 65534}, printers) == [
        ("camera_port", "the 3 printers' cameras need ports 65534-65536: too high")]
    assert facade_printer_problems({"camera_port": 0, "mqtt_port": 0}, printers) == []  # any free ports
