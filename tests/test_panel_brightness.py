"""Night, the room's light and sleep: the pure rules, the BH1750 driver against a fake SMBus, and the running panel on
the fake clock with gpiozero's mock PWM pins and luma's dummy OLED (contrast, PWM duty, screen on/off)."""

from __future__ import annotations

import ctypes
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trio
from gpiozero import PWMLED
from gpiozero.pins.mock import MockFactory, MockPWMPin

from bambupi.alerts import QuietHours
from bambupi.config import AlertsConfig, PanelConfig
from bambupi.panel import brightness
from bambupi.panel.alarms import IDLE_GREEN_LEVEL
from bambupi.panel.brightness import (
    BRIGHT_LUX,
    DARK_LUX,
    WAKE_S,
    DimmedLed,
    Light,
    asleep,
    choose,
    lux_level,
    printer_off,
    settle,
)
from bambupi.panel.light_sensor import BH1750, READ_EVERY_S, RETRY_S, SensorReader
from bambupi.panel.screens import NetworkInfo
from bambupi.panel.service import Panel
from bambupi.state_hub import StateHub
from tests.support import printer_config, report

NIGHT = datetime(2026, 12, 3, 23, 30, tzinfo=UTC).timestamp()
DAY = datetime(2026, 12, 3, 14, 0, tzinfo=UTC).timestamp()
GREEN, AMBER, RED, BUTTON = 17, 27, 22, 23  # hardware/pins.toml


def idle(connection: str = "online", gcode_state: str = "IDLE") -> dict[str, Any]:
    return {"id": "p1", "connection": connection, "state": {"gcode_state": gcode_state}}


# --- the pure rules ---------------------------------------------------------------------------------------------


def test_the_room_s_light_maps_to_a_level_on_a_log_scale() -> None:
    assert lux_level(0) == lux_level(DARK_LUX) == 0.0
    assert lux_level(BRIGHT_LUX) == lux_level(50_000) == 1.0
    middle = (DARK_LUX * BRIGHT_LUX) ** 0.5  # the geometric middle is half way for the eye
    assert lux_level(middle) == pytest.approx(0.5)
    assert lux_level(float("nan")) == 0.0
    assert all(lux_level(a) <= lux_level(b) for a, b in zip(range(0, 400, 7), range(7, 407, 7), strict=True))


def test_a_small_change_of_light_changes_nothing_but_the_ends_always_count() -> None:
    assert settle(None, 0.4) == 0.4
    assert settle(0.4, 0.45) == 0.4  # a cloud passing
    assert settle(0.4, 0.6) == 0.6
    assert settle(0.05, 0.0) == 0.0 and settle(0.95, 1.0) == 1.0


def test_day_night_room_and_asleep() -> None:
    config = PanelConfig(contrast=200, night_contrast=2, night_led_level=0.1)
    assert choose(config, night=False, level=None, asleep=False) == Light("day", 200, 1.0, "day")
    assert choose(config, night=True, level=None, asleep=False) == Light("night", 2, 0.1, "quiet hours")
    # A sensor decides instead of the clock: a lit room at night is bright, a dark one by day dim.
    assert choose(config, night=True, level=1.0, asleep=False).contrast == 200
    dark = choose(config, night=False, level=0.0, asleep=False)
    assert (dark.mode, dark.contrast, dark.leds) == ("room", 2, 0.1)
    half = choose(config, night=False, level=0.5, asleep=False)
    assert (half.contrast, half.leds) == (101, 0.55)
    assert choose(config, night=False, level=1.0, asleep=True) == Light("asleep", 0, 0.0, "the printers are off")


