"""The simulated printer: its MQTT/TLS server, its reports and commands, and its scenarios.

Real TLS sockets on 127.0.0.1 port 0. MQTT packets sent by the raw client are encoded by hand here (not with the
simulator's own codec), so a codec bug cannot hide behind itself; paho-mqtt is the independent real client.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import queue
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import trio
import trustme
from hypothesis import given
from hypothesis import strategies as st

from bambupi.sim import Simulator
from bambupi.sim.broker import (
    MAX_PACKET_SIZE,
    MalformedPacket,
    PacketReader,
    UnacceptableProtocol,
    decode_fixed_header,
    encode_remaining_length,
    parse_connect,
    parse_publish,
    parse_subscribe,
    parse_unsubscribe,
)
from bambupi.sim.printer import (
    CANCELLED_ERROR,
    DEFAULT_FAILURE,
    SIGNED_COMMANDS_BIT,
    STOP_CANCEL_DELAY_S,
    VERIFY_FAILED_HMS,
    VERIFY_FAILED_REASON,
    report_delta,
)
from bambupi.sim.scenarios import BETWEEN_PRINTS_S, JOBS, SILENT_QUIET_S, SILENT_TALK_S

SERIAL = "01P00A000000042"
ACCESS = "31415926"
REPORT = f"device/{SERIAL}/report"
REQUEST = f"device/{SERIAL}/request"

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK = 1, 2, 3, 4, 8, 9
UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP = 10, 11, 12, 13


# --- hand-made MQTT 3.1.1 packets ----------------------------------------------------------------------------------


def _length(n: int) -> bytes:
    out = b""
    while True:
        n, digit = divmod(n, 128)
        out += bytes([digit | (0x80 if n else 0)])
        if not n:
            return out


def _s(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return len(raw).to_bytes(2, "big") + raw


def packet(first_byte: int, body: bytes = b"") -> bytes:
    return bytes([first_byte]) + _length(len(body)) + body


def connect_packet(
    client_id: str,
    username: str | None = "bblp",
    password: str | None = ACCESS,
    keepalive: int = 60,
    level: int = 4,
) -> bytes:
    flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    body = _s("MQTT") + bytes([level, flags]) + keepalive.to_bytes(2, "big") + _s(client_id)
    if username is not None:
        body += _s(username)
    if password is not None:
        body += _s(password)
    return packet(0x10, body)


def subscribe_packet(packet_id: int, *filters: str, qos: int = 1) -> bytes:
    return packet(0x82, packet_id.to_bytes(2, "big") + b"".join(_s(f) + bytes([qos]) for f in filters))


def publish_packet(topic: str, payload: dict[str, Any] | bytes, qos: int = 0, packet_id: int = 7) -> bytes:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return packet(0x30 | qos << 1, _s(topic) + (packet_id.to_bytes(2, "big") if qos else b"") + data)


PINGREQ_PACKET = packet(0xC0)


def split_packets(data: bytes) -> list[tuple[int, bytes]]:
    """(type, body) of every complete packet in ``data`` (decoded here, independently of the simulator)."""
    out = []
    while (found := _complete_prefix(data)) is not None:
        first, end = found
        out.append(first)
        data = data[end:]
    return out


def publish_json(body: bytes) -> dict[str, Any]:
    topic_length = int.from_bytes(body[:2], "big")
    result: dict[str, Any] = json.loads(body[2 + topic_length :])
    return result


def client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class RawClient:
    """A bare MQTT client over trio TLS: sends what it is told, returns what arrives, packet by packet."""

    def __init__(self, stream: trio.SSLStream[trio.SocketStream]) -> None:
        self.stream = stream
        self.buffer = b""

    @classmethod
    async def open(cls, port: int, context: ssl.SSLContext | None = None) -> RawClient:
        stream = await trio.open_ssl_over_tcp_stream("127.0.0.1", port, ssl_context=context or client_context())
        await stream.do_handshake()
        return cls(stream)

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def read_packet(self) -> tuple[int, bytes] | None:
        """The next packet, or None once the server has closed the connection."""
        while True:
            found = _complete_prefix(self.buffer)
            if found is not None:
                first, end = found
                self.buffer = self.buffer[end:]
                return first
            try:
                data = await self.stream.receive_some(65536)
            except (trio.BrokenResourceError, ssl.SSLError):
                return None
            if not data:
                return None
            self.buffer += data

    async def next_control(self) -> tuple[int, bytes] | None:
        """The next packet that is not a PUBLISH (reports keep flowing meanwhile)."""
        while (got := await self.read_packet()) is not None and got[0] == PUBLISH:
            pass
        return got

    async def login(self, client_id: str = "raw", **kwargs: Any) -> int:
        await self.send(connect_packet(client_id, **kwargs))
        reply = await self.read_packet()
        assert reply is not None and reply[0] == CONNACK
        return reply[1][1]

    async def subscribe(self, *filters: str, packet_id: int = 1) -> list[int]:
        await self.send(subscribe_packet(packet_id, *filters))
        reply = await self.read_packet()
        assert reply is not None and reply[0] == SUBACK
        assert int.from_bytes(reply[1][:2], "big") == packet_id
        return list(reply[1][2:])

    async def request(self, payload: dict[str, Any]) -> None:
        await self.send(publish_packet(REQUEST, payload))

    async def next_message(self, key: str = "print") -> dict[str, Any]:
        """The next PUBLISH whose JSON has ``key`` at the root, as that inner object."""
        while True:
            got = await self.read_packet()
            assert got is not None, "connection closed while waiting for a message"
            if got[0] == PUBLISH:
                message = publish_json(got[1])
                if key in message:
                    inner: dict[str, Any] = message[key]
                    return inner

    async def next_reply(self, key: str = "print") -> dict[str, Any]:
        """The next command reply (not a push_status report) under ``key``."""
        while True:
            message = await self.next_message(key)
            if message.get("command") != "push_status":
                return message

    async def next_report(self, predicate: Callable[[dict[str, Any]], bool] = lambda r: True) -> dict[str, Any]:
        while True:
            message = await self.next_message()
            if message.get("command") == "push_status" and predicate(message):
                return message

    async def pushall(self) -> dict[str, Any]:
        await self.request({"pushing": {"sequence_id": "1", "command": "pushall", "version": 1, "push_target": 1}})
        return await self.next_report(lambda r: r["msg"] == 0)

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)


def _complete_prefix(buffer: bytes) -> tuple[tuple[int, bytes], int] | None:
    length, shift, pos = 0, 0, 1
    while True:
        if pos >= len(buffer):
            return None
        byte = buffer[pos]
        pos += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    if len(buffer) < pos + length:
        return None
    return (buffer[0] >> 4, buffer[pos : pos + length]), pos + length


async def start_sim(nursery: trio.Nursery, model: str = "P1S", **kwargs: Any) -> Simulator:
    kwargs.setdefault("scenario", "idle")
    sim = Simulator(model, SERIAL, ACCESS, **kwargs)
    started: Simulator = await nursery.start(sim.run)
    return started


async def logged_in(sim: Simulator, client_id: str = "raw", **kwargs: Any) -> RawClient:
    """A subscribed client; without keepalive by default, since many tests skip minutes of trio time."""
    kwargs.setdefault("keepalive", 0)
    client = await RawClient.open(sim.mqtt_port)
    assert await client.login(client_id, **kwargs) == 0
    assert await client.subscribe(REPORT) == [1]
    return client


# --- codec (pure) -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16_383, b"\xff\x7f"), (16_384, b"\x80\x80\x01"),
     (2_097_151, b"\xff\xff\x7f"), (2_097_152, b"\x80\x80\x80\x01"), (268_435_455, b"\xff\xff\xff\x7f")],
)
def test_remaining_length_matches_the_spec_examples(value: int, encoded: bytes) -> None:
    assert encode_remaining_length(value) == encoded
    assert decode_fixed_header(b"\x30" + encoded, max_size=268_435_455) == (1 + len(encoded), value)


def test_remaining_length_limits() -> None:
    with pytest.raises(MalformedPacket):
        decode_fixed_header(b"\x30\xff\xff\xff\xff\x01")  # five length bytes
    with pytest.raises(MalformedPacket):
        decode_fixed_header(b"\x30" + encode_remaining_length(MAX_PACKET_SIZE + 1))
    assert decode_fixed_header(b"\x30\xff") is None  # incomplete, not wrong


def test_packet_reader_splits_a_stream_fed_in_odd_pieces() -> None:
    stream = publish_packet("a/b", b"one") + PINGREQ_PACKET + publish_packet("a/b", b"x" * 300, qos=1, packet_id=9)
    reader = PacketReader()
    got = []
    for index in range(0, len(stream), 7):
        reader.feed(stream[index : index + 7])
        while (raw := reader.next_packet()) is not None:
            got.append(raw)
    assert [p.type for p in got] == [PUBLISH, PINGREQ, PUBLISH]
    last = parse_publish(got[2].flags, got[2].body)
    assert (last.topic, last.qos, last.packet_id, last.payload) == ("a/b", 1, 9, b"x" * 300)


def test_parse_connect_reads_credentials_and_refuses_other_protocols() -> None:
    raw = connect_packet("box-1", keepalive=30)
    connect = parse_connect(raw[2:])
    assert (connect.client_id, connect.username, connect.password, connect.keepalive) == (
        "box-1", "bblp", ACCESS.encode(), 30)
    with pytest.raises(UnacceptableProtocol):
        parse_connect(connect_packet("x", level=5)[2:])


@given(st.integers(0, 15), st.binary(max_size=64))
def test_parsers_reject_garbage_only_with_their_own_errors(flags: int, body: bytes) -> None:
    for parse in (lambda: parse_connect(body), lambda: parse_publish(flags, body),
                  lambda: parse_subscribe(flags, body), lambda: parse_unsubscribe(flags, body)):
        with contextlib.suppress(MalformedPacket, UnacceptableProtocol):
            parse()


def test_report_delta_keeps_only_changed_fields() -> None:
    previous = {"a": 1, "b": [1, 2], "c": "x"}
    assert report_delta(previous, {"a": 1, "b": [1, 3], "c": "x", "d": 0}) == {"b": [1, 3], "d": 0}
    assert report_delta(None, {"a": 1}) == {"a": 1}


def test_unknown_model_or_scenario_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="P1S"):
        Simulator("Q9", SERIAL, ACCESS)
    with pytest.raises(ValueError, match="print"):
        Simulator("P1S", SERIAL, ACCESS, scenario="nope")


# --- login and subscriptions ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "password"),
    [("bblp", "00000000"), ("admin", ACCESS), ("bblp", None), (None, None)],
)
async def test_bad_credentials_get_connack_5_and_are_closed(
    nursery: trio.Nursery, username: str | None, password: str | None
) -> None:
    sim = await start_sim(nursery)
    client = await RawClient.open(sim.mqtt_port)
    await client.send(connect_packet("intruder", username=username, password=password))
    assert await client.read_packet() == (CONNACK, b"\x00\x05")
    assert await client.read_packet() is None
    assert sim.connected_clients == 0


async def test_other_protocol_levels_and_empty_client_ids_are_refused(nursery: trio.Nursery) -> None:
    sim = await start_sim(nursery)
    for connect, code in ((connect_packet("v5", level=5), 1), (connect_packet("v3", level=3), 1),
                          (connect_packet(""), 2)):
        client = await RawClient.open(sim.mqtt_port)
        await client.send(connect)
        assert await client.read_packet() == (CONNACK, bytes([0, code]))
        assert await client.read_packet() is None


async def test_only_the_report_topic_can_be_subscribed(nursery: trio.Nursery) -> None:
    sim = await start_sim(nursery)
    client = await RawClient.open(sim.mqtt_port)
    assert await client.login() == 0
    assert sim.connected_clients == 1
    granted = await client.subscribe("#", f"device/{SERIAL}/request", "device/+/report", REPORT)
    assert granted == [0x80, 0x80, 0x80, 1]


async def test_unsubscribed_clients_get_no_reports(nursery: trio.Nursery) -> None:
    sim = await start_sim(nursery)
    client = await logged_in(sim)
    await client.send(packet(0xA2, (5).to_bytes(2, "big") + _s(REPORT)))
    assert await client.read_packet() == (UNSUBACK, b"\x00\x05")
    sim.printer.publish_report({"print": {"command": "push_status", "mark": 1}})
    await client.send(PINGREQ_PACKET)
    assert await client.read_packet() == (PINGRESP, b"")  # the report would have come first


async def test_second_connection_with_the_same_client_id_knocks_off_the_first(nursery: trio.Nursery) -> None:
    sim = await start_sim(nursery)
    first = await logged_in(sim, "same-id")
    second = await logged_in(sim, "same-id")
    assert await first.read_packet() is None
    sim.printer.publish_report({"print": {"command": "push_status", "mark": 2}})
    assert (await second.next_message())["mark"] == 2
    assert sim.connected_clients == 1


async def test_custom_certificate_is_served(nursery: trio.Nursery, tmp_path: Path) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued.cert_chain_pems[0].write_to_path(cert)
    issued.private_key_pem.write_to_path(key)
    sim = await start_sim(nursery, cert=cert, key=key)
    verifying = ssl.create_default_context()
    ca.configure_trust(verifying)
    client = await RawClient.open(sim.mqtt_port, verifying)  # fails the handshake unless our cert is served
    assert client.stream.version() == "TLSv1.2"
    assert await client.login() == 0


# --- reports ----------------------------------------------------------------------------------------------------------


async def test_pushall_answers_a_full_p1_report(nursery: trio.Nursery, autojump_clock: Any) -> None:
    sim = await start_sim(nursery, "P1S")
    client = await logged_in(sim)
    report = await client.pushall()
    assert report["msg"] == 0
    assert report["gcode_state"] == "IDLE"
    assert report["stg_cur"] == 255
    assert report["chamber_temper"] == 5  # P1 has no chamber sensor and says 5
    assert report["wifi_signal"].endswith("dBm")
    assert isinstance(report["cooling_fan_speed"], str)
    assert int(report["fun"], 16) & SIGNED_COMMANDS_BIT == 0
    assert report["lights_report"] == [{"node": "chamber_light", "mode": "on"}]
    unit = report["ams"]["ams"][0]
    assert unit["id"] == "0" and unit["humidity_raw"] == "23"
    assert unit["tray"][0]["tray_color"] == "FFFFFFFF"
    assert unit["tray"][3] == {"id": "3"}  # an empty slot is just its id
    assert report["ams"]["tray_now"] == "255"
    assert report["vt_tray"]["id"] == "254"
    assert "rtsp_url" not in report["ipcam"]


async def test_p1_deltas_carry_only_changed_fields(nursery: trio.Nursery, autojump_clock: Any) -> None:
    sim = await start_sim(nursery, "P1S")
    client = await logged_in(sim)
    await client.pushall()
    sim.printer.set_light(on=False)
    delta = await client.next_report(lambda r: "lights_report" in r)
    assert set(delta) == {"command", "msg", "sequence_id", "lights_report"}
    assert delta["msg"] == 1
    assert delta["lights_report"] == [{"node": "chamber_light", "mode": "off"}]
    sim.printer.start_print("cube", layers=50, minutes=5)
    started = await client.next_report(lambda r: "gcode_state" in r)
    assert started["gcode_state"] == "PREPARE"
    assert started["subtask_name"] == "cube"
    assert "lights_report" not in started and "vt_tray" not in started


async def test_x1_reports_are_always_full_with_a_real_chamber(nursery: trio.Nursery, autojump_clock: Any) -> None:
    sim = await start_sim(nursery, "X1C")
    client = await logged_in(sim)
    full = await client.pushall()
    periodic = await client.next_report()  # a tick report, nobody asked
    assert set(periodic) == set(full)
    assert periodic["msg"] == 0
    assert periodic["stg_cur"] == -1
    assert 20 <= periodic["chamber_temper"] <= 30
    assert periodic["ipcam"]["rtsp_url"] == "disable"


async def test_h2d_packs_temperatures_into_device(nursery: trio.Nursery, autojump_clock: Any) -> None:
    sim = await start_sim(nursery, "H2D")
    client = await logged_in(sim)
    idle = await client.pushall()
    assert "nozzle_temper" not in idle and "bed_temper" not in idle
    extruder = idle["device"]["extruder"]
    assert extruder["state"] & 0x0F == 2 and (extruder["state"] >> 4) & 0x0F == 0
    assert [info["temp"] for info in extruder["info"]] == [25, 25]  # target 0 << 16 | 25 °C
    assert [unit["id"] for unit in idle["ams"]["ams"]] == ["0", "128"]
    sim.printer.start_print("two colours", layers=20, minutes=3)
    heating = dict(idle)  # an H2D sends deltas after the full report: merge them as a reader does
    await client.next_report(lambda r: heating.update(r) or heating["gcode_state"] == "RUNNING")
    assert heating["msg"] == 1
    nozzle = heating["device"]["extruder"]["info"][0]["temp"]
    bed = heating["device"]["bed"]["info"]["temp"]
    assert nozzle >> 16 == 220 and abs((nozzle & 0xFFFF) - 220) <= 3
    assert bed >> 16 == 55 and abs((bed & 0xFFFF) - 55) <= 3
    assert heating["device"]["ctc"]["info"]["temp"] >> 16 == 0


# --- commands ---------------------------------------------------------------------------------------------------------


async def running(sim: Simulator) -> None:
    sim.printer.start_print("Benchy", layers=100, minutes=10)
    await sim.printer.wait_until(lambda p: p.gcode_state == "RUNNING")


async def test_pause_and_resume_commands(nursery: trio.Nursery, autojump_clock: Any) -> None:
    sim = await start_sim(nursery)
    client = await logged_in(sim)
    await running(sim)
    await client.send(publish_packet(REQUEST, {"print": {"sequence_id": "4242", "command": "pause", "param": ""}},
                                     qos=1, packet_id=77))
    assert await client.next_control() == (PUBACK, (77).to_bytes(2, "big"))
    reply = await client.next_reply()
    assert (reply["command"], reply["sequence_id"], reply["result"]) == ("pause", "4242", "success")
    report = await client.next_report(lambda r: "gcode_state" in r)
    assert report["gcode_state"] == "PAUSE" and report["stg_cur"] == 16
    assert sim.printer.gcode_state == "PAUSE"
    await client.request({"print": {"sequence_id": "4243", "command": "resume", "param": ""}})
    assert (await client.next_reply())["result"] == "success"
    assert (await client.next_report(lambda r: "gcode_state" in r))["gcode_state"] == "RUNNING"


async def test_stop_reports_failed_without_an_error_then_cancelled(nursery: trio.Nursery, autojump_clock: Any) -> None:
    """As a real P2S stops: FAILED with print_error 0 first, 0300_400C 4.6 s (scaled) later."""
    sim = await start_sim(nursery, time_scale=2.0)
    client = await logged_in(sim)
    await running(sim)
    await client.request({"print": {"sequence_id": "9", "command": "stop", "param": ""}})
    assert (await client.next_reply())["result"] == "success"
    report = await client.next_report(lambda r: "gcode_state" in r)
    assert (report["gcode_state"], report.get("print_error", 0)) == ("FAILED", 0)  # P1 deltas leave out a 0 kept
    stopped_at = trio.current_time()
    cancelled = await client.next_report(lambda r: r.get("print_error", 0) != 0)
    assert cancelled["print_error"] == CANCELLED_ERROR == 0x0300400C
    assert cancelled.get("gcode_state", "FAILED") == "FAILED"
    # simulated seconds: STOP_CANCEL_DELAY_S at the simulator's time scale, reported with the next tick
    waited = (trio.current_time() - stopped_at) * sim.printer.time_scale
    assert STOP_CANCEL_DELAY_S <= waited <= STOP_CANCEL_DELAY_S + sim.printer.tick_s * sim.printer.time_scale


async def test_garbage_requests_are_ignored_without_closing(nursery: trio.Nursery) -> None:
    sim = await start_sim(nursery)
    client = await logged_in(sim)
    for payload in (b"not json", b"[1, 2]", b"[" * 100_000, b'{"print": {"command": "print_speed", "param": null}}'):
        await client.send(publish_packet(REQUEST, payload))
    await client.send(PINGREQ_PACKET)
    assert await client.next_control() == (PINGRESP, b"")
    assert sim.printer.requests_seen == 4


async def test_light_speed_and_version_commands(nursery: trio.Nursery, autojump_clock: Any) -> None:
    sim = await start_sim(nursery)
    client = await logged_in(sim)
    await client.pushall()
    await client.request({"system": {"sequence_id": "5", "command": "ledctrl", "led_node": "chamber_light",
                                     "led_mode": "off", "led_on_time": 500, "led_off_time": 500}})
    reply = await client.next_reply("system")
    assert (reply["sequence_id"], reply["result"], reply["led_mode"]) == ("5", "success", "off")
    assert (await client.next_report())["lights_report"][0]["mode"] == "off"
    await client.request({"print": {"sequence_id": "6", "command": "print_speed", "param": "3"}})
    assert (await client.next_reply())["result"] == "success"
    speed = await client.next_report()
    assert (speed["spd_lvl"], speed["spd_mag"]) == (3, 124)
    await client.request({"info": {"sequence_id": "7", "command": "get_version"}})
    version = await client.next_reply("info")
    assert version["sequence_id"] == "7"
    assert {"ota", "mc"} <= {module["name"] for module in version["module"]}


async def test_signed_command_firmware_refuses_controls(nursery: trio.Nursery, autojump_clock: Any) -> None:
    sim = await start_sim(nursery, signed_commands=True)
    client = await logged_in(sim)
    await running(sim)
    full = await client.pushall()
    assert int(full["fun"], 16) & SIGNED_COMMANDS_BIT
    await client.request({"print": {"sequence_id": "11", "command": "pause", "param": ""}})
    reply = await client.next_reply()
    assert (reply["sequence_id"], reply["result"], reply["reason"]) == ("11", "failed", VERIFY_FAILED_REASON)
    assert VERIFY_FAILED_REASON == "mqtt message verify failed"  # a real printer's words
    report = await client.next_report(lambda r: "hms" in r)
    assert {"attr": 0x05000500, "code": 0x00010007} in report["hms"]
    assert VERIFY_FAILED_HMS == (0x05000500, 0x00010007)
    assert sim.printer.gcode_state == "RUNNING"


# --- robustness -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x30\xff\xff\xff\xff\x01",  # remaining length of five bytes
        b"\x82\x03\x00\x01\x00",  # SUBSCRIBE ending inside its topic filter
        b"\x80\x05\x00\x01\x00\x01a",  # SUBSCRIBE with the wrong fixed-header flags
        b"\x00\x00",  # reserved packet type 0
        b"\x10\x00",  # a second CONNECT
        publish_packet(REQUEST, b"{}", qos=2),  # QoS 2 is refused
    ],
)
async def test_a_bad_client_loses_only_its_own_connection(nursery: trio.Nursery, garbage: bytes) -> None:
    sim = await start_sim(nursery)
    good = await logged_in(sim, "good")
    bad = await logged_in(sim, "bad")
    await bad.send(garbage)
    assert await bad.read_packet() is None
    sim.printer.publish_report({"print": {"command": "push_status", "mark": 3}})
    assert (await good.next_message())["mark"] == 3
    late = await logged_in(sim, "late")  # and the server still accepts newcomers
    assert sim.connected_clients == 2
    await late.aclose()


async def test_oversized_packet_is_refused_before_it_is_read(nursery: trio.Nursery) -> None:
    sim = await start_sim(nursery)
    client = await logged_in(sim)
    await client.send(b"\x30" + _length(MAX_PACKET_SIZE + 1))
    assert await client.read_packet() is None


async def test_non_connect_first_packet_is_closed(nursery: trio.Nursery) -> None:
    sim = await start_sim(nursery)
    client = await RawClient.open(sim.mqtt_port)
    await client.send(PINGREQ_PACKET)
    assert await client.read_packet() is None


async def test_keepalive_expiry_closes_the_client(nursery: trio.Nursery, autojump_clock: Any) -> None:
    sim = await start_sim(nursery)
    pinging = await logged_in(sim, "pinging", keepalive=2)
    quiet = await logged_in(sim, "quiet", keepalive=2)
    start = trio.current_time()
    pongs = 0

    async def keep_pinging() -> None:
        nonlocal pongs
        while True:  # well inside the keepalive: this client must stay up
            await pinging.send(PINGREQ_PACKET)
            assert await pinging.next_control() == (PINGRESP, b"")
            pongs += 1
            await trio.sleep(1.5)

    nursery.start_soon(keep_pinging)
    with trio.fail_after(10):
        while await quiet.read_packet() is not None:
            pass  # periodic reports arrive, but reading them does not count as the client talking
    assert 3.0 <= trio.current_time() - start < 3.2  # 1.5 x keepalive
    await trio.sleep(6)
    assert pongs >= 6
    assert sim.connected_clients == 1


async def test_drop_clients_closes_every_connection(nursery: trio.Nursery) -> None:
    sim = await start_sim(nursery)
    clients = [await logged_in(sim, f"c{i}") for i in range(3)]
    assert sim.printer.drop_clients() == 3
    for client in clients:
        assert await client.read_packet() is None
    again = await logged_in(sim, "again")
    assert sim.connected_clients == 1
    await again.aclose()


# --- TLS records ------------------------------------------------------------------------------------------------------


class RecordClient:
    """TLS by hand over a plain socket, so each TLS record can be decrypted on its own."""

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self.sock = sock
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = client_context().wrap_bio(self.incoming, self.outgoing)
        self.raw = b""

    @classmethod
    async def open(cls, port: int) -> RecordClient:
        sock = trio.socket.socket()
        await sock.connect(("127.0.0.1", port))
        client = cls(sock)
        while True:
            try:
                client.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await client.flush()
                client.incoming.write(await sock.recv(65536))
        await client.flush()
        return client

    async def flush(self) -> None:
        if data := self.outgoing.read():
            await self.sock.send(data)

    async def send(self, data: bytes) -> None:
        self.tls.write(data)
        await self.flush()

    async def next_record(self) -> bytes:
        """The plaintext carried by exactly one TLS record."""
        while len(self.raw) < 5 or len(self.raw) < 5 + int.from_bytes(self.raw[3:5], "big"):
            data = await self.sock.recv(65536)
            assert data, "server closed the connection"
            self.raw += data
        end = 5 + int.from_bytes(self.raw[3:5], "big")
        record, self.raw = self.raw[:end], self.raw[end:]
        self.incoming.write(record)
        plaintext = b""
        while True:
            try:
                plaintext += self.tls.read(65536)
            except ssl.SSLWantReadError:
                return plaintext


async def _record_client(sim: Simulator) -> RecordClient:
    client = await RecordClient.open(sim.mqtt_port)
    await client.send(connect_packet("records"))
    assert split_packets(await client.next_record())[0][0] == CONNACK
    await client.send(subscribe_packet(1, REPORT))
    assert split_packets(await client.next_record())[0][0] == SUBACK
    return client


async def test_coalesced_publishes_share_one_tls_record(nursery: trio.Nursery) -> None:
    sim = await start_sim(nursery)
    client = await _record_client(sim)
    reports = [{"print": {"command": "push_status", "n": n}} for n in range(3)]

    sim.printer.publish_reports(reports, coalesce=False)
    separate = [split_packets(await client.next_record()) for _ in range(3)]
    assert [len(packets) for packets in separate] == [1, 1, 1]  # control: one record each

    sim.printer.publish_reports(reports, coalesce=True)
    together = split_packets(await client.next_record())
    assert [kind for kind, _ in together] == [PUBLISH] * 3
    assert [publish_json(body)["print"]["n"] for _, body in together] == [0, 1, 2]


async def test_coalescing_printer_sends_reply_and_report_in_one_record(nursery: trio.Nursery) -> None:
    sim = await start_sim(nursery)
    sim.printer.coalesce = True
    client = await _record_client(sim)
    await client.send(publish_packet(REQUEST, {"system": {"sequence_id": "8", "command": "ledctrl",
                                                          "led_node": "chamber_light", "led_mode": "off"}}))
    messages = [publish_json(body) for kind, body in split_packets(await client.next_record()) if kind == PUBLISH]
    assert messages[0]["system"]["result"] == "success"
    assert messages[1]["print"]["lights_report"][0]["mode"] == "off"


# --- paho-mqtt, the real client (real clock: paho runs its own thread) ---------------------------------------------


async def test_paho_client_logs_in_and_gets_reports(nursery: trio.Nursery) -> None:
    sim = await start_sim(nursery)
    inbox: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    results: queue.Queue[tuple[str, Any]] = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-test")
    client.tls_set_context(client_context())
    client.username_pw_set("bblp", ACCESS)
    client.on_connect = lambda c, u, flags, reason, props: results.put(("connect", reason))
    client.on_subscribe = lambda c, u, mid, codes, props: results.put(("subscribe", codes))
    client.on_message = lambda c, u, message: inbox.put(message)

    async def next_of(q: queue.Queue[Any]) -> Any:
        return await trio.to_thread.run_sync(q.get, True, 5.0)

    await trio.to_thread.run_sync(client.connect, "127.0.0.1", sim.mqtt_port, 30)
    client.loop_start()
    try:
        kind, reason = await next_of(results)
        assert kind == "connect" and not reason.is_failure
        client.subscribe(REPORT, qos=1)
        kind, codes = await next_of(results)
        assert kind == "subscribe" and [c.value for c in codes] == [1]
        client.publish(REQUEST, json.dumps({"pushing": {"sequence_id": "1", "command": "pushall"}}), qos=1)
        full = json.loads((await next_of(inbox)).payload)["print"]
        assert full["msg"] == 0 and full["gcode_state"] == "IDLE"
        sim.printer.publish_reports([{"print": {"command": "push_status", "n": n}} for n in range(4)])
        got = [json.loads((await next_of(inbox)).payload)["print"].get("n") for _ in range(4)]
        assert got == [0, 1, 2, 3]
    finally:
        client.loop_stop()
        client.disconnect()


# --- scenarios --------------------------------------------------------------------------------------------------------


async def _collect_until(
    client: RawClient, done: Callable[[list[tuple[float, dict[str, Any]]]], bool]
) -> list[tuple[float, dict[str, Any]]]:
    """(time, report) of every report until ``done`` says enough."""
    seen: list[tuple[float, dict[str, Any]]] = []
    with trio.fail_after(3 * 3600):  # trio time: a stuck scenario fails instead of spinning the autojump clock
        while not done(seen):
            seen.append((trio.current_time(), await client.next_report()))
    return seen


def _states(seen: list[tuple[float, dict[str, Any]]]) -> list[str]:
    states: list[str] = []
    for _, report in seen:
        state = report.get("gcode_state")
        if state is not None and (not states or states[-1] != state):
            states.append(state)
    return states


async def test_print_scenario_runs_a_print_to_finish_and_starts_another(
    nursery: trio.Nursery, autojump_clock: Any
) -> None:
    sim = await start_sim(nursery, scenario="print", time_scale=4)
    client = await logged_in(sim)
    start = trio.current_time()
    first = await client.pushall()
    assert first["gcode_state"] == "IDLE"
    seen = await _collect_until(client, lambda s: _states(s)[-2:] == ["FINISH", "PREPARE"])
    assert _states(seen) == ["PREPARE", "RUNNING", "FINISH", "PREPARE"]
    percents = [r["mc_percent"] for _, r in seen if "mc_percent" in r]
    assert percents == [*sorted(percents[:-1]), 0]  # rises through the print, back to 0 for the next one
    layers = [r["layer_num"] for _, r in seen if "layer_num" in r]
    _, total, minutes = JOBS[0]
    assert max(layers) == total
    finish = next(t for t, r in seen if r.get("gcode_state") == "FINISH")
    simulated = (finish - start) * 4
    assert minutes * 60 < simulated < minutes * 60 + 300  # printing time plus heating and leveling
    pause = next(t for t, r in seen if r.get("gcode_state") == "PREPARE" and t > finish) - finish
    assert math.isclose(pause * 4, BETWEEN_PRINTS_S, abs_tol=8)


async def test_pause_scenario_pauses_and_resumes(nursery: trio.Nursery, autojump_clock: Any) -> None:
    sim = await start_sim(nursery, scenario="pause", time_scale=10)
    client = await logged_in(sim)
    await client.pushall()
    seen = await _collect_until(client, lambda s: "FINISH" in _states(s))
    assert _states(seen) == ["PREPARE", "RUNNING", "PAUSE", "RUNNING", "FINISH"]


async def test_fail_scenario_fails_with_an_error(nursery: trio.Nursery, autojump_clock: Any) -> None:
    sim = await start_sim(nursery, scenario="fail", time_scale=10)
    client = await logged_in(sim)
    await client.pushall()
    seen = await _collect_until(client, lambda s: "FAILED" in _states(s))
    assert _states(seen) == ["PREPARE", "RUNNING", "FAILED"]
    assert seen[-1][1]["print_error"] == DEFAULT_FAILURE != CANCELLED_ERROR
    assert 40 <= sim.printer.percent < 45


async def test_hms_scenario_raises_and_clears_each_severity(nursery: trio.Nursery, autojump_clock: Any) -> None:
    sim = await start_sim(nursery, model="A1", scenario="hms")
    client = await logged_in(sim)
    await client.pushall()
    lists = [r["hms"] for _, r in await _collect_until(client, lambda s: sum("hms" in r for _, r in s) >= 8)
             if "hms" in r]
    raised = [entries[0]["code"] >> 16 for entries in lists[0::2]]
    assert raised == [1, 2, 3, 4]  # fatal, serious, common, info
    assert lists[1::2] == [[]] * 4
    assert lists[2][0]["attr"] >> 24 == 0x12  # A1: the AMS lite module


async def test_silent_scenario_keeps_tcp_open_but_says_nothing(nursery: trio.Nursery, autojump_clock: Any) -> None:
    sim = await start_sim(nursery, scenario="silent")
    client = await logged_in(sim, keepalive=20)  # 30 s grace: only answered pings keep it up through the silence
    await client.pushall()
    pongs: list[float] = []
    reports: list[float] = []

    async def ping() -> None:
        while True:
            await trio.sleep(10)
            await client.send(PINGREQ_PACKET)

    with trio.fail_after(300):
        async with trio.open_nursery() as pinger:
            pinger.start_soon(ping)
            while not reports or reports[-1] < SILENT_TALK_S + SILENT_QUIET_S + 5:
                got = await client.read_packet()
                assert got is not None, "the connection must survive the silence"
                if got[0] == PINGRESP:
                    pongs.append(trio.current_time())
                elif got[0] == PUBLISH:
                    reports.append(trio.current_time())
            pinger.cancel_scope.cancel()
    gaps = [(later - earlier, earlier) for earlier, later in itertools.pairwise(reports)]
    longest, began = max(gaps)
    assert SILENT_QUIET_S - 1 <= longest <= SILENT_QUIET_S + 3  # give or take a report tick at each end
    assert sum(began < t < began + longest for t in pongs) >= 8


async def test_drop_scenario_drops_connections(nursery: trio.Nursery, autojump_clock: Any) -> None:
    sim = await start_sim(nursery, scenario="drop")
    client = await logged_in(sim, keepalive=0)
    start = trio.current_time()
    with trio.fail_after(60):
        while await client.read_packet() is not None:
            pass
    assert 44 <= trio.current_time() - start <= 46
