"""The printer facade against the real service and ``bambupi sim``, read by independent clients from PyPI.

bambulabs_api and bambu-connect (their own paho MQTT, TLS and camera code) are pointed at the box as at a printer:
host = the box, serial = the printer's, access code = the facade's. They read state and camera frames while the
simulated printer counts exactly one MQTT and one camera client: the box's. paho-mqtt is the app that asks to pause.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import ssl
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
import trio

from bambupi.camera.jpeg import auth_packet, frame_header, is_jpeg
from bambupi.config import load_config
from bambupi.mqtt_server import PacketType, encode_packet
from bambupi.printer.tls_pins import printer_tls_context
from bambupi.service import Running, Service
from bambupi.sim.simulator import Simulator
from tests.support import HANG_S, save_settings, setup_and_login, wait_for

# bambu-connect makes its paho client with the old callback API; that is the library's business, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:Callback API version 1 is deprecated:DeprecationWarning")

SERIAL = "01P00A000000777"
CODE = "12345678"  # the printer's
FACADE_CODE = "fac4de01"  # the facade's own
CONFIG = """\
[web]
listen = "127.0.0.1:0"

[[printer]]
id = "garage"
model = "{model}"
host = "127.0.0.1"
serial = "{serial}"
access_code = "{code}"
mqtt_port = {mqtt_port}
camera_port = {camera_port}
reconnect_max_s = 0.5
{printer_extra}

[camera]
linger_s = 60

[facade]
enabled = true
host = "127.0.0.1"
mqtt_port = {facade_port}
camera_port = 0
access_code = "{facade_code}"
allow_control = {allow}