def test_a_printer_is_off_when_its_plug_is_or_when_it_has_been_down_a_while_and_idle() -> None:
    assert printer_off(idle(), plug_off=True, down_s=None, sleep_after_s=600)
    assert not printer_off(idle("offline"), plug_off=False, down_s=599, sleep_after_s=600)
    assert printer_off(idle("offline"), plug_off=False, down_s=600, sleep_after_s=600)
    assert printer_off(idle("offline", "FINISH"), plug_off=False, down_s=600, sleep_after_s=600)
    # Lost in the middle of a print: a fault to show, never a reason to sleep.
    assert not printer_off(idle("offline", "RUNNING"), plug_off=False, down_s=3600, sleep_after_s=600)
    assert not printer_off(idle("offline", "PAUSE"), plug_off=False, down_s=3600, sleep_after_s=600)
    # Still reporting a print: printing, whatever the plug's last reading says (its timer, a lagging reading).
    assert not printer_off(idle("online", "RUNNING"), plug_off=True, down_s=None, sleep_after_s=600)
    assert printer_off(idle("online", "FINISH"), plug_off=True, down_s=None, sleep_after_s=600)


def test_the_box_sleeps_only_when_every_printer_is_off_and_nothing_waits() -> None:
    two = {"p1": idle("offline"), "p2": idle("offline")}
    rules: dict[str, Any] = {
        "plugs_off": frozenset(), "down_since": {"p1": 0.0, "p2": 0.0}, "now": 700.0, "sleep_after_s": 600.0,
        "attention": False, "awake_until": 0.0,
    }
    assert asleep(two, **rules)
    assert not asleep(two, **{**rules, "down_since": {"p1": 0.0, "p2": 200.0}})  # p2 went down 500 s ago
    assert asleep(two, **{**rules, "down_since": {"p1": 0.0}, "plugs_off": frozenset({"p2"})})
    assert not asleep({"p1": idle("offline"), "p2": idle()}, **{**rules, "down_since": {"p1": 0.0}})
    assert not asleep(two, **{**rules, "attention": True})  # a finished print not yet seen
    assert not asleep(two, **{**rules, "awake_until": 701.0})  # the button was pressed
    assert not asleep(two, **{**rules, "sleep_after_s": 0.0})  # never
    assert not asleep({}, **rules)  # no printer configured: the network screen stays


def test_a_dimmed_led_scales_what_the_driver_writes() -> None:
    factory = MockFactory(pin_class=MockPWMPin)
    led = DimmedLed(PWMLED(GREEN, pin_factory=factory))
    led.value = 0.5
    assert factory.pin(GREEN).state == 0.5
    led.scale = 0.1
    assert factory.pin(GREEN).state == pytest.approx(0.05) and led.value == 0.5
    led.value = 1.0
    assert factory.pin(GREEN).state == pytest.approx(0.1)
    led.scale = 0.0
    assert factory.pin(GREEN).state == 0.0
    factory.reset()


# --- the sensor ---------------------------------------------------------------------------------------------------


class FakeSMBus:
    """Answers like a BH1750 at ``address`` on an i2c-dev bus: the commands written, the two result bytes read."""

    def __init__(self, address: int = 0x23, raw: int = 0) -> None:
        self.address = address
        self.raw = raw
        self.written: list[tuple[int, int]] = []
        self.present = True
        self.closed = False

    def _check(self, address: int) -> None:
        if not self.present or address != self.address:
            raise OSError(121, "Remote I/O error")  # what i2c-dev says when nothing acknowledges

    def write_byte(self, i2c_addr: int, value: int) -> None:
        self._check(i2c_addr)
        self.written.append((i2c_addr, value))

    def i2c_rdwr(self, *messages: Any) -> None:
        for message in messages:
            self._check(message.addr)
            assert message.flags & 1 and message.len == 2  # a plain two-byte read, no command byte
            ctypes.memmove(message.buf, bytes([self.raw >> 8, self.raw & 0xFF]), 2)

    def close(self) -> None:
        self.closed = True


def test_the_bh1750_is_started_in_continuous_high_resolution_and_read_in_lux() -> None:
    bus = FakeSMBus(0x5C, raw=0x0190)
    sensor = BH1750(bus, 0x5C)
    sensor.start()
    assert bus.written == [(0x5C, 0x01), (0x5C, 0x10)]  # power on, continuous high resolution
    assert sensor.read_lux() == pytest.approx(400 / 1.2)
    bus.raw = 0xFFFF
    assert sensor.read_lux() == pytest.approx(54612.5)
    with pytest.raises(OSError):
        BH1750(bus, 0x23).start()


