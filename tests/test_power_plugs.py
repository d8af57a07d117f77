"""Each plug driver against a real local HTTP server speaking that plug's API: reading, switching, auth, and
every way a plug goes wrong (timeout, HTTP 500, a body that is not JSON, the plug vanishing mid-session).
Secrets never appear in an error or a log line."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from bambupi.config import Config, PlugConfig, PowerConfig, PrinterConfig, WebConfig
from bambupi.power.plugs import Plug, PlugError, make_plug
from bambupi.secret import Secret
from bambupi.service import Running, Service
from bambupi.sim.plug import SimulatedPlug
from bambupi.sim.printer import SimulatedPrinter
from tests.plug_servers import FakePlugServer, HomeAssistant, ShellyGen1, ShellyGen2
from tests.support import wait_for

PASSWORD = "pl4g-s3cret-pw"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.ha-long-lived-token"


@dataclass
class Rig:
    """One plug kind: its server (with the test knobs) and a function making a driver for it."""

    kind: str
    server: Any  # FakePlugServer or SimulatedPlug: both have fail_with, malformed, delay_s, unplug(), url
    make: Callable[..., Plug]


def config(kind: str, url: str, **overrides: Any) -> PlugConfig:
    # A limit only a hung plug reaches: a loaded machine answers slowly, never this slowly (the timeout test sets its
    # own short limit against a plug that never answers).
    values: dict[str, Any] = {"kind": kind, "address": url, "timeout_s": 30.0}
    if kind == "homeassistant":
        values.update(token=Secret(TOKEN), entity="switch.printer", power_entity="sensor.printer_power")
    else:
        values.update(password=Secret(PASSWORD))
    values.update(overrides)
    return PlugConfig(**values)


@pytest.fixture(params=["tasmota", "shelly1", "shelly2", "homeassistant"])
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    kind = request.param
    async with trio.open_nursery() as nursery:
        server: Any
        if kind == "tasmota":
            printer = SimulatedPrinter("P1S", "01P00A000000009")
            server = await nursery.start(SimulatedPlug(printer, password=PASSWORD).run)
        else:
            handler = {
                "shelly1": lambda: ShellyGen1(password=PASSWORD),
                "shelly2": lambda: ShellyGen2(password=PASSWORD),
                "homeassistant": lambda: HomeAssistant(token=TOKEN),
            }[kind]()
            server = await nursery.start(FakePlugServer(handler).run)
        yield Rig(kind, server, lambda **kw: make_plug(config(kind, server.url, **kw)))
        nursery.cancel_scope.cancel()


def assert_no_secret(text: str) -> None:
    assert PASSWORD not in text and TOKEN not in text


async def refuses(url: str) -> bool:
    """Whether nothing listens at ``url`` any more (a connection is refused)."""
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", int(url.rsplit(":", 1)[1]))
    except OSError:
        return True
    await stream.aclose()
    return False


async def test_reads_and_switches_off_and_on(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    plug = rig.make()
    first = await plug.read()
    expected_watts = {"tasmota": None, "shelly1": 123.4, "shelly2": 0.0, "homeassistant": 250.0}[rig.kind]
    if expected_watts is not None:
        assert first.watts == pytest.approx(expected_watts)
    expected_total = {"tasmota": 1.2345, "shelly1": 10.0, "shelly2": 4.321}.get(rig.kind)
    assert first.total_kwh == (None if expected_total is None else pytest.approx(expected_total, abs=0.001))
    await plug.switch(True)
    assert (await plug.read()).on is True
    if rig.kind == "tasmota":
        assert 8 < ((await plug.read()).watts or 0) < 10  # an idle simulated printer: its electronics only
    await plug.switch(False)
    off = await plug.read()
    assert off.on is False
    if rig.kind == "tasmota":
        assert off.watts == 0 and "Power Off" in rig.server.commands
    if rig.kind == "homeassistant":
        calls = rig.server.handler.service_calls
        assert calls[-1] == ("/api/services/switch/turn_off", {"entity_id": "switch.printer"})
    await plug.aclose()
    assert_no_secret(caplog.text)


async def test_wrong_credentials_are_a_clear_error_without_the_secret(rig: Rig) -> None:
    wrong = {"token": Secret("wrong-token")} if rig.kind == "homeassistant" else {"password": Secret("wrong-pw")}
    plug = rig.make(**wrong)
    with pytest.raises(PlugError, match="credentials refused") as info:
        await plug.read()
    assert "wrong" not in str(info.value) and f"{rig.kind} plug at http://127.0.0.1:" in str(info.value)
    await plug.aclose()


async def test_http_500_malformed_body_timeout_and_unplugged(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    plug = rig.make()
    await plug.read()  # a working session first
    messages = []

    rig.server.fail_with = 500
    with pytest.raises(PlugError, match="HTTP 500") as info:
        await plug.read()
    messages.append(str(info.value))
    rig.server.fail_with = None

    rig.server.malformed = True
    with pytest.raises(PlugError, match="not JSON") as info:
        await plug.switch(False)
    messages.append(str(info.value))
    rig.server.malformed = False

    rig.server.delay_s = 3600.0  # a plug that hangs: only the driver's own limit ends the wait
    impatient = rig.make(timeout_s=0.5)
    with trio.fail_after(30):
        with pytest.raises(PlugError, match=r"no answer within 0.5 s") as info:
            await impatient.read()
    messages.append(str(info.value))
    await impatient.aclose()
    rig.server.delay_s = 0.0

    assert (await plug.read()).on in (True, False)  # it recovers once the plug behaves
    rig.server.unplug()
    await wait_for(lambda: refuses(rig.server.url), what="the unplugged plug's port refusing connections")
    with pytest.raises(PlugError, match="cannot reach it") as info:
        await plug.read()
    messages.append(str(info.value))
    await plug.aclose()
    for message in messages:
        assert_no_secret(message)
    assert_no_secret(caplog.text)


async def test_plugs_without_a_meter_or_with_odd_values() -> None:
    gen1 = ShellyGen1(password=None)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(FakePlugServer(gen1).run)
        plug = make_plug(PlugConfig(kind="shelly1", address=server.url, timeout_s=1))
        gen1.watts = float("nan")
        reading = await plug.read()
        assert reading.watts is None and reading.on is True  # NaN is not a reading
        server.handler = lambda r: (200, {}, b'{"relays": [{"ison": "yes"}]}')
        with pytest.raises(PlugError, match="unexpected answer"):
            await plug.read()
        server.handler = lambda r: (200, {}, b'{"relays": [{"ison": false}]}')
        assert (await plug.read()).watts is None  # a relay without a meter still switches
        await plug.aclose()
        nursery.cancel_scope.cancel()


async def test_a_token_httpx_cannot_send_and_json_nested_too_deeply_are_plug_errors() -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(FakePlugServer(HomeAssistant(token=TOKEN)).run)
        # A pasted "ä" in the token: httpx raises UnicodeEncodeError building the header, not an httpx error.
        plug = make_plug(config("homeassistant", server.url, token=Secret("ey.h\u00e4" + TOKEN)))
        with pytest.raises(PlugError, match="cannot send a request with these settings") as info:
            await plug.read()
        assert_no_secret(str(info.value))
        with pytest.raises(PlugError, match="cannot send"):
            await plug.switch(False)
        await plug.aclose()

        # A device on the LAN answering "[[[[...": json raises RecursionError, not ValueError.
        plug = make_plug(config("homeassistant", server.url))
        server.handler = lambda r: (200, {}, b"[" * 100_000)
        with pytest.raises(PlugError, match="nested too deeply"):
            await plug.read()
        await plug.aclose()
        nursery.cancel_scope.cancel()


async def test_a_plug_that_cannot_be_asked_is_a_warning_on_the_page_not_a_dead_box(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad_token = "ey.h\u00e4-" + TOKEN
    async with trio.open_nursery() as nursery:
        server = await nursery.start(FakePlugServer(HomeAssistant(token=TOKEN)).run)
        deep = await nursery.start(FakePlugServer(lambda r: (200, {}, b"[" * 100_000)).run)

        def printer(printer_id: str, serial: str, plug: PlugConfig) -> PrinterConfig:
            return PrinterConfig(id=printer_id, name=printer_id, model="P1S", host="127.0.0.1", serial=serial,
                                 access_code=Secret("12345678"), mqtt_port=1, reconnect_max_s=5, plug=plug)

        box = Config(
            printers=(
                # Built in code, past the config file's check of the token (an old file, a future caller).
                printer("garage", "01P00A000000001", config("homeassistant", server.url, token=Secret(bad_token))),
                printer("loft", "01P00A000000002", PlugConfig(kind="shelly2", address=deep.url, timeout_s=30)),
            ),
            web=WebConfig(host="127.0.0.1", port=0),
            power=PowerConfig(sample_interval_s=0.05, flush_interval_s=0.5),
        )
        running: Running = await nursery.start(Service(box, storage_folder=tmp_path).run)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.port}") as client:
            with trio.fail_after(30):
                while True:
                    printers = (await client.get("/api/power")).json()["printers"]
                    if printers["garage"]["error"] and printers["loft"]["error"]:
                        break
                    await trio.sleep(0.05)
            asked = len(deep.requests)
            with trio.fail_after(30):  # several more samples: the service keeps sampling after the errors
                while len(deep.requests) < asked + 5:
                    await trio.sleep(0.05)
            assert (await client.get("/healthz")).status_code == 200
            power = await client.get("/api/power")
        nursery.cancel_scope.cancel()
    printers = power.json()["printers"]
    assert "cannot send a request with these settings" in printers["garage"]["error"]
    assert "nested too deeply" in printers["loft"]["error"]
    assert TOKEN not in power.text and TOKEN not in caplog.text


async def test_an_endless_answer_is_cut_off_at_the_limit_not_read_into_memory() -> None:
    # Anything on the LAN can answer at the plug's address; this one streams JSON-looking bytes forever.
    sent = 0

    hung_up = trio.Event()

    async def endless(stream: trio.SocketStream) -> None:
        nonlocal sent
        async with stream:
            await stream.receive_some(65536)
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n[")
            chunk = b"1," * 32768
            try:
                while True:
                    await stream.send_all(chunk)
                    sent += len(chunk)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                hung_up.set()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, endless, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        plug = make_plug(config("shelly2", f"http://127.0.0.1:{port}", password=None))
        with trio.fail_after(30), pytest.raises(PlugError, match="answer too large"):
            await plug.read()
        await plug.aclose()
        with trio.fail_after(30):  # a hang bound: the server notices the box hung up
            await hung_up.wait()
        assert sent < 64 * 1024 * 1024  # all it ever sent: the box stopped reading (the socket buffers hold the rest)
        nursery.cancel_scope.cancel()