[storage]
path = "{folder}/bambupi.sqlite3"
"""


@dataclass
class FacadeBox:
    sim: Simulator
    running: Running
    config_path: Path

    @property
    def mqtt_port(self) -> int:
        port = self.running.facade.mqtt_port
        assert port is not None
        return port

    @property
    def camera_port(self) -> int:
        port = self.running.facade.camera_port("garage")
        assert port is not None
        return port


@asynccontextmanager
async def facade_box(
    tmp_path: Path, *, allow: bool = False, scenario: str = "print", model: str = "P1S", printer_extra: str = "",
    facade_port: int = 0,
) -> AsyncIterator[FacadeBox]:
    async with trio.open_nursery() as nursery:
        sim = Simulator(model, SERIAL, CODE, scenario=scenario, time_scale=20, camera_port=0, camera_fps=5.0)
        await nursery.start(sim.run)
        path = tmp_path / "bambupi.toml"
        path.write_text(CONFIG.format(
            serial=SERIAL, model=model, code=CODE, mqtt_port=sim.mqtt_port, camera_port=sim.camera_port,
            facade_code=FACADE_CODE, allow=str(allow).lower(), folder=tmp_path, printer_extra=printer_extra,
            facade_port=facade_port,
        ))
        config, _ = load_config(path)
        running: Running = await nursery.start(Service(config, storage_folder=tmp_path).run)
        box = FacadeBox(sim, running, path)
        await wait_for(lambda: running.hub.printer("garage")["connection"] == "online", what="the printer online")
        if not facade_port:
            await wait_for(lambda: running.facade.mqtt_port is not None, what="the facade serving")
        yield box
        nursery.cancel_scope.cancel()


class PahoApp:
    """An app on paho-mqtt (its own thread), subscribed to the printer's report topic through the facade."""

    def __init__(self, port: int, *, code: str = FACADE_CODE, client_id: str = "paho-app") -> None:
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.connected = threading.Event()
        self.refused: list[Any] = []
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        client.username_pw_set("bblp", code)
        client.tls_set(cert_reqs=ssl.CERT_NONE)
        client.tls_insecure_set(True)
        client.on_connect = self._on_connect
        client.on_message = lambda c, u, msg: self.messages.put(json.loads(msg.payload))
        client.on_disconnect = self._on_disconnect
        self.disconnects = 0
        self.client = client
        self.port = port
        self.serial = SERIAL

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self.refused.append(reason)
            return
        client.subscribe(f"device/{self.serial}/report", qos=1)
        self.connected.set()

    def _on_disconnect(self, *args: Any) -> None:
        self.disconnects += 1

    async def start(self) -> None:
        await trio.to_thread.run_sync(self.client.connect, "127.0.0.1", self.port, 30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def publish(self, message: dict[str, Any]) -> None:
        self.client.publish(f"device/{self.serial}/request", json.dumps(message), qos=1)

    async def wait_for_message(self, match: Any, timeout: float = HANG_S) -> dict[str, Any]:
        """The first message ``match(message)`` accepts (earlier ones are dropped)."""
        with trio.fail_after(timeout):
            while True:
                try:
                    message = self.messages.get_nowait()
                except queue.Empty:
                    await trio.sleep(0.02)
                    continue
                if match(message):
                    return message


# --- the independent clients ------------------------------------------------------------------------------------------


async def test_bambulabs_api_and_bambu_connect_read_state_and_frames_through_the_facade(tmp_path: Path) -> None:
    from bambu_connect.CameraClient import CameraClient
    from bambu_connect.WatchClient import WatchClient
    from bambulabs_api.camera_client import PrinterCamera
    from bambulabs_api.mqtt_client import PrinterMQTTClient

    async with facade_box(tmp_path) as box:
        # bambulabs_api: MQTT (it asks pushall + get_version on connect) and the camera.
        api = PrinterMQTTClient("127.0.0.1", FACADE_CODE, SERIAL, port=box.mqtt_port)
        api.connect()
        api.start()
        api_camera = PrinterCamera("127.0.0.1", FACADE_CODE, port=box.camera_port)
        api_camera.start()
        # bambu-connect: its watch client always dials port 8883, the printer's; the test tells paho where the box
        # listens (port 0 in tests), the library's own code does the rest.
        watched: list[Any] = []
        watch = WatchClient("127.0.0.1", FACADE_CODE, SERIAL)
        dial = watch.client.connect
        watch.client.connect = lambda host, port, keepalive: dial(host, box.mqtt_port, keepalive)  # type: ignore[method-assign]
        await trio.to_thread.run_sync(watch.start, watched.append, None)
        camera = CameraClient("127.0.0.1", FACADE_CODE, port=box.camera_port)
        try:
            def printing_state() -> bool:
                return api.ready() and api.dump().get("print", {}).get("gcode_state") in ("PREPARE", "RUNNING")

            await wait_for(printing_state, what="bambulabs_api's state from the facade")
            # The full report the box made from its merged state: what a P1 only says when asked.
            seen = api.dump()["print"]
            assert seen["nozzle_target_temper"] == box.sim.printer.full_report()["print"]["nozzle_target_temper"]
            assert "ams" in seen and "lights_report" in seen
            # Its get_version: the box asked the printer once; the answer reached the app on the report topic.
            await wait_for(lambda: "module" in api.dump().get("info", {}), what="bambulabs_api's versions")
            assert box.running.hub.version_reply("garage") is not None
            await wait_for(lambda: any(s.mc_percent is not None for s in watched), what="bambu-connect's status")
            await wait_for(lambda: api_camera.last_frame is not None, what="bambulabs_api's frame")
            frame = await trio.to_thread.run_sync(camera.capture_frame, abandon_on_cancel=True)
            assert frame is not None and is_jpeg(frame)
            assert is_jpeg(bytes(api_camera.last_frame))
            # Both apps watch through the box: the printer still sees one MQTT client and one camera client.
            assert box.sim.broker.connections == 1 and box.sim.connected_clients == 1
            assert box.sim.camera is not None and box.sim.camera.connections == 1
            assert box.running.facade.health()["facade_endpoint"]["mqtt_clients"] == 2
        finally:
            await trio.to_thread.run_sync(api_camera.stop)
            api.stop()
            await trio.to_thread.run_sync(watch.stop)


# --- control ------------------------------------------------------------------------------------------------------


async def test_a_pause_is_refused_unless_the_owner_allowed_control(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                                                   ) -> None:
    caplog.set_level(logging.INFO)
    async with facade_box(tmp_path, allow=False) as box:
        await wait_for(lambda: box.sim.printer.gcode_state == "RUNNING", what="the print running")
        app = PahoApp(box.mqtt_port)
        await app.start()
        try:
            await trio.to_thread.run_sync(app.connected.wait, HANG_S)
            app.publish({"print": {"command": "pause", "sequence_id": "4242", "param": ""}})
            reply = await app.wait_for_message(lambda m: m.get("print", {}).get("sequence_id") == "4242")
            assert reply["print"]["result"] == "failed" and "allow_control" in reply["print"]["reason"]
            # Nor anything that is not a control: a G-code line never reaches the printer.
            app.publish({"print": {"command": "gcode_line", "sequence_id": "7", "param": "G28\n"}})
            reply = await app.wait_for_message(lambda m: m.get("print", {}).get("sequence_id") == "7")
            assert reply["print"]["result"] == "failed"
            await trio.sleep(0.5)
            assert box.sim.printer.gcode_state == "RUNNING"
        finally:
            app.stop()

        # The owner allows control on the settings page: applied live; the app reconnects and its pause is sent.
        async with httpx.AsyncClient(base_url=box.running.url, timeout=60) as client:
            csrf = await setup_and_login(client)
            settings = (await client.get("/api/settings")).json()
            assert settings["settings"]["facade"]["access_code"] != FACADE_CODE  # masked, never sent back
            r = await save_settings(client, csrf, {"facade": {"allow_control": True}})
            assert r.status_code == 200, r.text
            assert any("facade" in line for line in r.json()["applied"]), r.json()
        await wait_for(lambda: box.running.facade.health().get("facade_endpoint", {}).get("allow_control"),
                       what="the facade restarted with control allowed")
        app = PahoApp(box.mqtt_port, client_id="paho-app-2")
        await app.start()
        try:
            await trio.to_thread.run_sync(app.connected.wait, HANG_S)
            app.publish({"print": {"command": "pause", "sequence_id": "4243", "param": ""}})
            reply = await app.wait_for_message(lambda m: m.get("print", {}).get("sequence_id") == "4243")
            assert reply["print"]["result"] == "success", reply
            await wait_for(lambda: box.sim.printer.gcode_state == "PAUSE", what="the simulated print paused")
        finally:
            app.stop()
    assert any("pause via the facade" in r.getMessage() for r in caplog.records)
    assert FACADE_CODE not in caplog.text and CODE not in caplog.text



# --- apps that misbehave ------------------------------------------------------------------------------------------


def _string(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def connect_packet(client_id: str, code: str, keepalive: int = 60) -> bytes:
    body = _string("MQTT") + bytes([4, 0xC2]) + keepalive.to_bytes(2, "big")
    body += _string(client_id) + _string("bblp") + _string(code)
    return encode_packet(PacketType.CONNECT, body)


def subscribe_packet(topic: str, packet_id: int = 1) -> bytes:
    return encode_packet(PacketType.SUBSCRIBE, packet_id.to_bytes(2, "big") + _string(topic) + b"\x01", flags=0x02)


async def tls(port: int) -> trio.SSLStream[trio.SocketStream]:
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    stream = trio.SSLStream(tcp, printer_tls_context(), server_hostname=None)
    await stream.do_handshake()
    return stream


async def closed_by_server(stream: trio.SSLStream[trio.SocketStream]) -> bool:
    """Read until the server closes (True) or sends nothing more for a while (False)."""
    with trio.move_on_after(HANG_S):
        try:
            while await stream.receive_some(65536):
                pass
        except trio.BrokenResourceError:
            pass
        return True
    return False


async def test_misbehaving_apps_lose_only_their_own_connection(tmp_path: Path) -> None:
    async with facade_box(tmp_path, scenario="idle") as box:
        good = PahoApp(box.mqtt_port, client_id="good")
        await good.start()
        try:
            await trio.to_thread.run_sync(good.connected.wait, HANG_S)
            endpoint = box.running.facade.health()["facade_endpoint"]
            # Garbage instead of TLS; garbage inside TLS; a wrong code; a packet claiming 100 MB.
            raw = await trio.open_tcp_stream("127.0.0.1", box.mqtt_port)
            await raw.send_all(b"GET / HTTP/1.1\r\n\r\n" * 10)
            await trio.aclose_forcefully(raw)
            garbage = await tls(box.mqtt_port)
            await garbage.send_all(b"\xff\x00 not mqtt at all" * 100)
            assert await closed_by_server(garbage)
            wrong = await tls(box.mqtt_port)
            await wrong.send_all(connect_packet("wrong", CODE))  # the printer's code is not the facade's
            assert await wrong.receive_some(4) == b"\x20\x02\x00\x05"  # CONNACK: not authorized
            huge = await tls(box.mqtt_port)
            await huge.send_all(connect_packet("huge", FACADE_CODE))
            await huge.send_all(b"\x30\xff\xff\xff\x7f" + b"x" * 1000)  # PUBLISH of 256 MiB announced
            assert await closed_by_server(huge)
            assert box.running.facade.health()["facade_endpoint"]["refused_logins"] == endpoint["refused_logins"] + 1

            # An app that subscribes and then stops reading: its outbox fills and it is dropped; the good app
            # keeps every report, to the last.
            stalled = await tls(box.mqtt_port)
            await stalled.send_all(connect_packet("stalled", FACADE_CODE) + subscribe_packet(f"device/{SERIAL}/report"))
            await wait_for(lambda: box.running.facade.health()["facade_endpoint"]["mqtt_clients"] == 2,
                           what="the stalled app connected")
            padding = "x" * 16_000
            sent = 0
            # In batches the good app keeps up with (fewer than its outbox holds), until the stalled one is dropped.
            while box.running.facade.health()["facade_endpoint"]["mqtt_clients"] == 2:
                assert sent < 20_000, "the stalled app was never dropped"
                for _ in range(20):
                    sent += 1
                    box.running.hub.apply_message("garage", json.dumps(
                        {"print": {"command": "push_status", "msg": 1, "pad": padding, "n": sent}}).encode())
                await good.wait_for_message(lambda m, n=sent: m.get("print", {}).get("n") == n)
            box.running.hub.apply_message("garage", json.dumps(
                {"print": {"command": "push_status", "msg": 1, "n": "last"}}).encode())
            await good.wait_for_message(lambda m: m.get("print", {}).get("n") == "last")
            assert good.disconnects == 0  # it kept its connection all along
            assert good.connected.is_set() and not good.refused
            for stream in (wrong, stalled):
                await trio.aclose_forcefully(stream)
        finally:
            good.stop()
        # The printer never saw any of it: one client, the box.
        assert box.sim.broker.connections == 1


async def test_only_the_printers_topics_and_the_facade_code(tmp_path: Path) -> None:
    async with facade_box(tmp_path, scenario="idle") as box:
        stream = await tls(box.mqtt_port)
        await stream.send_all(connect_packet("topics", FACADE_CODE))
        assert await stream.receive_some(4) == b"\x20\x02\x00\x00"
        for packet_id, topic in enumerate(("device/+/report", "device/01P00A000000999/report", "#",
                                           f"device/{SERIAL}/request", f"device/{SERIAL}/report"), start=1):
            await stream.send_all(subscribe_packet(topic, packet_id))
            suback = await stream.receive_some(5)
            granted = suback[-1]
            assert granted == (1 if topic == f"device/{SERIAL}/report" else 0x80), topic
        await trio.aclose_forcefully(stream)


# --- the camera ---------------------------------------------------------------------------------------------------


async def test_the_camera_speaks_port_6000_with_the_facade_code_and_one_upstream(tmp_path: Path) -> None:
    async with facade_box(tmp_path, scenario="idle") as box:
        assert box.sim.camera is not None
        wrong = await tls(box.camera_port)
        await wrong.send_all(auth_packet(CODE))  # the printer's code: refused as a printer refuses
        assert await closed_by_server(wrong)
        raw = await trio.open_tcp_stream("127.0.0.1", box.camera_port)  # not even TLS
        await raw.send_all(b"\x16\x03\x01 garbage" * 100)
        await trio.aclose_forcefully(raw)
        short = await tls(box.camera_port)
        await short.send_all(auth_packet(FACADE_CODE)[:40])  # half an auth packet, then silence: closed in time
        assert await closed_by_server(short)
        viewers = [await tls(box.camera_port) for _ in range(3)]  # more than a P1S serves
        for viewer in viewers:
            await viewer.send_all(auth_packet(FACADE_CODE))
        for viewer in viewers:
            for _ in range(2):
                header = await viewer.receive_some(4096)  # one TLS record: the header alone, as a printer sends
                assert len(header) == 16 and header[4:] == frame_header(0)[4:]
                size = int.from_bytes(header[:4], "little")
                payload = b""
                while len(payload) < size:
                    payload += await viewer.receive_some(size - len(payload))
                assert is_jpeg(payload) and payload in box.sim.camera.sent
        assert box.sim.camera.connections == 1 and box.sim.camera.clients == 1
        assert box.running.frames.status("garage")["viewers"] == 1  # the facade holds the upstream as one viewer
        for viewer in viewers:
            await trio.aclose_forcefully(viewer)
        await wait_for(lambda: box.running.frames.status("garage")["viewers"] == 0, what="the facade let go")


async def test_a_camera_switched_off_closes_after_the_auth_and_says_why_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An X1C with "LAN Only Liveview" off (the simulator's RTSPS models report ``rtsp_url: disable``): nothing to
    show, so the facade closes after the auth as a printer does, logs why once, and opens no upstream."""
    caplog.set_level(logging.INFO)
    async with facade_box(tmp_path, scenario="idle", model="X1C") as box:
        await wait_for(lambda: box.running.frames.status("garage")["status"] == "off", what="liveview off")
        for _ in range(2):
            app = await tls(box.camera_port)
            await app.send_all(auth_packet(FACADE_CODE))
            assert await closed_by_server(app)
        assert box.running.frames.upstream_connections("garage") == 0
    said = [r.getMessage() for r in caplog.records if "an app asked for frames" in r.getMessage()]
    assert len(said) == 1 and "Liveview is off" in said[0]


async def test_healthz_shows_the_facade_and_never_its_code(tmp_path: Path) -> None:
    async with facade_box(tmp_path, scenario="idle") as box, httpx.AsyncClient(
        base_url=box.running.url, timeout=60
    ) as client:
        r = await client.get("/healthz")
        assert FACADE_CODE not in r.text and CODE not in r.text
        components = r.json()["components"]
        assert components["facade"]["state"] == "running"
        endpoint = components["facade_endpoint"]
        assert endpoint["ok"] and endpoint["mqtt_port"] == box.mqtt_port and endpoint["allow_control"] is False
        assert endpoint["printers"]["garage"] == {"serial": SERIAL, "camera_port": box.camera_port,
                                                  "camera_clients": 0}
        settings = (await client.get("/api/settings")).text
        assert FACADE_CODE not in settings



async def test_the_demo_prints_how_to_point_an_app_at_its_printer(tmp_path: Path) -> None:
    """``bambupi demo`` (``make run``) serves the facade on free ports and prints host, ports, serial and code: a
    newcomer's app (here paho) reads the simulated printer through it."""
    demo = await trio.lowlevel.open_process(
        [sys.executable, "-m", "bambupi", "demo", "--port", "0", "--host", "127.0.0.1", "--time-scale", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    assert demo.stdout is not None
    try:
        text = ""
        with trio.fail_after(HANG_S):
            while "access code" not in text:
                chunk = await demo.stdout.receive_some(4096)
                assert chunk, text
                text += chunk.decode()
            while not text.endswith("\n"):
                text += (await demo.stdout.receive_some(4096)).decode()
        found = re.search(r"MQTT port (\d+).*serial (\w+), access code (\w+)", text)
        assert found, text
        port, serial, code = int(found.group(1)), found.group(2), found.group(3)
        assert "camera port" in text
        app = PahoApp(port, code=code, client_id="newcomer")
        app.serial = serial
        await app.start()
        try:
            await trio.to_thread.run_sync(app.connected.wait, HANG_S)
            app.publish({"pushing": {"command": "pushall", "sequence_id": "1"}})
            full = await app.wait_for_message(lambda m: m.get("print", {}).get("msg") == 0)
            assert full["print"]["gcode_state"] in ("PREPARE", "RUNNING", "IDLE", "FINISH")
        finally:
            app.stop()
    finally:
        demo.terminate()
        with trio.move_on_after(HANG_S):
            await demo.wait()
        demo.kill()


async def test_a_printer_gone_offline_closes_its_apps_and_pushall_waits_for_it(tmp_path: Path) -> None:
    async with facade_box(tmp_path, scenario="idle", printer_extra="stale_after_s = 1\noffline_after_s = 2") as box:
        app = PahoApp(box.mqtt_port)
        dropped = threading.Event()
        app.client.on_disconnect = lambda *args: dropped.set()
        await app.start()
        try:
            await trio.to_thread.run_sync(app.connected.wait, HANG_S)
            app.publish({"pushing": {"command": "pushall", "sequence_id": "1"}})
            await app.wait_for_message(lambda m: m.get("print", {}).get("msg") == 0)
            box.sim.printer.go_silent()
            await wait_for(lambda: box.running.hub.printer("garage")["connection"] == "offline", what="offline")
            await trio.to_thread.run_sync(dropped.wait, HANG_S)
            assert dropped.is_set()  # the app saw the printer go, as it would with the printer itself
            app.connected.clear()
            await trio.to_thread.run_sync(app.connected.wait, HANG_S)  # paho reconnects by itself
            while not app.messages.empty():
                app.messages.get_nowait()
            app.publish({"pushing": {"command": "pushall", "sequence_id": "2"}})
            await trio.sleep(1.0)
            assert app.messages.empty()  # no old news passed off as the printer's answer
            box.sim.printer.resume_talking()
            await app.wait_for_message(lambda m: m.get("print", {}).get("command") == "push_status")
        finally:
            app.stop()


async def test_several_printers_on_one_mqtt_port_each_by_its_serial(tmp_path: Path) -> None:
    """Two simulated printers (a P1S printing, an A1 idle): one facade port, each printer's reports on its own
    serial's topic, each pushall answered with that printer's own state; camera ports one per printer."""
    other_serial = "03919A000000042"
    async with trio.open_nursery() as nursery:
        p1s = Simulator("P1S", SERIAL, CODE, scenario="print", time_scale=20, camera_port=0)
        a1 = Simulator("A1", other_serial, "87654321", scenario="idle", time_scale=20, camera_port=0)
        await nursery.start(p1s.run)
        await nursery.start(a1.run)
        path = tmp_path / "bambupi.toml"
        path.write_text(
            f'[web]\nlisten = "127.0.0.1:0"\n\n'
            f'[[printer]]\nid = "garage"\nmodel = "P1S"\nhost = "127.0.0.1"\nserial = "{SERIAL}"\n'
            f'access_code = "{CODE}"\nmqtt_port = {p1s.mqtt_port}\ncamera_port = {p1s.camera_port}\n\n'
            f'[[printer]]\nid = "office"\nmodel = "A1"\nhost = "127.0.0.1"\nserial = "{other_serial}"\n'
            f'access_code = "87654321"\nmqtt_port = {a1.mqtt_port}\ncamera_port = {a1.camera_port}\n\n'
            f'[facade]\nenabled = true\nhost = "127.0.0.1"\nmqtt_port = 0\ncamera_port = 0\n'
            f'access_code = "{FACADE_CODE}"\nprinters = ["office", "garage"]\n\n'
            f'[storage]\npath = "{tmp_path}/bambupi.sqlite3"\n'
        )
        config, _ = load_config(path)
        running: Running = await nursery.start(Service(config, storage_folder=tmp_path).run)
        await wait_for(lambda: all(p["connection"] == "online" for p in running.hub.snapshot().values()),
                       what="both printers online")
        port = running.facade.mqtt_port
        assert port is not None
        assert running.facade.camera_port("office") != running.facade.camera_port("garage")
        apps = {serial: PahoApp(port, client_id=f"app-{serial}") for serial in (SERIAL, other_serial)}
        try:
            for serial, app in apps.items():
                app.serial = serial
                await app.start()
                await trio.to_thread.run_sync(app.connected.wait, HANG_S)
                app.publish({"pushing": {"command": "pushall", "sequence_id": serial}})
            garage = await apps[SERIAL].wait_for_message(lambda m: m.get("print", {}).get("sequence_id") == SERIAL)
            office = await apps[other_serial].wait_for_message(
                lambda m: m.get("print", {}).get("sequence_id") == other_serial
            )
            assert garage["print"]["gcode_state"] in ("PREPARE", "RUNNING")
            assert office["print"]["gcode_state"] == "IDLE"
        finally:
            for app in apps.values():
                app.stop()
        assert p1s.broker.connections == 1 and a1.broker.connections == 1
        nursery.cancel_scope.cancel()


@pytest.mark.timeout(240)
async def test_a_camera_app_that_stops_reading_does_not_hold_back_the_others(tmp_path: Path) -> None:
    """Latest-value frames: a stalled app costs no memory and no frames for the others; once a frame cannot reach
    it for 10 s it is closed."""
    async with facade_box(tmp_path, scenario="idle") as box:
        endpoint = box.running.facade
        stalled = await tls(box.camera_port)
        await stalled.send_all(auth_packet(FACADE_CODE))  # then never reads
        good = await tls(box.camera_port)
        await good.send_all(auth_packet(FACADE_CODE))

        async def frame() -> bytes:
            header = await good.receive_some(16)
            size = int.from_bytes(header[:4], "little")
            payload = b""
            while len(payload) < size:
                payload += await good.receive_some(size - len(payload))
            return payload

        def camera_apps() -> int:
            return int(endpoint.health()["facade_endpoint"]["printers"]["garage"]["camera_clients"])

        await wait_for(lambda: camera_apps() == 2, what="both camera apps logged in")
        with trio.fail_after(180):
            received = 0
            while camera_apps() == 2:
                assert is_jpeg(await frame())
                received += 1
            assert received > 10  # the good app kept getting frames all the while the other one stalled
            for _ in range(3):
                assert is_jpeg(await frame())
        assert camera_apps() == 1
        for stream in (stalled, good):
            await trio.aclose_forcefully(stream)


async def test_a_taken_port_fails_the_facade_alone_says_why_and_it_recovers(tmp_path: Path) -> None:
    taken = trio.socket.socket()
    taken.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEADDR, 1)
    await taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    async with facade_box(tmp_path, scenario="idle", facade_port=port) as box, httpx.AsyncClient(
        base_url=box.running.url, timeout=60
    ) as client:
        async def facade_state() -> dict[str, Any]:
            part: dict[str, Any] = (await client.get("/healthz")).json()["components"]["facade"]
            return part

        await wait_for(lambda: box.running.supervisor.board.to_json()["facade"]["state"] == "failed",
                       what="the facade failed")
        part = await facade_state()
        assert part["ok"] is False and "in use" in part["error"]["message"].lower(), part
        # Which port and what to change: the bare "Address already in use" names neither (a mosquitto on 8883
        # on the same Pi is a likely neighbour, and the camera ports are taken the same way).
        assert f"MQTT: cannot listen on 127.0.0.1:{port}" in part["error"]["message"], part
        assert "[facade] mqtt_port" in part["error"]["message"], part
        assert box.running.hub.printer("garage")["connection"] == "online"  # the rest keeps running
        taken.close()
        await wait_for(lambda: box.running.facade.mqtt_port == port, what="the facade restarted on its port")
        assert (await facade_state())["state"] == "running"


async def test_turned_off_live_the_facade_closes_its_apps_and_its_ports(tmp_path: Path) -> None:
    async with facade_box(tmp_path, scenario="idle") as box:
        app = PahoApp(box.mqtt_port)
        await app.start()
        try:
            await trio.to_thread.run_sync(app.connected.wait, HANG_S)
            port = box.mqtt_port
            old, _ = load_config(box.config_path)
            box.config_path.write_text(box.config_path.read_text().replace("enabled = true", "enabled = false"))
            new, _ = load_config(box.config_path)
            outcome = await box.running.supervisor.reconfigure(old, new)
            assert outcome == {"applied": ["the printer facade is off"], "restart_required": []}
            await wait_for(lambda: app.disconnects >= 1, what="the app closed")
            assert box.running.facade.mqtt_port is None and "facade_endpoint" not in box.running.facade.health()
            with pytest.raises(OSError):
                await trio.open_tcp_stream("127.0.0.1", port)  # nothing listens there any more
        finally:
            app.stop()


async def test_the_independent_clients_through_the_box_from_a_bambupi_sim_process(tmp_path: Path) -> None:
    """As the issue says it: ``bambupi sim`` as its own process, the box watching it, bambulabs_api and bambu-connect
    pointed at the box. The simulated printer's own log counts its clients: one MQTT login, one camera login."""
    from bambu_connect.WatchClient import WatchClient
    from bambulabs_api.camera_client import PrinterCamera
    from bambulabs_api.mqtt_client import PrinterMQTTClient

    log_path = tmp_path / "sim.log"
    with log_path.open("w") as log_file:
        sim = await trio.lowlevel.open_process(
            [sys.executable, "-m", "bambupi", "sim", "--serial", SERIAL, "--access-code", CODE, "--mqtt-port", "0",
             "--camera-port", "0", "--ftps-port", "0", "--scenario", "print", "--time-scale", "20"],
            stdout=subprocess.PIPE, stderr=log_file,
        )  # fmt: skip
    assert sim.stdout is not None
    try:
        line = b""
        with trio.fail_after(HANG_S):
            while not line.endswith(b"\n"):
                chunk = await sim.stdout.receive_some(1)
                assert chunk, log_path.read_text()
                line += chunk
        found = re.search(r"MQTT/TLS on 127\.0\.0\.1:(\d+).*camera \(port-6000 protocol\) on 127\.0\.0\.1:(\d+)",
                          line.decode())
        assert found, line
        path = tmp_path / "bambupi.toml"
        path.write_text(CONFIG.format(
            serial=SERIAL, model="P1S", code=CODE, mqtt_port=found.group(1), camera_port=found.group(2),
            facade_code=FACADE_CODE, allow="false", folder=tmp_path, printer_extra="", facade_port=0,
        ))
        config, _ = load_config(path)
        async with trio.open_nursery() as nursery:
            running: Running = await nursery.start(Service(config, storage_folder=tmp_path).run)
            await wait_for(lambda: running.hub.printer("garage")["connection"] == "online", what="online")
            port, camera_port = running.facade.mqtt_port, running.facade.camera_port("garage")
            assert port is not None and camera_port is not None
            api = PrinterMQTTClient("127.0.0.1", FACADE_CODE, SERIAL, port=port)
            api.connect()
            api.start()
            cameras = [PrinterCamera("127.0.0.1", FACADE_CODE, port=camera_port) for _ in range(3)]
            for camera in cameras:
                camera.start()
            watched: list[Any] = []
            watch = WatchClient("127.0.0.1", FACADE_CODE, SERIAL)
            dial = watch.client.connect
            watch.client.connect = lambda host, _port, keepalive: dial(host, port, keepalive)  # type: ignore[method-assign]
            await trio.to_thread.run_sync(watch.start, watched.append, None)
            try:
                await wait_for(lambda: api.ready() and "gcode_state" in api.dump().get("print", {}),
                               what="bambulabs_api's state")
                await wait_for(lambda: any(s.gcode_state for s in watched), what="bambu-connect's state")
                await wait_for(lambda: all(c.last_frame is not None for c in cameras), what="three apps' frames")
            finally:
                for camera in cameras:
                    await trio.to_thread.run_sync(camera.stop)
                api.stop()
                await trio.to_thread.run_sync(watch.stop)
            nursery.cancel_scope.cancel()
    finally:
        sim.terminate()
        with trio.move_on_after(HANG_S):
            await sim.wait()
        sim.kill()
    said = log_path.read_text()
    assert said.count("simulator: client ") and len(re.findall(r"simulator: client '[^']*' connected", said)) == 1
    assert said.count("simulator: a camera client logged in") == 1
    assert FACADE_CODE not in said