def fake_dev(tmp_path: Path, bus: bool = True) -> Path:
    if bus:
        (tmp_path / "i2c-1").touch()
    return tmp_path


async def test_a_sensor_that_answers_sets_the_level_and_one_that_stops_is_a_warning(
    autojump_clock: Any, tmp_path: Path
) -> None:
    bus = FakeSMBus(raw=round(BRIGHT_LUX * 1.2))
    reader = SensorReader(PanelConfig(light_sensor="auto"), dev=fake_dev(tmp_path), bus=lambda port: bus,
                          threaded=False)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader.run)
        await trio.sleep(0.1)
        assert reader.found and reader.level == 1.0 and reader.warning is None
        assert reader.health()["brightness_from"] == "the room"
        bus.raw = 0
        await trio.sleep(READ_EVERY_S)
        assert reader.level == 0.0 and reader.health()["lux"] == 0.0
        bus.present = False  # a loose wire
        await trio.sleep(READ_EVERY_S)
        health = reader.health()
        assert reader.level is None and health["ok"] is True and "stopped answering" in health["warning"]
        assert health["brightness_from"] == "the night schedule" and bus.closed
        bus.present, bus.raw = True, round(BRIGHT_LUX * 1.2)
        await trio.sleep(RETRY_S + READ_EVERY_S)
        assert reader.level == 1.0 and reader.warning is None  # it answers again
        nursery.cancel_scope.cancel()


async def test_auto_without_a_sensor_is_quiet_and_bh1750_without_one_is_a_warning(
    autojump_clock: Any, tmp_path: Path
) -> None:
    absent = FakeSMBus()
    absent.present = False
    auto = SensorReader(PanelConfig(light_sensor="auto"), dev=fake_dev(tmp_path), bus=lambda port: absent,
                        threaded=False)
    await auto.run()  # returns: nothing to read
    assert auto.health()["kind"] == "none" and auto.warning is None and auto.level is None
    expected = SensorReader(PanelConfig(light_sensor="bh1750"), dev=fake_dev(tmp_path), bus=lambda port: absent,
                            threaded=False)
    with trio.move_on_after(RETRY_S * 2.5):
        await expected.run()  # keeps trying
    assert "no BH1750 answers at 0x23" in str(expected.health()["warning"]) and expected.level is None
    no_bus = SensorReader(PanelConfig(light_sensor="bh1750"), dev=fake_dev(tmp_path / "x", bus=False),
                          bus=lambda port: absent, threaded=False)
    (tmp_path / "x").mkdir()
    await no_bus.run()
    assert "no I2C bus" in str(no_bus.health()["warning"])


# --- the running panel ----------------------------------------------------------------------------------------


class Plugs:
    def __init__(self) -> None:
        self.off: set[str] = set()

    def plug_off(self, printer_id: str) -> bool:
        return printer_id in self.off


def make_panel(hub: StateHub, *, wall: float = DAY, config: PanelConfig | None = None, **kw: Any) -> Panel:
    alerts = AlertsConfig(quiet_hours=((22, 0), (7, 0)), time_zone="UTC")
    return Panel(
        hub, config or PanelConfig(oled="virtual", gpio="virtual", sleep_after_s=600),
        QuietHours(alerts, clock_synced=lambda: True, wall=lambda: wall), clock_synced=lambda: True,
        wall=lambda: wall, network=lambda url: NetworkInfo("box", "10.0.0.2", url), boot_network_s=0, **kw,
    )


def duty(panel: Panel, pin: int) -> float:
    return float(panel.factory.pin(pin).state)


