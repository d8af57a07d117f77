"""One pin check for everything that sends a printer its access code over TLS, and one trust flow.

The MQTT link, the port-6000 camera and the probe behind "trust the new certificate" use the same TLS context and
the same :class:`TrustOnFirstUse`: a certificate other than the pinned one is refused by the link and the camera
with the same words, before the access code goes out, and the probe fetches the certificate they refused.
"""

from __future__ import annotations

import importlib.resources
import ssl
from pathlib import Path

import pytest
import trio

from bambupi.camera.frames import default_source
from bambupi.camera.source import CameraError, Tls6000Source
from bambupi.config import PrinterConfig
from bambupi.printer.link import PrinterLink
from bambupi.printer.tls_pins import (
    CertificateRefused,
    PinStore,
    TrustOnFirstUse,
    camera_pin_key,
    fingerprint,
    normal_pin,
)
from bambupi.printer.trust import Unreachable, probe_fingerprint, trust_current_certificate
from bambupi.secret import Secret
from bambupi.sim.simulator import Simulator
from bambupi.state_hub import StateHub
from tests.support import wait_for

SERIAL = "01P00A000000011"
CODE = "13572468"
WRONG = "sha256:" + "ab" * 32
HANG_S = 30  # bounds a hang only: waits end on a state


def sim_fingerprint() -> str:
    pem = (importlib.resources.files("bambupi") / "data" / "sim-cert.pem").read_text()
    return fingerprint(ssl.PEM_cert_to_DER_cert(pem))


def printer_config(sim: Simulator, **overrides: object) -> PrinterConfig:
    fields: dict[str, object] = dict(
        id="p1", name="P1", model="P1S", host="127.0.0.1", serial=SERIAL, access_code=Secret(CODE),
        mqtt_port=sim.mqtt_port, camera_port=sim.camera_port, reconnect_max_s=0.2, connect_timeout_s=5.0,
    )  # fmt: skip
    fields.update(overrides)
    return PrinterConfig(**fields)  # type: ignore[arg-type]


# -- the check itself ------------------------------------------------------------------------------------------------


def test_the_first_certificate_is_trusted_once_accepted_and_another_is_refused(tmp_path: Path) -> None:
    pins = PinStore(tmp_path / "tls-pins.json")
    trust = TrustOnFirstUse(pins, "p1", printer_id="p1")
    seen = trust.check(b"first", "the printer at 10.0.0.9:8883")
    assert seen == fingerprint(b"first") and pins.get("p1") is None  # nothing pinned before the code was accepted
    trust.accept(seen)
    assert pins.get("p1") == seen and trust.check(b"first", "x") == seen
    trust.accept(fingerprint(b"other"))  # a pin is never replaced on the quiet
    with pytest.raises(CertificateRefused) as refused:
        trust.check(b"other", "the printer at 10.0.0.9:8883")
    assert str(refused.value).startswith("certificate changed: the printer at 10.0.0.9:8883 presents a different")
    assert "bambupi trust p1" in str(refused.value)
    assert (refused.value.seen, refused.value.trusted) == (fingerprint(b"other"), seen)


def test_a_configured_fingerprint_takes_precedence_in_any_spelling(tmp_path: Path) -> None:
    pins = PinStore(tmp_path / "tls-pins.json")
    pins.set("p1", fingerprint(b"pinned"))
    hex_colons = ":".join(f"{b:02X}" for b in bytes.fromhex(fingerprint(b"configured").removeprefix("sha256:")))
    trust = TrustOnFirstUse(pins, "p1", printer_id="p1", configured=hex_colons)
    assert normal_pin(hex_colons) == fingerprint(b"configured")
    assert trust.check(b"configured", "x") == fingerprint(b"configured")
    with pytest.raises(CertificateRefused):
        trust.check(b"pinned", "x")


def test_no_certificate_at_all_is_refused(tmp_path: Path) -> None:
    trust = TrustOnFirstUse(PinStore(tmp_path / "tls-pins.json"), "p1", printer_id="p1")
    for der in (None, b""):
        with pytest.raises(CertificateRefused, match="presented no certificate"):
            trust.check(der, "the camera at 10.0.0.9:6000")


# -- link, camera and probe against one simulated printer -------------------------------------------------------------


async def test_link_and_camera_refuse_a_wrong_certificate_alike_and_the_trust_flow_mends_both(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        sim = Simulator("P1S", SERIAL, CODE, camera_port=0, camera_fps=10.0)
        await nursery.start(sim.run)
        assert sim.camera is not None
        config = printer_config(sim)
        pins = PinStore(tmp_path / "tls-pins.json")
        pins.set("p1", WRONG)  # another device's certificate is what was pinned for both
        pins.set(camera_pin_key("p1"), WRONG)
        seen = sim_fingerprint()

        hub = StateHub([config])
        link = await nursery.start(PrinterLink(config, hub, pins).run)
        await wait_for(lambda: link.attempts >= 2, timeout=HANG_S)
        printer = hub.printer("p1")
        where = f"127.0.0.1:{sim.mqtt_port}"
        assert printer["connection"] == "offline" and link.connects == 0  # never logged in: the code was not sent
        assert printer["connection_reason"] == str(CertificateRefused(f"the printer at {where}", seen, WRONG, "p1"))

        camera = default_source(config, pins)
        assert isinstance(camera, Tls6000Source)
        with trio.fail_after(HANG_S), pytest.raises(CameraError) as refused:
            await camera.stream(lambda frame: None)
        camera_where = f"the camera at 127.0.0.1:{sim.camera_port}"
        assert str(refused.value) == str(CertificateRefused(camera_where, seen, WRONG, "p1"))
        assert refused.value.retry_s == 60.0
        await trio.testing.wait_all_tasks_blocked(0.02)
        assert sim.camera.logins == 0  # the camera never got the access code either

        # The probe fetches the very certificate both refused; trusting it mends the link and the camera.
        assert await probe_fingerprint(config) == seen
        trusted = await trust_current_certificate(config, pins)
        assert (trusted.fingerprint, trusted.previous, trusted.problem) == (seen, WRONG, None)
        assert not trusted.overridden
        assert pins.get("p1") == seen and pins.get(camera_pin_key("p1")) is None  # the camera's is taken afresh
        link.follow(link.host)
        await wait_for(lambda: hub.printer("p1")["connection"] == "online", timeout=HANG_S)
        frames: list[bytes] = []
        with trio.fail_after(HANG_S), trio.CancelScope() as scope:
            await camera.stream(lambda frame: (frames.append(frame), scope.cancel()))
        assert frames and pins.get(camera_pin_key("p1")) == seen
        nursery.cancel_scope.cancel()


async def test_the_probe_names_where_and_why_when_the_printer_cannot_be_reached(tmp_path: Path) -> None:
    with trio.socket.socket() as sock:  # a port nobody listens on
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = PrinterConfig(
        id="p1", name="P1", model="P1S", host="127.0.0.1", serial=SERIAL, access_code=Secret(CODE), mqtt_port=port,
        connect_timeout_s=5.0,
    )
    pins = PinStore(tmp_path / "tls-pins.json")
    with pytest.raises(Unreachable, match=f"cannot reach 127.0.0.1:{port}: ") as failed:
        await trust_current_certificate(config, pins)
    assert CODE not in str(failed.value) and pins.get("p1") is None
