"""Discovery: real UDP datagrams in the printers' SSDP format, and a printer followed to its new address."""

from __future__ import annotations

import importlib.resources
import ssl
from pathlib import Path

import pytest
import trio

from bambupi.config import PrinterConfig
from bambupi.printer.discovery import Discovery, parse_announcement
from bambupi.printer.link import PrinterLink
from bambupi.printer.tls_pins import PinStore, fingerprint
from bambupi.printer_models import KNOWN_MODELS, model_info
from bambupi.secret import Secret
from bambupi.sim.simulator import Simulator
from bambupi.state_hub import StateHub
from tests.support import wait_for

# The simulator's shipped certificate, pinned as a printer that connected before would have it.
SIM_PIN = fingerprint(ssl.PEM_cert_to_DER_cert(
    (importlib.resources.files("bambupi") / "data" / "sim-cert.pem").read_text()))


def notify(serial: str, ip: str, model: str = "C12", name: str = "Garage P1S") -> bytes:
    return (
        "NOTIFY * HTTP/1.1\r\n"
        "HOST: 239.255.255.250:1990\r\n"
        "Server: UPnP/1.0\r\n"
        f"Location: {ip}\r\n"
        "NT: urn:bambulab-com:device:3dprinter:1\r\n"
        f"USN: {serial}\r\n"
        "Cache-Control: max-age=1800\r\n"
        f"DevModel.bambu.com: {model}\r\n"
        f"DevName.bambu.com: {name}\r\n"
        "DevSignal.bambu.com: -44\r\n"
        "DevConnect.bambu.com: lan\r\n"
        "DevBind.bambu.com: free\r\n\r\n"
    ).encode()


def test_announcement_is_parsed() -> None:
    a = parse_announcement(notify("01P00A123456789", "192.168.1.77"), "192.168.1.77", now=5.0)
    assert a is not None
    assert (a.serial, a.host, a.model, a.name, a.signal_dbm, a.connection) == (
        "01P00A123456789", "192.168.1.77", "P1S", "Garage P1S", -44, "lan",
    )
    for code, model in [("N2S", "A1"), ("N9", "A2L"), ("Z9", "Z9")]:
        other = parse_announcement(notify("01P00A123456789", "10.0.0.2", model=code), "x", now=0)
        assert other is not None and other.model == model


# Every model's SSDP codes as the peers list them (Bambuddy's SSDP map; BambuStudio's early X1 names).
ANNOUNCED_AS = {
    "BL-P001": "X1C", "3DPrinter-X1-Carbon": "X1C", "BL-P002": "X1", "3DPrinter-X1": "X1", "C13": "X1E",
    "C11": "P1P", "C12": "P1S", "N2S": "A1", "N1": "A1MINI", "N9": "A2L", "O1D": "H2D", "O1E": "H2DPRO",
    "O2D": "H2DPRO", "O1S": "H2S", "O1C": "H2C", "O1C2": "H2C", "N7": "P2S", "N6": "X2D",
}  # fmt: skip


@pytest.mark.parametrize(("code", "model"), ANNOUNCED_AS.items())
def test_every_model_is_named_from_its_announcement_as_models_py_knows_it(code: str, model: str) -> None:
    announced = parse_announcement(notify("01P00A123456789", "10.0.0.2", model=code), "x", now=0)
    assert announced is not None and announced.model == model
    assert model_info(announced.model).model == model  # one name in discovery, config and state: models.py's


def test_every_known_model_has_an_ssdp_code() -> None:
    assert sorted(set(ANNOUNCED_AS.values())) == sorted(KNOWN_MODELS)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe garbage",
        b"M-SEARCH * HTTP/1.1\r\nST: ssdp:all\r\n\r\n",
        notify("01P00A123456789", "1.2.3.4").replace(b"bambulab-com", b"other-com"),
        notify("short", "1.2.3.4"),
        notify("01P00A123456789", "not-an-ip"),
        notify("01P00A12345/789", "1.2.3.4"),
    ],
)
def test_what_is_not_an_announcement_is_ignored(data: bytes) -> None:
    assert parse_announcement(data, "1.2.3.4", now=0) is None