async def test_night_dims_the_oled_and_the_leds(autojump_clock: Any) -> None:
    for wall, contrast, share in ((DAY, 255, 1.0), (NIGHT, 1, 0.1)):
        hub = StateHub([printer_config("p1")])
        panel = make_panel(hub, wall=wall)
        async with trio.open_nursery() as nursery:
            await nursery.start(panel.run)
            hub.set_connection("p1", "online")
            hub.apply_message("p1", report(gcode_state="IDLE", hms=[]))
            await trio.sleep(2)
            assert panel.screen.contrast == contrast and panel.screen.on
            assert duty(panel, GREEN) == pytest.approx(IDLE_GREEN_LEVEL * share)  # steady idle green, dimmed
            assert panel.status()["brightness"]["mode"] == ("night" if wall == NIGHT else "day")
            # A finished print at night: the green fast blink at the night level, the buzzer quiet.
            hub.apply_message("p1", report(gcode_state="RUNNING", mc_percent=50, hms=[]))
            await trio.sleep(1)
            hub.apply_message("p1", report(gcode_state="FINISH", mc_percent=100, hms=[]))
            await trio.sleep(1)
            seen = set()
            for _ in range(10):
                seen.add(round(duty(panel, GREEN), 3))
                await trio.sleep(0.05)
            assert max(seen) == pytest.approx(share)
            assert panel.buzzer is not None
            assert [p for _, p in panel.buzzer.played] == ([] if wall == NIGHT else ["finished"])
            nursery.cancel_scope.cancel()
        panel.factory.reset()


async def test_printer_off_puts_the_box_to_sleep_and_activity_or_the_button_wakes_it(autojump_clock: Any) -> None:
    hub = StateHub([printer_config("p1")])
    panel = make_panel(hub)
    async with trio.open_nursery() as nursery:
        await nursery.start(panel.run)
        hub.set_connection("p1", "online")
        hub.apply_message("p1", report(gcode_state="IDLE", hms=[]))
        await trio.sleep(2)
        assert panel.screen.on and duty(panel, GREEN) > 0
        hub.set_connection("p1", "offline", "timeout")
        await trio.sleep(300)
        # Down but not yet for sleep_after_s: the red slow blink says so, the screen shows it.
        assert panel.screen.on and panel.status()["leds"]["red"]["mode"] == "slow_blink"
        await trio.sleep(301)
        assert panel.status()["brightness"]["mode"] == "asleep" and panel.display == "off"
        assert panel.screen.on is False  # luma's hide(): the panel is dark
        for _ in range(20):  # LEDs dark through a whole slow-blink period
            assert (duty(panel, GREEN), duty(panel, AMBER), duty(panel, RED)) == (0, 0, 0)
            await trio.sleep(0.1)
        assert panel.image.getbbox() is None  # a black picture
        # The button wakes it for WAKE_S, then it sleeps again.
        panel.factory.pin(BUTTON).drive_low()
        panel.factory.pin(BUTTON).drive_high()
        await trio.sleep(1)
        assert panel.screen.on and panel.status()["brightness"]["mode"] == "day"
        assert panel.image.getbbox() is not None
        assert await _lit_within(panel, 2.0)  # the red slow blink (printer offline) shows again
        await trio.sleep(WAKE_S)
        assert panel.screen.on is False
        # The printer comes back (plug on, it boots): awake at once.
        hub.set_connection("p1", "online")
        hub.apply_message("p1", report(gcode_state="IDLE", hms=[]))
        await trio.sleep(1)
        assert panel.screen.on and panel.screen.contrast == 255
        assert duty(panel, GREEN) == pytest.approx(IDLE_GREEN_LEVEL)
        nursery.cancel_scope.cancel()
    panel.factory.reset()


async def _lit_within(panel: Panel, seconds: float) -> bool:
    with trio.move_on_after(seconds):
        while max(duty(panel, RED), duty(panel, AMBER)) == 0:
            await trio.sleep(0.05)
        return True
    return False


async def test_a_plug_reading_off_sleeps_at_once_and_a_print_lost_mid_way_never_sleeps(autojump_clock: Any) -> None:
    hub = StateHub([printer_config("p1"), printer_config("p2", serial="01P00A000000002")])
    plugs = Plugs()
    panel = make_panel(hub, plugs=plugs)
    async with trio.open_nursery() as nursery:
        await nursery.start(panel.run)
        hub.set_connection("p1", "online")
        hub.apply_message("p1", report(gcode_state="IDLE", hms=[]))
        hub.set_connection("p2", "online")
        hub.apply_message("p2", report(gcode_state="RUNNING", mc_percent=10, hms=[]))
        await trio.sleep(2)
        plugs.off.add("p1")
        hub.set_connection("p1", "offline")
        hub.set_connection("p2", "offline", "timeout")  # p2 lost in the middle of its print
        await trio.sleep(3600)
        assert panel.screen.on and panel.status()["brightness"]["mode"] == "day"
        assert panel.status()["leds"]["red"]["mode"] != "off"
        plugs.off.add("p2")  # its owner switched it off: now every printer is off
        await trio.sleep(2)
        assert panel.screen.on is False and panel.status()["brightness"]["mode"] == "asleep"
        nursery.cancel_scope.cancel()
    panel.factory.reset()


async def test_the_room_s_light_sets_the_brightness_with_a_sensor(autojump_clock: Any, tmp_path: Path) -> None:
    bus = FakeSMBus(raw=round(DARK_LUX))
    hub = StateHub([printer_config("p1")])
    config = PanelConfig(oled="virtual", gpio="virtual", light_sensor="bh1750")
    reader = SensorReader(config, dev=fake_dev(tmp_path), bus=lambda port: bus, threaded=False)
    panel = make_panel(hub, wall=DAY, config=config, light_sensor=reader)
    async with trio.open_nursery() as nursery:
        await nursery.start(panel.run)
        hub.set_connection("p1", "online")
        hub.apply_message("p1", report(gcode_state="IDLE", hms=[]))
        await trio.sleep(READ_EVERY_S + 1.5)
        # Day by the clock, but the room is dark: night levels.
        assert panel.screen.contrast == config.night_contrast
        assert duty(panel, GREEN) == pytest.approx(IDLE_GREEN_LEVEL * config.night_led_level)
        bus.raw = round(BRIGHT_LUX * 1.2)  # the workshop light goes on
        await trio.sleep(READ_EVERY_S + 1.5)
        assert panel.screen.contrast == config.contrast and duty(panel, GREEN) == pytest.approx(IDLE_GREEN_LEVEL)
        assert panel.status()["light_sensor"]["lux"] == pytest.approx(BRIGHT_LUX)
        nursery.cancel_scope.cancel()
    panel.factory.reset()


def test_brightness_rules_never_read_the_clock() -> None:
    """Pure: the module imports no clock, no trio, no I/O."""
    source = Path(brightness.__file__).read_text()
    assert "import trio" not in source and "time.time" not in source and "open(" not in source


def test_the_page_s_picture_is_as_dim_as_the_screen() -> None:
    from PIL import Image

    from bambupi.panel.routes import lit_grey, panel_png

    image = Image.new("1", (128, 64), 0)
    image.putpixel((3, 3), 1)
    assert lit_grey(True, 255) == 255 and lit_grey(True, None) == 255
    assert lit_grey(True, 1) == 65 and lit_grey(False, 255) == 0
    import io

    for grey in (255, lit_grey(True, 1), 0):
        png = Image.open(io.BytesIO(panel_png(image, grey=grey))).convert("L")
        assert png.getpixel((13, 13)) == grey and png.getpixel((0, 0)) == 0


async def test_healthz_shows_a_missing_sensor_as_a_warning_and_says_nothing_of_none_found(autojump_clock: Any) -> None:
    from bambupi.panel.component import PanelComponent
    from bambupi.panel.service import NoAutoOff, NoFilament

    if Path("/dev/i2c-1").exists():
        pytest.skip("this machine has an I2C bus: the component would look for a real sensor")
    for kind, expected in (("bh1750", True), ("auto", False)):
        hub = StateHub([printer_config("p1")])
        component = PanelComponent(
            hub, PanelConfig(oled="virtual", gpio="none", light_sensor=kind), quiet_hours=QuietHours(AlertsConfig()),
            auto_off=NoAutoOff(), filament=NoFilament(), url=lambda: None,
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(component.run)
            await trio.sleep(1)
            health = component.health()
            if expected:  # no /dev/i2c-1 here: the configured sensor cannot be there
                entry = health["light_sensor"]
                assert entry["ok"] is True and "no I2C bus" in entry["warning"]
                assert entry["brightness_from"] == "the night schedule"
            else:
                assert health == {}
            nursery.cancel_scope.cancel()