async def send(port: int, *datagrams: bytes) -> None:
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as sock:
        for data in datagrams:
            await sock.sendto(data, ("127.0.0.1", port))


async def test_announcements_over_udp_become_candidates_and_junk_is_ignored() -> None:
    followed: list[tuple[str, str]] = []
    known = {"01P00A000000001": "192.168.1.10"}
    discovery = Discovery(lambda: known, lambda s, h: followed.append((s, h)), host="127.0.0.1", port=0)
    async with trio.open_nursery() as nursery:
        await nursery.start(discovery.run)
        assert discovery.listening and discovery.port > 0
        await send(
            discovery.port,
            b"junk",
            notify("01S00C000000042", "192.168.1.42", model="3DPrinter-X1-Carbon", name="Lab"),
            notify("01P00A000000001", "192.168.1.11"),
        )
        await wait_for(lambda: discovery.ignored == 1 and bool(followed))
        nursery.cancel_scope.cancel()
    assert [(c.serial, c.model, c.name) for c in discovery.candidates()] == [("01S00C000000042", "X1C", "Lab")]
    assert followed == [("01P00A000000001", "192.168.1.11")]


async def moved_printer(
    nursery: trio.Nursery, tmp_path: Path, serial: str, *, pinned: bool
) -> tuple[Simulator, StateHub, PrinterLink, PinStore]:
    """A simulated printer at 127.0.0.1 whose configured address (127.0.0.2) is stale, and its (offline) link."""
    code = "55667788"
    sim = Simulator("P1S", serial, code, scenario="idle")
    await nursery.start(sim.run)
    config = PrinterConfig(
        id="p", name="P", model="P1S", host="127.0.0.2", serial=serial, access_code=Secret(code),
        mqtt_port=sim.mqtt_port, reconnect_max_s=30, connect_timeout_s=2,
    )
    hub = StateHub([config])
    pins = PinStore(tmp_path / "pins.json")
    if pinned:
        pins.set("p", SIM_PIN)  # it connected before, at its old address
    link = await nursery.start(PrinterLink(config, hub, pins).run)
    await wait_for(lambda: hub.printer("p")["connection"] == "offline")
    return sim, hub, link, pins


async def test_a_printer_that_moved_is_followed_and_comes_online(tmp_path: Path) -> None:
    serial = "01P00A000000077"
    async with trio.open_nursery() as nursery:
        _, hub, link, _ = await moved_printer(nursery, tmp_path, serial, pinned=True)
        discovery = Discovery(
            lambda: {serial: link.host}, lambda s, h: link.follow(h), host="127.0.0.1", port=0
        )
        await nursery.start(discovery.run)
        await send(discovery.port, notify(serial, "127.0.0.1"))
        # The backoff is long (30 s cap); following wakes the link at once.
        await wait_for(lambda: hub.printer("p")["connection"] == "online", timeout=5)
        assert link.host == "127.0.0.1"
        nursery.cancel_scope.cancel()


async def test_a_printer_never_pinned_is_not_followed_to_an_announced_address(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Anyone on the LAN can announce a serial: a printer with no pinned certificate would pin the announcer's
    # and send it the access code.
    async with trio.open_nursery() as nursery:
        sim, hub, link, pins = await moved_printer(nursery, tmp_path, "01P00A000000078", pinned=False)
        tried = link.attempts
        assert link.follow("127.0.0.1") is False
        # Its next attempt went to the old address again (a state, not a sleep).
        await wait_for(lambda: link.attempts > tried and hub.printer("p")["connection"] == "offline")
        assert link.host == "127.0.0.2" and hub.printer("p")["connection"] == "offline"
        assert sim.connected_clients == 0 and pins.get("p") is None
        assert "not pinned yet" in caplog.text
        nursery.cancel_scope.cancel()
